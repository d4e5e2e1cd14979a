"""What a parent account may see of each linked student: changed by staff one link at a time (audited), and asked by
the portal ("may this account see this student's grades?"). New links take their school's default_permissions
(store.add_links); linking a sibling never touches the links already there."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from plumbing import status_codes as sc
from plumbing.db import Database
from plumbing.errors import FailedPrecondition, FieldViolation, InvalidArgument
from services.accounts import policy_store
from services.accounts.domain import Account, AccountStatus, Call
from services.accounts.mutations import Audit, Mutations, account_or_404, account_target
from services.accounts.policy_rules import changed_permissions, check_permissions
from services.accounts.store import AccountStore

ALLOWED, NOT_LINKED, PERMISSION_OFF, ACCOUNT_DISABLED, NO_CONTACT = (
    "ALLOWED", "NOT_LINKED", "PERMISSION_OFF", "ACCOUNT_DISABLED", "NO_CONTACT")


@dataclass(frozen=True)
class Access:
    allowed: bool
    reason: str


def _not_linked(account: Account, student_id: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"{account.username} is not linked to student {student_id}: link them first (`/portal link "
        f"{account.username} {student_id}`), or check the student id ({', '.join(account.student_ids) or 'none'} "
        "are linked).", reason=NOT_LINKED)


def _names(values: Sequence[str], field: str) -> tuple[str, ...]:
    names, problems = check_permissions(values, field)
    if problems:
        raise InvalidArgument(problems[0].message, [FieldViolation(p.field, p.message) for p in problems],
                              reason=problems[0].code)
    return names


class Permissions:
    def __init__(self, db: Database, store: AccountStore, mutations: Mutations) -> None:
        self.db = db
        self.store = store
        self.mutations = mutations

    async def update(self, call: Call, username: str, student_id: str, grant: Sequence[str],
                     revoke: Sequence[str]) -> Account:
        """Turn permissions of one link on and off; the other links of the account are untouched."""
        on, off = _names(grant, "grant"), _names(revoke, "revoke")
        if not on and not off:
            raise InvalidArgument("Say which permissions to turn on or off, for example +grades -messages.",
                                  [FieldViolation("grant", "nothing to change")], reason=sc.E_REQUIRED.code)
        if both := sorted(set(on) & set(off)):
            raise InvalidArgument(f"{', '.join(both)} cannot be turned on and off at once: keep one of the two.",
                                  [FieldViolation("revoke", f"also in grant: {', '.join(both)}")],
                                  reason=sc.E_PERMISSION_UNKNOWN.code)
        student = student_id.strip()

        def work(session: Session, audit: Audit) -> Account:
            account = account_or_404(self.store, session, username)
            current = policy_store.link_permissions(session, account.id, student)
            if current is None:
                raise _not_linked(account, student)
            wanted = changed_permissions(current, on, off)
            if wanted != current:
                policy_store.set_link_permissions(session, account.id, student, wanted)
                self.store.update_account(session, account.id, {"updated_at": audit.now})
                audit.record("account.permissions", account_target(account.username), student_id=student,
                             before=list(current), after=list(wanted))
            refreshed = self.store.account(session, account.id)
            assert refreshed is not None
            return refreshed

        return await self.db.run(self.mutations.run, call, "UpdateStudentPermissions", Account, work)

    def _check(self, username: str, student_id: str, permission: str) -> Access:
        with self.db.read() as session:
            account = account_or_404(self.store, session, username)
            if account.status == AccountStatus.DISABLED:
                return Access(False, ACCOUNT_DISABLED)
            if account.contact_id:
                contact = self.store.contact(session, account.contact_id)
                if contact is not None and contact.no_contact:
                    return Access(False, NO_CONTACT)
            granted = policy_store.link_permissions(session, account.id, student_id.strip())
        if granted is None:
            return Access(False, NOT_LINKED)
        return Access(True, ALLOWED) if permission in granted else Access(False, PERMISSION_OFF)

    async def check(self, username: str, student_id: str, permission: str) -> Access:
        """May this account see this student's `permission`? Refused for a disabled account, a contact under a
        court order, a student not linked, or a permission turned off on the link."""
        names = _names([permission], "permission")
        if len(names) != 1:
            raise InvalidArgument("Say which permission to check: grades, attendance, reports or messages.",
                                  [FieldViolation("permission", "required")], reason=sc.E_REQUIRED.code)
        return await self.db.run(self._check, username, student_id, names[0])
