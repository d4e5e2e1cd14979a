"""Storage of policies and of the permissions of links, and the schools an account belongs to (the SQL of
policies.py and permissions.py, and what the shared store, sign-in and set-password links ask of policies).

Module functions over the caller's session, set-based like store.py: every read of many accounts or students is
an IN list in chunks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, union, update
from sqlalchemy.orm import Session

from services.accounts.models import (
    AccountSchoolRecord,
    AccountStudentRecord,
    PolicyRecord,
    RosterStudentRecord,
)
from services.accounts.policy_rules import (
    KEYS,
    Effective,
    PolicyBook,
    PolicyValues,
    StoredPolicy,
    book_of,
    decode_permissions,
    encode_permissions,
    school_key,
)

CHUNK = 5000


def _chunks(values: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


# Policies ---------------------------------------------------------------------------------------------------------

def _stored(record: PolicyRecord) -> StoredPolicy:
    permissions = record.default_permissions
    values = PolicyValues(
        must_change_password=record.must_change_password, two_factor=record.two_factor,
        min_password_length=record.min_password_length, invite_expiry_days=record.invite_expiry_days,
        default_permissions=None if permissions is None else decode_permissions(permissions))
    return StoredPolicy(record.school if record.school_key else "", values, record.updated_at, record.updated_by)


def load_policies(session: Session) -> list[StoredPolicy]:
    """The district's policy (when saved) and every school's, the district's first, then by school."""
    records = session.scalars(select(PolicyRecord).order_by(PolicyRecord.school_key))
    return [_stored(r) for r in records]


def load_book(session: Session) -> PolicyBook:
    return book_of(load_policies(session))


def policy(session: Session, school: str) -> StoredPolicy | None:
    record = session.get(PolicyRecord, school_key(school), populate_existing=True)
    return _stored(record) if record is not None else None


def save_policy(session: Session, school: str, values: PolicyValues, now: datetime, actor: str) -> None:
    """Write a policy's values (all of them, as given), creating its row when it has none."""
    key = school_key(school)
    columns: dict[str, Any] = {name: values.get(name) for name in KEYS}
    permissions = columns["default_permissions"]
    columns["default_permissions"] = None if permissions is None else encode_permissions(permissions)
    columns.update(school=school.strip(), updated_at=now, updated_by=actor[:200])
    table = PolicyRecord.__table__
    done = session.execute(update(table).where(table.c.school_key == key).values(**columns))
    if not done.rowcount:  # type: ignore[attr-defined]
        session.execute(insert(table).values(school_key=key, **columns))


def school_names(session: Session) -> list[str]:
    """Every school the roster's students or the accounts name (one spelling each), by name."""
    s, a = RosterStudentRecord, AccountSchoolRecord
    names: dict[str, str] = {}
    query = union(select(s.school).where(s.school != ""), select(a.school))
    for (name,) in session.execute(query):
        names.setdefault(name.strip().lower(), name.strip())
    return sorted(names.values(), key=str.lower)


def known_school(session: Session, school: str) -> str | None:
    """The school's name as the roster or the accounts spell it, or None when nothing belongs to it."""
    key = school_key(school)
    name = session.scalar(select(RosterStudentRecord.school).where(RosterStudentRecord.school_key == key).limit(1))
    if name is None:
        name = session.scalar(select(AccountSchoolRecord.school).where(AccountSchoolRecord.school_key == key)
                              .limit(1))
    return name.strip() if name is not None else None


# Schools of accounts and students -----------------------------------------------------------------------------

def account_schools(session: Session, account_ids: Sequence[str]) -> dict[str, set[str]]:
    """Each account's schools: its own and those of the students it is linked to."""
    found: dict[str, set[str]] = defaultdict(set)
    ids = sorted(set(account_ids))
    for chunk in _chunks(ids):
        for account_id, school in session.execute(
                select(AccountSchoolRecord.account_id, AccountSchoolRecord.school)
                .where(AccountSchoolRecord.account_id.in_(chunk))):
            found[account_id].add(school)
        for account_id, school in session.execute(
                select(AccountStudentRecord.account_id, RosterStudentRecord.school)
                .join(RosterStudentRecord, RosterStudentRecord.id == AccountStudentRecord.student_id)
                .where(AccountStudentRecord.account_id.in_(chunk), RosterStudentRecord.school != "")):
            found[account_id].add(school)
    return {account_id: found.get(account_id, set()) for account_id in ids}


def effective_for_accounts(session: Session, account_ids: Sequence[str],
                           book: PolicyBook | None = None) -> dict[str, Effective]:
    """The policy applying to each account (the strictest of its schools')."""
    return (book or load_book(session)).for_accounts(account_schools(session, account_ids))


def student_schools(session: Session, student_ids: Iterable[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for chunk in _chunks(sorted(set(student_ids))):
        found.update(session.execute(select(RosterStudentRecord.id, RosterStudentRecord.school)
                                     .where(RosterStudentRecord.id.in_(chunk))).all())
    return found


def default_link_permissions(session: Session, student_ids: Iterable[str], known: Mapping[str, str] | None = None,
                             book: PolicyBook | None = None) -> dict[str, str]:
    """The stored permissions a new link to each student gets: its school's default_permissions. A caller that
    has the students' schools and the policies already (a batch's snapshot) passes them as `known` and `book`."""
    if known is None:
        schools = student_schools(session, student_ids)
    else:
        schools = {s: known[s] for s in set(student_ids) if s in known}
    if not schools:
        return {}
    book = book or load_book(session)
    by_school: dict[str, str] = {}
    found = {}
    for student_id, school in schools.items():
        key = school_key(school)
        if key not in by_school:
            by_school[key] = encode_permissions(book.for_school(school).default_permissions)
        found[student_id] = by_school[key]
    return found


# Permissions of links ---------------------------------------------------------------------------------------------

def link_permissions(session: Session, account_id: str, student_id: str) -> tuple[str, ...] | None:
    """The permissions of one link, or None when the account is not linked to the student."""
    text = session.scalar(select(AccountStudentRecord.permissions).where(
        AccountStudentRecord.account_id == account_id, AccountStudentRecord.student_id == student_id))
    return None if text is None else decode_permissions(text)


def set_link_permissions(session: Session, account_id: str, student_id: str, permissions: Sequence[str]) -> None:
    table = AccountStudentRecord.__table__
    session.execute(update(table).where(table.c.account_id == account_id, table.c.student_id == student_id)
                    .values(permissions=encode_permissions(permissions)))


def links_of(session: Session, account_ids: Sequence[str]) -> Mapping[str, list[tuple[str, str, str]]]:
    """Each account's links as (student id, stored permissions, the student's school), by student id."""
    found: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for chunk in _chunks(sorted(set(account_ids))):
        rows = session.execute(
            select(AccountStudentRecord.account_id, AccountStudentRecord.student_id, AccountStudentRecord.permissions,
                   func.coalesce(RosterStudentRecord.school, ""))
            .outerjoin(RosterStudentRecord, RosterStudentRecord.id == AccountStudentRecord.student_id)
            .where(AccountStudentRecord.account_id.in_(chunk))
            .order_by(AccountStudentRecord.account_id, AccountStudentRecord.student_id))
        for account_id, student_id, permissions, school in rows:
            found[account_id].append((student_id, permissions, school))
    return found
