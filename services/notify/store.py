"""Storage of the notify service: the one place its SQL lives.

Every method is synchronous and opens its own transaction; the async side calls them through `Database.run`.
Workers claim due rows with a lease: `FOR UPDATE SKIP LOCKED` on PostgreSQL (replicas never take the same row);
on SQLite every writer holds the database's write lock (BEGIN IMMEDIATE), which serialises claims just as well.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from plumbing.db import Database
from services.notify import rules
from services.notify.models import Alert, AlertFile, DomainCounter, Message

IN_CHUNK = 900
MESSAGES = Message.__table__
ALERTS = Alert.__table__
ALERT_FILES = AlertFile.__table__
COUNTERS = DomainCounter.__table__


# Records -----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NewMessage:
    """An email ready to store (checked by the rules). A message that cannot be sent arrives as `failed`."""

    key: str
    template: str
    recipient: str
    domain: str
    data: dict[str, Any]
    job_id: str
    school: str
    message_id: str
    state: str = rules.QUEUED
    last_error: str = ""


@dataclass(frozen=True)
class MessageRecord:
    id: int
    key: str
    template: str
    recipient: str
    job_id: str
    school: str
    message_id: str
    state: str
    attempts: int
    last_error: str
    created_at: datetime
    sent_at: datetime | None
    due_at: datetime | None
    worker: str


@dataclass(frozen=True)
class ClaimedMessage:
    """A message a worker holds until `lease_until`, with what it needs to render and send it."""

    id: int
    key: str
    template: str
    recipient: str
    data: dict[str, Any]
    school: str
    message_id: str
    attempts: int
    created_at: datetime
    lease_until: datetime


@dataclass(frozen=True)
class Outcome:
    """The result of one attempt: sent, failed, or queued again for `due_at`."""

    id: int
    state: str
    error: str = ""
    due_at: datetime | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class DomainRate:
    limit: int
    window: int


@dataclass(frozen=True)
class MessageFilter:
    key_prefix: str = ""
    recipient: str = ""
    job_id: str = ""
    state: str = ""


@dataclass(frozen=True)
class NewAlertFile:
    filename: str
    title: str
    data: bytes


@dataclass(frozen=True)
class NewAlert:
    key: str
    channel: str
    user_id: str
    thread_ts: str
    update_ts: str
    text: str
    blocks_json: str
    files: tuple[NewAlertFile, ...] = ()
    # Set when the alert can never be delivered: it is stored as failed with this reason.
    failed: str = ""


@dataclass(frozen=True)
class AlertRecord:
    id: int
    key: str
    channel: str
    user_id: str
    thread_ts: str
    update_ts: str
    text: str
    blocks_json: str
    state: str
    attempts: int
    last_error: str
    posted_channel: str
    posted_ts: str
    created_at: datetime
    sent_at: datetime | None
    due_at: datetime | None
    lease_until: datetime | None = None


@dataclass(frozen=True)
class PendingFile:
    id: int
    position: int
    filename: str
    title: str
    data: bytes


def _message_record(row: Any) -> MessageRecord:
    return MessageRecord(
        id=row.id, key=row.idempotency_key, template=row.template, recipient=row.recipient, job_id=row.job_id,
        school=row.school, message_id=row.message_id, state=row.state, attempts=row.attempts,
        last_error=row.last_error, created_at=row.created_at, sent_at=row.sent_at, due_at=row.due_at,
        worker=row.worker,
    )


def _alert_record(row: Any, lease_until: datetime | None = None) -> AlertRecord:
    return AlertRecord(
        id=row.id, key=row.idempotency_key, channel=row.channel, user_id=row.user_id, thread_ts=row.thread_ts,
        update_ts=row.update_ts, text=row.text, blocks_json=row.blocks_json, state=row.state,
        attempts=row.attempts, last_error=row.last_error, posted_channel=row.posted_channel,
        posted_ts=row.posted_ts, created_at=row.created_at, sent_at=row.sent_at, due_at=row.due_at,
        lease_until=lease_until,
    )


def _chunks(values: Sequence[Any], size: int = IN_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


class NotifyStore:
    """Queries of the notify service over one `Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @property
    def _postgres(self) -> bool:
        return self.db.dialect == "postgresql"

    def _insert(self, table: Any) -> Any:
        return (postgresql.insert(table) if self._postgres else sqlite.insert(table))

    def _locking(self, query: Select[Any]) -> Select[Any]:
        return query.with_for_update(skip_locked=True) if self._postgres else query

    # Emails ----------------------------------------------------------------------------------------------------

    def add_messages(self, messages: Sequence[NewMessage], now: datetime) -> tuple[list[MessageRecord], int]:
        """Store each key once (a key already present, even from a concurrent call, is left as it is) and return
        the stored record of every key asked for, in the order asked, with how many rows are new."""
        if not messages:
            return [], 0
        rows = [{
            "idempotency_key": m.key, "template": m.template, "recipient": m.recipient,
            "recipient_lower": m.recipient.lower(), "domain": m.domain,
            "data": json.dumps(m.data, default=str) if m.state == rules.QUEUED else "{}",
            "job_id": m.job_id, "school": m.school, "message_id": m.message_id, "state": m.state,
            "attempts": 0, "last_error": m.last_error, "due_at": now if m.state == rules.QUEUED else None,
            "worker": "", "created_at": now, "updated_at": now, "sent_at": None,
        } for m in messages]
        # Inserted in key order: concurrent callers with overlapping keys then wait for each other in one order,
        # never in a cycle (PostgreSQL would otherwise find a deadlock on the unique index).
        rows.sort(key=lambda row: row["idempotency_key"])
        keys = [m.key for m in messages]
        statement = (self._insert(MESSAGES).on_conflict_do_nothing(index_elements=["idempotency_key"])
                     .returning(MESSAGES.c.id))
        with self.db.transaction() as session:
            added = len(session.execute(statement, rows).all())
            found = self._messages_by_key(session, keys)
        return [found[key] for key in keys], added

    def _messages_by_key(self, session: Session, keys: Sequence[str]) -> dict[str, MessageRecord]:
        found: dict[str, MessageRecord] = {}
        for chunk in _chunks(list(dict.fromkeys(keys))):
            for row in session.execute(select(MESSAGES).where(MESSAGES.c.idempotency_key.in_(chunk))):
                found[row.idempotency_key] = _message_record(row)
        return found

    def get_message(self, key: str) -> MessageRecord | None:
        with self.db.read() as session:
            row = session.execute(select(MESSAGES).where(MESSAGES.c.idempotency_key == key)).first()
            return _message_record(row) if row is not None else None

    def list_messages(self, filters: MessageFilter, after_id: int, limit: int) -> tuple[list[MessageRecord], bool]:
        """A page of messages matching every given filter, oldest first, after `after_id`; and whether more follow."""
        query = select(MESSAGES).where(MESSAGES.c.id > after_id)
        if filters.key_prefix:
            low, high = rules.prefix_bounds(filters.key_prefix)
            query = query.where(MESSAGES.c.idempotency_key >= low, MESSAGES.c.idempotency_key < high)
        if filters.recipient:
            query = query.where(MESSAGES.c.recipient_lower == filters.recipient.strip().lower())
        if filters.job_id:
            query = query.where(MESSAGES.c.job_id == filters.job_id)
        if filters.state:
            query = query.where(MESSAGES.c.state == filters.state)
        query = query.order_by(MESSAGES.c.id).limit(limit + 1)
        with self.db.read() as session:
            rows = [_message_record(row) for row in session.execute(query)]
        return rows[:limit], len(rows) > limit

    def count_messages(self, job_id: str = "") -> dict[str, int]:
        """How many messages are in each state (of one job when given)."""
        query = select(MESSAGES.c.state, func.count()).group_by(MESSAGES.c.state)
        if job_id:
            query = query.where(MESSAGES.c.job_id == job_id)
        with self.db.read() as session:
            counts = {state: 0 for state in rules.STATES}
            counts.update({state: int(n) for state, n in session.execute(query)})
            return counts

    def next_message_due(self) -> datetime | None:
        with self.db.read() as session:
            return session.scalar(select(func.min(MESSAGES.c.due_at)))

    def claim_messages(
        self, worker: str, limit: int, now: datetime, lease_seconds: float, rate: DomainRate | None = None,
    ) -> list[ClaimedMessage]:
        """Take up to `limit` due messages (queued and due, or sending with an expired lease) for `worker`.

        With a domain rate limit, each domain gets only what its counter for the current window allows; the rest
        wait for the next window (without counting as an attempt).
        """
        lease_until = now + timedelta(seconds=lease_seconds)
        due = self._locking(select(MESSAGES.c.id).where(MESSAGES.c.due_at <= now)
                            .order_by(MESSAGES.c.due_at, MESSAGES.c.id).limit(limit))
        claim = (update(MESSAGES)
                 .values(state=rules.SENDING, worker=worker, due_at=lease_until, attempts=MESSAGES.c.attempts + 1,
                         updated_at=now)
                 .returning(MESSAGES.c.id, MESSAGES.c.idempotency_key, MESSAGES.c.template, MESSAGES.c.recipient,
                            MESSAGES.c.data, MESSAGES.c.school, MESSAGES.c.message_id, MESSAGES.c.attempts,
                            MESSAGES.c.created_at))
        with self.db.transaction() as session:
            if rate is None or rate.limit <= 0:
                # One statement: pick the due rows (skipping rows other workers hold) and lease them.
                rows = session.execute(claim.where(MESSAGES.c.id.in_(due.scalar_subquery()))).all()
            else:
                candidates = session.execute(due.add_columns(MESSAGES.c.domain)).all()
                ids = self._apply_domain_rate(session, candidates, rate, now) if candidates else []
                rows = session.execute(claim.where(MESSAGES.c.id.in_(ids))).all() if ids else []
        return sorted((ClaimedMessage(
            id=row.id, key=row.idempotency_key, template=row.template, recipient=row.recipient,
            data=json.loads(row.data or "{}"), school=row.school, message_id=row.message_id, attempts=row.attempts,
            created_at=row.created_at, lease_until=lease_until,
        ) for row in rows), key=lambda message: message.id)

    def _apply_domain_rate(self, session: Session, candidates: Sequence[Any], rate: DomainRate,
                           now: datetime) -> list[int]:
        by_domain: dict[str, list[int]] = defaultdict(list)
        for row in candidates:
            by_domain[row.domain].append(row.id)
        start = rules.window_start(now.timestamp(), rate.window)
        taken: list[int] = []
        waiting: list[int] = []
        # Counters are taken in domain order so that two replicas never wait on each other's rows (no deadlock).
        for domain in sorted(by_domain):
            wanted = by_domain[domain]
            upsert = self._insert(COUNTERS).values(domain=domain, window_start=start, count=len(wanted))
            upsert = upsert.on_conflict_do_update(
                index_elements=["domain", "window_start"], set_={"count": COUNTERS.c.count + upsert.excluded.count},
            ).returning(COUNTERS.c.count)
            after = int(session.execute(upsert).scalar_one())
            allowed = rules.granted(len(wanted), rate.limit, after - len(wanted))
            if allowed < len(wanted):
                session.execute(
                    update(COUNTERS).where(COUNTERS.c.domain == domain, COUNTERS.c.window_start == start)
                    .values(count=COUNTERS.c.count - (len(wanted) - allowed))
                )
            taken += wanted[:allowed]
            waiting += wanted[allowed:]
        if waiting:
            next_window = datetime.fromtimestamp(start + rate.window, UTC)
            session.execute(update(MESSAGES).where(MESSAGES.c.id.in_(waiting)).values(due_at=next_window))
        return taken

    def record_outcomes(self, worker: str, outcomes: Sequence[Outcome]) -> int:
        """Record attempts' results in one transaction. A message whose lease `worker` lost (another worker took
        it over) is left to that worker. Template data is dropped once a message is sent or has failed."""
        if not outcomes:
            return 0
        owned = (MESSAGES.c.id == bindparam("b_id"), MESSAGES.c.worker == worker, MESSAGES.c.state == rules.SENDING)
        finished = [{"b_id": o.id, "b_state": o.state, "b_error": rules.clip_error(o.error),
                     "b_sent": o.at if o.state == rules.SENT else None, "b_now": o.at}
                    for o in outcomes if o.state in (rules.SENT, rules.FAILED)]
        retrying = [{"b_id": o.id, "b_error": rules.clip_error(o.error), "b_due": o.due_at, "b_now": o.at}
                    for o in outcomes if o.state == rules.QUEUED]
        changed = 0
        with self.db.transaction() as session:
            if finished:
                changed += session.execute(update(MESSAGES).where(*owned).values(
                    state=bindparam("b_state"), last_error=bindparam("b_error"), due_at=None, data="{}",
                    sent_at=bindparam("b_sent"), updated_at=bindparam("b_now")), finished).rowcount or 0
            if retrying:
                changed += session.execute(update(MESSAGES).where(*owned).values(
                    state=rules.QUEUED, last_error=bindparam("b_error"), due_at=bindparam("b_due"),
                    updated_at=bindparam("b_now")), retrying).rowcount or 0
        return int(changed)

    def release_messages(self, worker: str, ids: Sequence[int], now: datetime) -> None:
        """Give back messages claimed but not attempted (a worker stopping): due now, the attempt not counted."""
        with self.db.transaction() as session:
            for chunk in _chunks(list(ids)):
                session.execute(
                    update(MESSAGES)
                    .where(MESSAGES.c.id.in_(chunk), MESSAGES.c.worker == worker, MESSAGES.c.state == rules.SENDING)
                    .values(state=rules.QUEUED, due_at=now, attempts=MESSAGES.c.attempts - 1, updated_at=now)
                )

    def domain_counts(self, domain: str) -> dict[int, int]:
        with self.db.read() as session:
            rows = session.execute(select(COUNTERS.c.window_start, COUNTERS.c.count)
                                   .where(COUNTERS.c.domain == domain).order_by(COUNTERS.c.window_start))
            return {int(start): int(count) for start, count in rows}

    def prune_counters(self, before_epoch: int) -> int:
        with self.db.transaction() as session:
            result = session.execute(delete(COUNTERS).where(COUNTERS.c.window_start < before_epoch))
            return int(result.rowcount or 0)

    # Alerts ----------------------------------------------------------------------------------------------------

    def add_alert(self, alert: NewAlert, now: datetime) -> tuple[AlertRecord, bool]:
        """Store an alert once per key with its files; returns the stored alert and whether it is new."""
        with self.db.transaction() as session:
            statement = self._insert(ALERTS).values(
                idempotency_key=alert.key, channel=alert.channel, user_id=alert.user_id, thread_ts=alert.thread_ts,
                update_ts=alert.update_ts, text=alert.text, blocks_json=alert.blocks_json,
                state=rules.FAILED if alert.failed else rules.QUEUED, attempts=0, last_error=alert.failed,
                due_at=None if alert.failed else now, worker="", posted_channel="", posted_ts="",
                created_at=now, updated_at=now, sent_at=None,
            ).on_conflict_do_nothing(index_elements=["idempotency_key"]).returning(ALERTS.c.id)
            new_id = session.execute(statement).scalar()
            if new_id is not None and alert.files:
                session.execute(insert(ALERT_FILES), [{
                    "alert_id": new_id, "position": position, "filename": f.filename, "title": f.title,
                    "size": len(f.data), "data": f.data, "slack_file_id": "",
                } for position, f in enumerate(alert.files)])
            row = session.execute(select(ALERTS).where(ALERTS.c.idempotency_key == alert.key)).one()
            return _alert_record(row), new_id is not None

    def get_alert(self, key: str) -> AlertRecord | None:
        with self.db.read() as session:
            row = session.execute(select(ALERTS).where(ALERTS.c.idempotency_key == key)).first()
            return _alert_record(row) if row is not None else None

    def next_alert_due(self) -> datetime | None:
        with self.db.read() as session:
            return session.scalar(select(func.min(ALERTS.c.due_at)))

    def claim_alerts(self, worker: str, limit: int, now: datetime, lease_seconds: float) -> list[AlertRecord]:
        lease_until = now + timedelta(seconds=lease_seconds)
        with self.db.transaction() as session:
            due = self._locking(select(ALERTS.c.id).where(ALERTS.c.due_at <= now)
                                .order_by(ALERTS.c.due_at, ALERTS.c.id).limit(limit))
            ids = list(session.scalars(due))
            if not ids:
                return []
            session.execute(update(ALERTS).where(ALERTS.c.id.in_(ids)).values(
                state=rules.SENDING, worker=worker, due_at=lease_until, attempts=ALERTS.c.attempts + 1,
                updated_at=now))
            rows = session.execute(select(ALERTS).where(ALERTS.c.id.in_(ids)).order_by(ALERTS.c.id)).all()
        return [_alert_record(row, lease_until) for row in rows]

    def pending_files(self, alert_id: int) -> list[PendingFile]:
        """Files of an alert not uploaded yet, in order."""
        with self.db.read() as session:
            rows = session.execute(
                select(ALERT_FILES.c.id, ALERT_FILES.c.position, ALERT_FILES.c.filename, ALERT_FILES.c.title,
                       ALERT_FILES.c.data)
                .where(ALERT_FILES.c.alert_id == alert_id, ALERT_FILES.c.slack_file_id == "")
                .order_by(ALERT_FILES.c.position))
            return [PendingFile(r.id, r.position, r.filename, r.title, bytes(r.data)) for r in rows]

    def save_alert_post(self, alert_id: int, worker: str, channel: str, ts: str, now: datetime) -> bool:
        """Remember where the alert was posted (so a retry does not post again); False when the lease was lost."""
        with self.db.transaction() as session:
            result = session.execute(
                update(ALERTS).where(ALERTS.c.id == alert_id, ALERTS.c.worker == worker,
                                     ALERTS.c.state == rules.SENDING)
                .values(posted_channel=channel, posted_ts=ts, updated_at=now))
            return bool(result.rowcount)

    def save_file_uploaded(self, file_id: int, slack_file_id: str) -> None:
        with self.db.transaction() as session:
            session.execute(update(ALERT_FILES).where(ALERT_FILES.c.id == file_id)
                            .values(slack_file_id=slack_file_id, data=b""))

    def finish_alert(self, alert_id: int, worker: str, outcome: Outcome) -> bool:
        with self.db.transaction() as session:
            result = session.execute(
                update(ALERTS).where(ALERTS.c.id == alert_id, ALERTS.c.worker == worker,
                                     ALERTS.c.state == rules.SENDING)
                .values(state=outcome.state, last_error=rules.clip_error(outcome.error),
                        due_at=outcome.due_at if outcome.state == rules.QUEUED else None,
                        sent_at=outcome.at if outcome.state == rules.SENT else None, updated_at=outcome.at))
            return bool(result.rowcount)

    def release_alerts(self, worker: str, ids: Sequence[int], now: datetime) -> None:
        with self.db.transaction() as session:
            session.execute(
                update(ALERTS).where(ALERTS.c.id.in_(list(ids)), ALERTS.c.worker == worker,
                                     ALERTS.c.state == rules.SENDING)
                .values(state=rules.QUEUED, due_at=now, attempts=ALERTS.c.attempts - 1, updated_at=now))
