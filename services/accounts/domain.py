"""The accounts service's vocabulary: enums and plain dataclasses passed between the servicer, the rules, the
operations and the store. No I/O here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Generic, TypeVar

Clock = Callable[[], datetime]
T = TypeVar("T")


class AccountType(StrEnum):
    GUARDIAN = "guardian"
    STUDENT = "student"
    STAFF = "staff"


class AccountStatus(StrEnum):
    INVITED = "invited"
    ACTIVE = "active"
    DISABLED = "disabled"


class TwoFactor(StrEnum):
    OFF = "off"
    REQUIRED = "required"
    ENROLLED = "enrolled"


class TokenPurpose(StrEnum):
    INVITATION = "invitation"
    RESET = "reset"


class TokenState(StrEnum):
    VALID = "valid"
    EXPIRED = "expired"
    USED = "used"
    UNKNOWN = "unknown"
    REVOKED = "revoked"


class RowAction(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    LINK = "link"
    UNCHANGED = "unchanged"
    ERROR = "error"
    SKIP = "skip"


class AuthOutcome(StrEnum):
    OK = "ok"
    INVALID_CREDENTIALS = "invalid_credentials"
    TOTP_REQUIRED = "totp_required"
    TOTP_INVALID = "totp_invalid"
    THROTTLED = "throttled"
    DISABLED = "disabled"


# Parents land in the read-only parent role; the other types get a role named after them.
DEFAULT_ROLES = {AccountType.GUARDIAN: "parent", AccountType.STUDENT: "student", AccountType.STAFF: "staff"}


@dataclass(frozen=True)
class Call:
    """Who asks, and the idempotency key of a mutation (empty: not retry-safe) plus the trace id of the call."""

    actor_id: str = ""
    actor_name: str = ""
    request_id: str = ""
    trace_id: str = ""


@dataclass(frozen=True)
class StudentLink:
    """A student an account may see, and what of that student (permission names, see policy_rules)."""

    student_id: str
    permissions: tuple[str, ...] = ()
    school: str = ""


@dataclass(frozen=True)
class Account:
    id: str
    username: str
    first_name: str
    last_name: str
    email: str
    type: AccountType
    status: AccountStatus
    schools: tuple[str, ...]
    role: str
    must_change_password: bool
    two_factor: TwoFactor
    has_password: bool
    student_ids: tuple[str, ...]
    contact_id: str
    created_at: datetime
    updated_at: datetime
    last_sign_in_at: datetime | None
    # The links to student_ids, with their permissions.
    links: tuple[StudentLink, ...] = ()


@dataclass(frozen=True)
class AccountDraft:
    """What staff give to create an account (before the rules have looked at it)."""

    username: str
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    type: AccountType | None = None
    schools: tuple[str, ...] = ()
    role: str = ""
    must_change_password: bool = False
    student_ids: tuple[str, ...] = ()
    contact_id: str = ""
    status: AccountStatus | None = None
    two_factor: TwoFactor | None = None


@dataclass(frozen=True)
class Problem:
    """A rule a value breaks: a catalogue code, the field it is in, and a sentence for staff."""

    code: str
    field: str
    message: str
    warning: bool = False


@dataclass(slots=True)
class AccountRow:
    """One row of account data from an upload, a template or generation (values as typed in the file).
    Not frozen, for speed (a batch holds thousands); nothing changes one after it is made."""

    row_number: int
    username: str = ""
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    password: str = field(default="", repr=False)
    # "" (default: guardian), a type name, or whatever unknown value the file held.
    type: str = ""
    student_ids: tuple[str, ...] = ()
    must_change_password: str = ""
    enabled: str = ""
    contact_id: str = ""
    school: str = ""


@dataclass(slots=True)
class RowResult:
    """What planning says of one row (not frozen, for speed: a batch holds thousands)."""

    row_number: int
    action: RowAction
    problems: tuple[Problem, ...] = ()
    new_student_ids: tuple[str, ...] = ()
    changed_fields: tuple[str, ...] = ()
    username: str = ""
    invitation_queued: bool = False


@dataclass(frozen=True)
class BatchResult:
    results: tuple[RowResult, ...]


@dataclass(frozen=True)
class KeptAccount:
    """An account an undo left in place, and why."""

    username: str
    reason: str


@dataclass(frozen=True)
class RevertResult:
    removed_usernames: tuple[str, ...] = ()
    links_removed: int = 0
    kept: tuple[KeptAccount, ...] = ()


@dataclass(frozen=True)
class Student:
    id: str
    first_name: str = ""
    last_name: str = ""
    grad_year: int = 0
    group: str = ""
    school: str = ""
    status: str = ""


@dataclass(frozen=True)
class Contact:
    id: str
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    phone: str = ""
    address: str = ""
    no_contact: bool = False


@dataclass(frozen=True)
class Relationship:
    student_id: str
    contact_id: str
    relationship: str = ""
    parental_responsibility: bool = False
    primary: bool = False


@dataclass(frozen=True)
class StudentContact:
    contact: Contact
    relationship: str
    parental_responsibility: bool
    primary: bool
    account_username: str


@dataclass(frozen=True)
class RosterEntry:
    student: Student
    contacts: tuple[StudentContact, ...] = ()


@dataclass(frozen=True)
class RosterChange:
    kind: str
    id: str
    action: str
    changed_fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class RosterDrift:
    """An account of a contact a roster batch changed: the fields that no longer match, and whether they were
    updated to match (PORTAL_CONTACT_CHANGES=update)."""

    contact_id: str
    username: str
    fields: tuple[str, ...]
    applied: bool


@dataclass(frozen=True)
class RosterResult:
    students_created: int = 0
    students_updated: int = 0
    contacts_created: int = 0
    contacts_updated: int = 0
    relationships_added: int = 0
    unchanged: int = 0
    changes: tuple[RosterChange, ...] = ()
    account_drift: tuple[RosterDrift, ...] = ()


@dataclass(frozen=True)
class AccountFilter:
    type: AccountType | None = None
    status: AccountStatus | None = None
    school: str = ""
    group: str = ""
    grad_year: int = 0
    last_name_prefix: str = ""
    linked_student_id: str = ""
    never_signed_in: bool = False
    usernames: tuple[str, ...] = ()


@dataclass(frozen=True)
class StudentSelector:
    """Which students: kind is all, school, group, grad_year, last_name_prefix or usernames (linked accounts)."""

    kind: str = "all"
    value: str = ""
    usernames: tuple[str, ...] = ()
    never_signed_in: bool = False


@dataclass(frozen=True)
class RosterQuery:
    selector: StudentSelector = StudentSelector()
    student_id: str = ""
    contact_id: str = ""
    contact_email: str = ""
    include_contacts: bool = False


@dataclass(frozen=True)
class Page(Generic[T]):
    items: tuple[T, ...]
    next_token: str = ""
    total: int = 0


@dataclass(frozen=True)
class SignIn:
    username: str
    time: datetime
    success: bool
    source: str


@dataclass(frozen=True)
class AuditEvent:
    time: datetime
    actor_id: str
    actor_name: str
    action: str
    target: str
    request_id: str
    detail: str


@dataclass(frozen=True)
class AuthResult:
    outcome: AuthOutcome
    account: Account | None = None
    must_change_password: bool = False
    must_enroll_two_factor: bool = False
    retry_after_seconds: int = 0


@dataclass(frozen=True)
class IssuedToken:
    expire_time: datetime
    # Empty when the link went out by email.
    token: str = field(default="", repr=False)


@dataclass(frozen=True)
class TokenInspection:
    state: TokenState
    username: str = ""


@dataclass(frozen=True)
class Enrollment:
    otpauth_uri: str = field(repr=False)
    recovery_codes: tuple[str, ...] = field(repr=False)
