"""The row planner: what a batch of account rows would do against what the database holds.

(The per-row dataclasses here are slotted and not frozen: a trial run of 100,000 rows makes hundreds of thousands
of them, and frozen dataclasses cost several times more to build. None is changed after it is made.)

One code path serves the trial run and the real upload (AIP-163 validate_only): `plan_rows` takes the rows and a
`Snapshot` of the accounts, students and contacts they mention, and returns a result per row (create, update, link,
unchanged, skip or error, with status codes) plus the set of changes to make. Applying re-reads the snapshot inside
the write transaction and plans again, so what is applied is what the plan says at that moment. No I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from plumbing import status_codes as sc
from services.accounts import rules
from services.accounts.domain import AccountRow, AccountStatus, AccountType, Problem, RowAction, RowResult
from services.accounts.policy_rules import PolicyBook

# Column headers of the account files, as problems name them.
LOGONID = "LOGONID"
FIRST_NAME = "FIRST_NAME"
LAST_NAME = "LAST_NAME"
EMAIL = "EMAIL"
PASSWORD = "PASSWORD"
USER_TYPE = "USER_TYPE"
STUDENT_IDS = "STUDENT_IDS"
MUST_CHANGE_PASSWORD = "MUST_CHANGE_PASSWORD"
ENABLED = "ENABLED"
CONTACT_ID = "CONTACT_ID"
SCHOOL = "SCHOOL"


@dataclass(slots=True)
class KnownAccount:
    """What planning needs to know of an existing account."""

    id: str
    username: str
    first_name: str
    last_name: str
    email: str
    type: AccountType
    status: AccountStatus
    must_change_password: bool
    contact_id: str
    signed_in: bool
    schools: frozenset[str] = frozenset()
    student_ids: frozenset[str] = frozenset()
    # The schools of the linked students.
    student_schools: frozenset[str] = frozenset()

    def school_names(self) -> str:
        """The account's schools as staff read them ("" when it has none)."""
        names = sorted(self.schools | self.student_schools, key=str.lower)
        return " and ".join(names)


@dataclass(slots=True)
class KnownContact:
    id: str
    email: str
    no_contact: bool


@dataclass(frozen=True)
class Lookups:
    """The keys a batch mentions: the snapshot must cover them."""

    username_keys: frozenset[str]
    email_keys: frozenset[str]
    student_ids: frozenset[str]
    contact_ids: frozenset[str]


@dataclass(frozen=True)
class Snapshot:
    # Existing accounts by username key, with their schools and linked students.
    accounts: Mapping[str, KnownAccount]
    # Email key -> usernames of the accounts holding that email.
    email_owners: Mapping[str, tuple[str, ...]]
    # Which of the mentioned student ids are in the roster.
    students: frozenset[str]
    # Roster contacts by id, and contact ids by email key.
    contacts: Mapping[str, KnownContact]
    contacts_by_email: Mapping[str, tuple[str, ...]]
    # The mentioned students' schools, and every policy (a row's password follows its schools' minimum length).
    student_schools: Mapping[str, str] = field(default_factory=dict)
    policies: PolicyBook = field(default_factory=PolicyBook)

    def min_password_length(self, schools: Iterable[str]) -> int:
        return self.policies.for_schools(schools).min_password_length


@dataclass(slots=True)
class NewAccount:
    row_number: int
    username: str
    first_name: str
    last_name: str
    email: str
    type: AccountType
    status: AccountStatus
    must_change_password: bool
    contact_id: str
    schools: tuple[str, ...]
    student_ids: tuple[str, ...]
    # Row whose password is to be hashed, or None (then `invite` says whether an invitation goes out).
    password_row: int | None
    invite: bool


@dataclass(slots=True)
class AccountUpdate:
    row_number: int
    account_id: str
    username: str
    # Field -> new value (first_name, last_name, email, must_change_password, status, contact_id).
    changes: Mapping[str, object]
    # The same fields' values before, for the audit log.
    before: Mapping[str, object]
    password_row: int | None
    new_schools: tuple[str, ...]
    new_student_ids: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    results: tuple[RowResult, ...]
    creates: tuple[NewAccount, ...]
    updates: tuple[AccountUpdate, ...]

    @property
    def password_rows(self) -> frozenset[int]:
        """Rows whose password will be hashed when the plan is applied."""
        rows = [c.password_row for c in self.creates] + [u.password_row for u in self.updates]
        return frozenset(r for r in rows if r is not None)


@dataclass(slots=True)
class _Row:
    """One row after the rules have looked at it."""

    position: int
    source: AccountRow
    username: str
    key: str
    username_ok: bool
    first_name: str
    last_name: str
    email: str
    email_key: str
    password: str = field(repr=False)
    type: AccountType
    student_ids: tuple[str, ...]
    must_change_password: bool | None
    enabled: bool | None
    contact_id: str
    school: str
    problems: list[Problem]

    @property
    def failed(self) -> bool:
        return bool(self.problems) and any(not p.warning for p in self.problems)


def lookups_for(rows: Iterable[AccountRow]) -> Lookups:
    usernames, emails, students, contacts = set(), set(), set(), set()
    for row in rows:
        if row.username.strip():
            usernames.add(rules.username_key(row.username))
        if row.email.strip():
            emails.add(rules.email_key(row.email))
        students.update(rules.clean_ids(row.student_ids))
        if row.contact_id.strip():
            contacts.add(row.contact_id.strip())
    return Lookups(frozenset(usernames), frozenset(emails), frozenset(students), frozenset(contacts))


def _is_blank(row: AccountRow, links_only: bool) -> bool:
    if links_only:
        return not (row.username.strip() or row.student_ids)
    return not (row.username.strip() or row.first_name.strip() or row.last_name.strip() or row.email.strip()
                or row.password)


def _check(position: int, row: AccountRow, snapshot: Snapshot) -> _Row:
    """One row through the rules. Optional columns left empty (most of them, most of the time) cost nothing."""
    username, problems = rules.check_username(row.username, LOGONID)
    username_ok = not problems
    first_name, found = rules.check_name(row.first_name, FIRST_NAME, "first name")
    problems += found
    last_name, found = rules.check_name(row.last_name, LAST_NAME, "last name")
    problems += found
    email, found = rules.check_email(row.email, EMAIL)
    problems += found
    if row.password:
        schools = [row.school, *(snapshot.student_schools.get(s, "") for s in rules.clean_ids(row.student_ids))]
        problems += rules.check_password(row.password, username, PASSWORD, snapshot.min_password_length(schools))
    account_type = AccountType.GUARDIAN
    if row.type:
        parsed, found = rules.parse_type(row.type, USER_TYPE)
        account_type = parsed or account_type
        problems += found
    student_ids = rules.clean_ids(row.student_ids) if row.student_ids else ()
    unknown = [s for s in student_ids if s not in snapshot.students]
    if unknown:
        problems.append(rules.unknown_students_problem(unknown, STUDENT_IDS))
    must_change = enabled = None
    contact_id = school = ""
    if row.must_change_password:
        must_change, found = rules.parse_flag(row.must_change_password, MUST_CHANGE_PASSWORD, MUST_CHANGE_PASSWORD)
        problems += found
    if row.enabled:
        enabled, found = rules.parse_flag(row.enabled, ENABLED, ENABLED)
        problems += found
    if row.contact_id:
        contact_id, found = rules.check_text(row.contact_id, CONTACT_ID, "contact id", rules.ID_MAX)
        problems += found
    if row.school:
        school, found = rules.check_text(row.school, SCHOOL, "school name")
        problems += found
    return _Row(position, row, username, username.lower(), username_ok, first_name, last_name, email, email.lower(),
                row.password, account_type, student_ids, must_change, enabled, contact_id, school, problems)


def _rows_text(rows: Sequence[_Row]) -> str:
    numbers = [str(r.source.row_number) for r in rows]
    return ", ".join(numbers[:-1]) + " and " + numbers[-1] if len(numbers) > 1 else numbers[0]


# Values that rows for one username must agree on (empty or unset means "no opinion"), with their columns.
_AGREEMENT: tuple[tuple[str, str], ...] = (
    ("first_name", FIRST_NAME), ("last_name", LAST_NAME), ("email_key", EMAIL), ("type", USER_TYPE),
    ("password", PASSWORD), ("must_change_password", MUST_CHANGE_PASSWORD), ("enabled", ENABLED),
    ("contact_id", CONTACT_ID),
)


def _disagreement(group: Sequence[_Row]) -> Problem | None:
    columns: list[str] = []
    shown: list[str] = []
    for attribute, column in _AGREEMENT:
        values = {getattr(r, attribute) for r in group} - {"", None}
        if len(values) > 1:
            columns.append(column)
            if column != PASSWORD:
                shown.append(f"{column}: " + " / ".join(sorted(str(v) for v in values)))
    if not columns:
        return None
    names = columns[0] if len(columns) == 1 else ", ".join(columns[:-1]) + " and " + columns[-1]
    detail = f" ({'; '.join(shown)})" if shown else ""
    return Problem(sc.E_DUPLICATE_CONFLICT.code, columns[0],
                   f"The username '{group[0].username}' is on rows {_rows_text(group)} whose {names} disagree"
                   f"{detail}: make the rows agree (siblings share one parent's details) or use different "
                   "usernames.")


def _first(values: Iterable[object]) -> object:
    return next((v for v in values if v not in ("", None)), None)


@dataclass
class _Merged:
    """One account's details gathered from all its (agreeing) rows."""

    rows: list[_Row]
    username: str
    first_name: str
    last_name: str
    email: str
    email_key: str
    type: AccountType
    password_row: int | None
    must_change_password: bool | None
    enabled: bool | None
    contact_id: str
    schools: tuple[str, ...]
    student_ids: tuple[str, ...]

    @classmethod
    def of(cls, rows: list[_Row]) -> _Merged:
        if len(rows) == 1:
            row = rows[0]
            return cls(
                rows=rows, username=row.username, first_name=row.first_name, last_name=row.last_name,
                email=row.email, email_key=row.email_key, type=row.type,
                password_row=row.source.row_number if row.password else None,
                must_change_password=row.must_change_password, enabled=row.enabled, contact_id=row.contact_id,
                schools=(row.school,) if row.school else (), student_ids=row.student_ids)
        email_row = next((r for r in rows if r.email), None)
        password_row = next((r for r in rows if r.password), None)
        return cls(
            rows=rows, username=rows[0].username,
            first_name=str(_first(r.first_name for r in rows) or ""),
            last_name=str(_first(r.last_name for r in rows) or ""),
            email=email_row.email if email_row else "", email_key=email_row.email_key if email_row else "",
            type=rows[0].type,
            password_row=password_row.source.row_number if password_row else None,
            must_change_password=_first(r.must_change_password for r in rows),  # type: ignore[arg-type]
            enabled=_first(r.enabled for r in rows),  # type: ignore[arg-type]
            contact_id=str(_first(r.contact_id for r in rows) or ""),
            schools=rules.clean_ids(r.school for r in rows),
            student_ids=rules.clean_ids(s for r in rows for s in r.student_ids),
        )


def _contact_for(merged: _Merged, existing: KnownAccount | None, snapshot: Snapshot) -> tuple[KnownContact | None,
                                                                                              bool]:
    """The roster contact the account comes from, and whether it was found by email (not named)."""
    if merged.contact_id:
        return snapshot.contacts.get(merged.contact_id), False
    if existing is not None and existing.contact_id:
        return snapshot.contacts.get(existing.contact_id), False
    if merged.email_key:
        ids = snapshot.contacts_by_email.get(merged.email_key, ())
        if len(ids) == 1:
            return snapshot.contacts.get(ids[0]), True
    return None, False


def _group_problems(merged: _Merged, existing: KnownAccount | None, contact: KnownContact | None,
                    snapshot: Snapshot) -> list[Problem]:
    problems: list[Problem] = []
    if existing is not None and existing.type != merged.type:
        schools = existing.school_names()
        problems.append(Problem(
            sc.E_TYPE_MISMATCH.code, USER_TYPE,
            f"The username '{merged.username}' already belongs to a {existing.type.value} account "
            f"('{existing.username}'{f' at {schools}' if schools else ''}), and this row is for a "
            f"{merged.type.value} account: usernames are unique across the district whatever the type, so choose "
            "another username."))
    if merged.email_key:
        key = merged.username.lower()
        others = [u for u in snapshot.email_owners.get(merged.email_key, ()) if u.lower() != key]
        if others:
            problems.append(Problem(
                sc.E_EMAIL_IN_USE.code, EMAIL,
                f"The email address '{merged.email}' already belongs to the account '{others[0]}': use that "
                "account's username on this row, or correct the email."))
    if contact is not None and contact.no_contact:
        problems.append(Problem(
            sc.E_NO_CONTACT.code, CONTACT_ID if merged.contact_id else EMAIL,
            f"The roster marks contact {contact.id} with a court order or no-contact flag: they must not get "
            "access to any student. Remove the row, or correct the flag in the school's information system "
            "first."))
    if existing is None:
        if not merged.first_name:
            problems.append(Problem(sc.E_REQUIRED.code, FIRST_NAME,
                                    "The first name is missing: a new account needs the holder's first name."))
        if not merged.last_name:
            problems.append(Problem(sc.E_REQUIRED.code, LAST_NAME,
                                    "The last name is missing: a new account needs the holder's last name."))
    return problems


_UNCHANGED = Problem(sc.W_UNCHANGED.code, "", "The account already holds these details and links: nothing to do.",
                     warning=True)


def _link_results(merged: _Merged, first_action: RowAction, first_fields: tuple[str, ...],
                  already: frozenset[str], username: str, invite: bool, first_problems: list[Problem],
                  results: dict[int, RowResult]) -> None:
    """The first row carries the account's action; each later row links the students it adds."""
    if len(merged.rows) == 1:
        row = merged.rows[0]
        new = tuple(s for s in row.student_ids if s not in already) if row.student_ids else ()
        action = RowAction.LINK if first_action == RowAction.UNCHANGED and new else first_action
        problems = [*first_problems, *(p for p in row.problems if p.warning)]
        if action == RowAction.UNCHANGED:
            problems.append(_UNCHANGED)
        results[row.position] = RowResult(row.source.row_number, action, tuple(problems), new, first_fields,
                                          username, invite)
        return
    claimed: set[str] = set()
    for index, row in enumerate(merged.rows):
        new = tuple(s for s in row.student_ids if s not in already and s not in claimed)
        claimed.update(new)
        if index == 0:
            action = first_action
            if action == RowAction.UNCHANGED and new:
                action = RowAction.LINK
            fields, problems, invited = first_fields, list(first_problems), invite
        else:
            action, fields, problems, invited = (RowAction.LINK if new else RowAction.UNCHANGED), (), [], False
        problems += [p for p in row.problems if p.warning]
        if action == RowAction.UNCHANGED:
            problems.append(_UNCHANGED)
        results[row.position] = RowResult(row.source.row_number, action, tuple(problems), new, fields, username,
                                          invited)


def plan_rows(rows: Sequence[AccountRow], snapshot: Snapshot, send_invitations: bool,
              links_only: bool = False) -> Plan:
    """Plan every row against the snapshot: a result per row in input order, and the changes to make.

    `links_only` (a student-links file): a row only adds its students to an existing account; its other columns
    are not read, and an unknown username is an error rather than a new account."""
    results: dict[int, RowResult] = {}
    checked: list[_Row] = []
    for position, row in enumerate(rows):
        if links_only:
            row = AccountRow(row.row_number, row.username, student_ids=row.student_ids)
        if _is_blank(row, links_only):
            results[position] = RowResult(row.row_number, RowAction.SKIP, (Problem(
                sc.S_NO_ACCOUNT_WANTED.code, "", "The account columns of this row are empty: no account is "
                "wanted for this student.", warning=True),))
        else:
            checked.append(_check(position, row, snapshot))

    groups: dict[str, list[_Row]] = {}
    for row in checked:
        if row.username_ok:
            groups.setdefault(row.key, []).append(row)

    by_email: dict[str, list[_Row]] = {}
    for row in checked:
        if row.username_ok and row.email_key:
            by_email.setdefault(row.email_key, []).append(row)
    for same_email in by_email.values():
        if len(same_email) > 1 and len({r.key for r in same_email}) > 1:
            names = sorted({r.username for r in same_email})
            problem = Problem(sc.E_DUPLICATE_EMAIL.code, EMAIL,
                              f"The email address '{same_email[0].email}' is on rows {_rows_text(same_email)} with "
                              f"different usernames ({', '.join(names)}): give one person one username, or "
                              "correct the email.")
            for row in same_email:
                row.problems.append(problem)

    for group in groups.values():
        if len(group) > 1 and (conflict := _disagreement(group)) is not None:
            for row in group:
                row.problems.append(conflict)

    creates: list[NewAccount] = []
    updates: list[AccountUpdate] = []
    for key, group in groups.items():
        valid = [r for r in group if not r.failed]
        if not valid:
            continue
        merged = _Merged.of(valid)
        existing = snapshot.accounts.get(key)
        contact, matched_by_email = _contact_for(merged, existing, snapshot)
        problems = _group_problems(merged, existing, contact, snapshot) if existing or not links_only else [
            Problem(sc.E_USERNAME_UNKNOWN.code, LOGONID,
                    f"No account has the username '{merged.username}': a student-links row only adds students to "
                    "an existing account. Check the username, or create the account first.")]
        if problems:
            for row in valid:
                row.problems.extend(problems)
            continue
        if existing is None:
            creates.append(_plan_create(merged, contact, send_invitations, results))
        else:
            update = _plan_update(merged, existing, contact if matched_by_email else None, results)
            if update is not None:
                updates.append(update)

    for row in checked:
        if row.position not in results:
            results[row.position] = RowResult(row.source.row_number, RowAction.ERROR, tuple(row.problems),
                                          username=row.username)
    ordered = tuple(results[i] for i in range(len(rows)))
    return Plan(ordered, tuple(creates), tuple(updates))


def _plan_create(merged: _Merged, contact: KnownContact | None, send_invitations: bool,
                 results: dict[int, RowResult]) -> NewAccount:
    has_password = merged.password_row is not None
    status = AccountStatus.DISABLED if merged.enabled is False else AccountStatus.INVITED
    must_change = merged.must_change_password if merged.must_change_password is not None else has_password
    invite = send_invitations and not has_password and bool(merged.email) and status != AccountStatus.DISABLED
    first_problems = []
    if not has_password and not merged.email:
        first_problems.append(Problem(
            sc.W_NO_EMAIL.code, EMAIL, "This new account has neither a password nor an email address, so nobody "
            "can sign in to it yet: add an EMAIL so an invitation can be sent, or type a PASSWORD.", warning=True))
    _link_results(merged, RowAction.CREATE, (), frozenset(), merged.username, invite, first_problems, results)
    return NewAccount(
        row_number=merged.rows[0].source.row_number, username=merged.username, first_name=merged.first_name,
        last_name=merged.last_name, email=merged.email, type=merged.type, status=status,
        must_change_password=bool(must_change), contact_id=merged.contact_id or (contact.id if contact else ""),
        schools=merged.schools, student_ids=merged.student_ids, password_row=merged.password_row, invite=invite,
    )


def _plan_update(merged: _Merged, existing: KnownAccount, matched: KnownContact | None,
                 results: dict[int, RowResult]) -> AccountUpdate | None:
    # (field, value now, value the rows ask for); only what the rows set is compared.
    wanted: list[tuple[str, object, object]] = []
    if merged.first_name:
        wanted.append(("first_name", existing.first_name, merged.first_name))
    if merged.last_name:
        wanted.append(("last_name", existing.last_name, merged.last_name))
    if merged.email_key and merged.email_key != existing.email.lower():
        wanted.append(("email", existing.email, merged.email))
    has_password = merged.password_row is not None
    must_change = merged.must_change_password
    if must_change is None and has_password:
        must_change = True
    if must_change is not None:
        wanted.append(("must_change_password", existing.must_change_password, must_change))
    if merged.enabled is False and existing.status != AccountStatus.DISABLED:
        wanted.append(("status", existing.status, AccountStatus.DISABLED))
    elif merged.enabled is True and existing.status == AccountStatus.DISABLED:
        wanted.append(("status", existing.status,
                       AccountStatus.ACTIVE if existing.signed_in else AccountStatus.INVITED))
    if merged.contact_id:
        wanted.append(("contact_id", existing.contact_id, merged.contact_id))
    elif matched is not None and not existing.contact_id:
        wanted.append(("contact_id", existing.contact_id, matched.id))
    changes = {name: new for name, old, new in wanted if new != old}
    before = {name: old for name, old, new in wanted if new != old}
    new_schools: tuple[str, ...] = ()
    if merged.schools:
        known_schools = {s.lower() for s in existing.schools}
        new_schools = tuple(s for s in merged.schools if s.lower() not in known_schools)
    new_students = tuple(s for s in merged.student_ids if s not in existing.student_ids) \
        if merged.student_ids else ()

    fields = tuple(sorted([*changes, *(["password"] if has_password else []), *(["schools"] if new_schools else [])]))
    action = RowAction.UPDATE if fields else RowAction.UNCHANGED
    _link_results(merged, action, fields, existing.student_ids, existing.username, False, [], results)
    if not fields and not new_students:
        return None
    return AccountUpdate(
        row_number=merged.rows[0].source.row_number, account_id=existing.id, username=existing.username,
        changes=changes, before=before, password_row=merged.password_row, new_schools=new_schools,
        new_student_ids=new_students,
    )
