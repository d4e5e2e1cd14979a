"""The SQL of the logons export: the selected parent accounts in username order, a chunk at a time (keyset paging),
each chunk with its links (students, their schools and permissions) and latest invitation in two set-based
queries."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.accounts.domain import AccountFilter, TokenPurpose
from services.accounts.models import (
    AccountRecord,
    AccountStudentRecord,
    RosterStudentRecord,
    SetPasswordTokenRecord,
)
from services.accounts.store import AccountStore

CHUNK = 2000


@dataclass(frozen=True)
class LinkedStudent:
    id: str
    name: str
    school: str
    permissions: str


@dataclass(frozen=True)
class Invitation:
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None


@dataclass(slots=True)
class LogonRow:
    username: str
    first_name: str
    last_name: str
    email: str
    status: str
    two_factor: str
    has_password: bool
    contact_id: str
    created_at: datetime
    last_sign_in_at: datetime | None
    students: list[LinkedStudent] = field(default_factory=list)
    invitation: Invitation | None = None


_a = AccountRecord
_ACCOUNT_COLUMNS = (_a.id, _a.username_key, _a.username, _a.first_name, _a.last_name, _a.email, _a.status,
                    _a.two_factor, _a.password_hash.is_not(None), _a.contact_id, _a.created_at, _a.last_sign_in_at)


def logon_chunks(session: Session, store: AccountStore, where: AccountFilter,
                 size: int = CHUNK) -> Iterator[list[LogonRow]]:
    """The selected accounts with everything the export shows, `size` at a time, in username order."""
    after: str | None = None
    while True:
        query = store.matching(select(*_ACCOUNT_COLUMNS), where).order_by(_a.username_key).limit(size)
        if after is not None:
            query = query.where(_a.username_key > after)
        accounts = session.execute(query).all()
        if not accounts:
            return
        rows = {r[0]: LogonRow(*r[2:]) for r in accounts}
        ids = list(rows)
        s = RosterStudentRecord
        for account_id, student_id, first, last, school, permissions in session.execute(
                select(AccountStudentRecord.account_id, AccountStudentRecord.student_id, s.first_name, s.last_name,
                       s.school, AccountStudentRecord.permissions)
                .join(s, s.id == AccountStudentRecord.student_id)
                .where(AccountStudentRecord.account_id.in_(ids))
                .order_by(AccountStudentRecord.account_id, AccountStudentRecord.student_id)):
            rows[account_id].students.append(LinkedStudent(student_id, f"{first} {last}".strip(), school,
                                                           permissions))
        t = SetPasswordTokenRecord
        latest: dict[str, Invitation] = {}
        for account_id, created, expires, used, revoked in session.execute(
                select(t.account_id, t.created_at, t.expires_at, t.used_at, t.revoked_at)
                .where(t.account_id.in_(ids), t.purpose == TokenPurpose.INVITATION.value)
                .order_by(t.account_id, t.created_at)):
            latest[account_id] = Invitation(created, expires, used, revoked)
        for account_id, invitation in latest.items():
            rows[account_id].invitation = invitation
        yield list(rows.values())
        after = accounts[-1][1]
