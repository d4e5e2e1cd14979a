"""The SQL of usage reports: the selected parents a page at a time with their sign-in counts in the range, the
students linked to them, and every successful sign-in of the range streamed in (parent, time) order."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.accounts.domain import AccountFilter
from services.accounts.models import AccountRecord, AccountStudentRecord, RosterStudentRecord, SignInRecord
from services.accounts.store import AccountStore

STREAM_ROWS = 10_000
_a = AccountRecord
_s = SignInRecord


@dataclass(frozen=True)
class Parent:
    id: str
    username: str
    username_key: str
    name: str
    email: str


@dataclass(frozen=True)
class Usage:
    """A parent's successful sign-ins in the range: how many, the first and the last (UTC)."""

    count: int = 0
    first: datetime | None = None
    last: datetime | None = None


class UsageStore:
    def __init__(self, store: AccountStore) -> None:
        self.store = store

    def count(self, session: Session, where: AccountFilter) -> int:
        return int(session.scalar(self.store.matching(select(func.count()).select_from(_a), where)) or 0)

    def parents(self, session: Session, where: AccountFilter, after_key: str | None, limit: int) -> list[Parent]:
        query = select(_a.id, _a.username, _a.username_key, _a.first_name, _a.last_name, _a.email)
        query = self.store.matching(query, where).order_by(_a.username_key).limit(limit)
        if after_key is not None:
            query = query.where(_a.username_key > after_key)
        return [Parent(r.id, r.username, r.username_key, f"{r.first_name} {r.last_name}".strip(), r.email)
                for r in session.execute(query)]

    def usage(self, session: Session, account_ids: Sequence[str], start: datetime, end: datetime
              ) -> dict[str, Usage]:
        query = (select(_s.account_id, func.count(), func.min(_s.time), func.max(_s.time))
                 .where(_s.account_id.in_(list(account_ids)), _s.success.is_(True), _s.time >= start, _s.time < end)
                 .group_by(_s.account_id))
        return {account_id: Usage(int(n), first, last) for account_id, n, first, last in session.execute(query)}

    def learners(self, session: Session, account_ids: Sequence[str]) -> dict[str, list[str]]:
        """The students linked to each account, as "First Last (id)", by last name."""
        link, student = AccountStudentRecord, RosterStudentRecord
        query = (select(link.account_id, student.id, student.first_name, student.last_name)
                 .join(student, student.id == link.student_id).where(link.account_id.in_(list(account_ids)))
                 .order_by(link.account_id, student.last_name_key, student.first_name, student.id))
        found: dict[str, list[str]] = defaultdict(list)
        for account_id, student_id, first, last in session.execute(query):
            name = f"{first} {last}".strip()
            found[account_id].append(f"{name} ({student_id})" if name else student_id)
        return found

    def sign_ins(self, session: Session, where: AccountFilter, start: datetime, end: datetime
                 ) -> Iterator[tuple[str, datetime]]:
        """(account id, time) of every successful sign-in of the selected parents in [start, end), by parent
        (username order) then time; streamed, never all in memory."""
        query = (select(_s.account_id, _s.time).join(_a, _a.id == _s.account_id)
                 .where(_s.success.is_(True), _s.time >= start, _s.time < end))
        query = self.store.matching(query, where).order_by(_a.username_key, _s.time, _s.id)
        result = session.execute(query, execution_options={"yield_per": STREAM_ROWS})
        for partition in result.partitions():
            yield from partition  # type: ignore[misc]
