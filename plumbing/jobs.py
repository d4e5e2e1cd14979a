"""Long-running jobs (AIP-151 operations) stored by the service that owns them.

A job is a row: kind, input, progress (done/total), a checkpoint, a result or an error, and where it reports in
Slack. Workers claim jobs with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite serialises writers), renew
it while they work, and commit progress in the same transaction as each chunk of work, so a worker that dies loses
its lease and another resumes the job from the last committed chunk, each row once. When a job ends, its alert
(the final message for staff) is pending until notify has taken it: a restart never loses or doubles it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Column, Index, Integer, MetaData, String, Table, Text, and_, insert, or_, select, update
from sqlalchemy.orm import Session

from plumbing.context import Actor
from plumbing.db import Database, UtcDateTime, utcnow
from plumbing.waiting import wait_for_either

log = logging.getLogger("portal.jobs")

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
ENDED = (SUCCEEDED, FAILED, CANCELLED)
LEASE_SECONDS = 30.0
POLL_SECONDS = 1.0


def new_job_id(prefix: str) -> str:
    return f"{prefix}_{utcnow().strftime('%Y%m%d')}_{secrets.token_hex(5)}"


def jobs_table(metadata: MetaData, name: str) -> Table:
    """The jobs table of one service (named uniquely across services: they may share a SQLite file)."""
    return Table(
        name,
        metadata,
        Column("id", String(64), primary_key=True),
        Column("kind", String(40), nullable=False),
        Column("state", String(16), nullable=False),
        Column("done", Integer, nullable=False, default=0),
        Column("total", Integer, nullable=False, default=0),
        Column("summary", Text, nullable=False, default=""),
        Column("error_code", Integer, nullable=False, default=0),
        Column("error_message", Text, nullable=False, default=""),
        Column("payload", Text, nullable=False, default="{}"),
        Column("result", Text, nullable=False, default="{}"),
        Column("checkpoint", Text, nullable=False, default="{}"),
        Column("attributes", Text, nullable=False, default="{}"),
        Column("anchor", Text, nullable=False, default="{}"),
        Column("actor_id", String(64), nullable=False, default=""),
        Column("actor_name", String(200), nullable=False, default=""),
        Column("request_id", String(200), nullable=True, unique=True),
        Column("source_job_id", String(64), nullable=False, default=""),
        Column("lease_owner", String(120), nullable=False, default=""),
        Column("lease_expires", UtcDateTime, nullable=True),
        Column("alert_pending", Integer, nullable=False, default=0),
        Column("created_at", UtcDateTime, nullable=False),
        Column("updated_at", UtcDateTime, nullable=False),
        Column("ended_at", UtcDateTime, nullable=True),
        Index(f"ix_{name}_claim", "state", "created_at"),
    )


@dataclass
class JobRecord:
    id: str
    kind: str
    state: str
    done: int
    total: int
    summary: str
    error_code: int
    error_message: str
    payload: dict[str, Any]
    result: dict[str, Any]
    checkpoint: dict[str, Any]
    attributes: dict[str, str]
    anchor: dict[str, str]
    actor: Actor
    request_id: str | None
    source_job_id: str
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    alert_pending: bool

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> JobRecord:
        return cls(
            id=row["id"], kind=row["kind"], state=row["state"], done=row["done"], total=row["total"],
            summary=row["summary"], error_code=row["error_code"], error_message=row["error_message"],
            payload=json.loads(row["payload"]), result=json.loads(row["result"]),
            checkpoint=json.loads(row["checkpoint"]), attributes=json.loads(row["attributes"]),
            anchor=json.loads(row["anchor"]), actor=Actor(row["actor_id"], row["actor_name"]),
            request_id=row["request_id"], source_job_id=row["source_job_id"], created_at=row["created_at"],
            updated_at=row["updated_at"], ended_at=row["ended_at"], alert_pending=bool(row["alert_pending"]),
        )


class LeaseLost(Exception):
    """Another worker took this job (our lease expired); stop without writing anything more."""


class JobStore:
    """The SQL of jobs; one per service, over its own jobs table."""

    def __init__(self, db: Database, table: Table, id_prefix: str, lease: float = LEASE_SECONDS) -> None:
        self.db = db
        self.table = table
        self.id_prefix = id_prefix
        # How long a worker's claim lasts without renewal (renewed with every progress commit).
        self.lease = lease

    # Creating and reading -------------------------------------------------------------------------------------

    def create(
        self,
        session: Session,
        kind: str,
        payload: Mapping[str, Any],
        *,
        actor: Actor,
        anchor: Mapping[str, str] | None = None,
        request_id: str | None = None,
        source_job_id: str = "",
        total: int = 0,
        state: str = QUEUED,
        job_id: str | None = None,
    ) -> tuple[JobRecord, bool]:
        """Create a job in the caller's transaction. With a request_id already used, returns that job and False."""
        if request_id:
            existing = session.execute(select(self.table).where(self.table.c.request_id == request_id)).first()
            if existing is not None:
                return JobRecord.from_row(existing._mapping), False
        now = utcnow()
        values = {
            "id": job_id or new_job_id(self.id_prefix), "kind": kind, "state": state, "done": 0, "total": total,
            "summary": "", "error_code": 0, "error_message": "", "payload": json.dumps(dict(payload)),
            "result": "{}", "checkpoint": "{}", "attributes": "{}", "anchor": json.dumps(dict(anchor or {})),
            "actor_id": actor.id, "actor_name": actor.name, "request_id": request_id or None,
            "source_job_id": source_job_id, "lease_owner": "", "lease_expires": None, "alert_pending": 0,
            "created_at": now, "updated_at": now, "ended_at": None,
        }
        session.execute(insert(self.table), [values])
        return JobRecord.from_row(values), True

    def get(self, session: Session, job_id: str) -> JobRecord | None:
        row = session.execute(select(self.table).where(self.table.c.id == job_id)).first()
        return JobRecord.from_row(row._mapping) if row is not None else None

    def recent(self, session: Session, *, active_only: bool = False, limit: int = 50, before: str | None = None,
             kinds: tuple[str, ...] = ()) -> list[JobRecord]:
        query = select(self.table).order_by(self.table.c.created_at.desc(), self.table.c.id.desc()).limit(limit)
        if active_only:
            query = query.where(self.table.c.state.in_((QUEUED, RUNNING)))
        if kinds:
            query = query.where(self.table.c.kind.in_(kinds))
        if before:
            anchor = self.get(session, before)
            if anchor is not None:
                query = query.where(or_(self.table.c.created_at < anchor.created_at,
                                        and_(self.table.c.created_at == anchor.created_at,
                                             self.table.c.id < anchor.id)))
        return [JobRecord.from_row(row._mapping) for row in session.execute(query)]

    # Claiming and progress ------------------------------------------------------------------------------------

    def claim(self, owner: str, kinds: tuple[str, ...]) -> JobRecord | None:
        """Take the oldest queued job of these kinds, or a running one whose worker's lease has expired."""
        now = utcnow()
        lease = self.lease
        with self.db.transaction() as session:
            query = (
                select(self.table)
                .where(self.table.c.kind.in_(kinds))
                .where(or_(self.table.c.state == QUEUED,
                           and_(self.table.c.state == RUNNING, self.table.c.lease_expires < now)))
                .order_by(self.table.c.created_at, self.table.c.id)
                .limit(1)
            )
            if self.db.dialect == "postgresql":
                query = query.with_for_update(skip_locked=True)
            row = session.execute(query).first()
            if row is None:
                return None
            record = JobRecord.from_row(row._mapping)
            if record.state == RUNNING:
                log.warning("job %s: previous worker %s lost its lease; resuming", record.id, row.lease_owner)
            session.execute(
                update(self.table).where(self.table.c.id == record.id).values(
                    state=RUNNING, lease_owner=owner, lease_expires=now + timedelta(seconds=lease), updated_at=now)
            )
            record.state = RUNNING
            return record

    def _owned(self, job_id: str, owner: str) -> Any:
        return and_(self.table.c.id == job_id, self.table.c.lease_owner == owner, self.table.c.state == RUNNING)

    def renew(self, job_id: str, owner: str) -> bool:
        with self.db.transaction() as session:
            result = session.execute(update(self.table).where(self._owned(job_id, owner)).values(
                lease_expires=utcnow() + timedelta(seconds=self.lease)))
            return result.rowcount == 1

    def progress(self, session: Session, job_id: str, owner: str, *, done: int, total: int | None = None,
                 checkpoint: Mapping[str, Any] | None = None, summary: str | None = None) -> None:
        """Record progress in the caller's transaction (with the chunk's own writes). Raises LeaseLost."""
        values: dict[str, Any] = {"done": done, "updated_at": utcnow(),
                                  "lease_expires": utcnow() + timedelta(seconds=self.lease)}
        if total is not None:
            values["total"] = total
        if checkpoint is not None:
            values["checkpoint"] = json.dumps(dict(checkpoint))
        if summary is not None:
            values["summary"] = summary
        result = session.execute(update(self.table).where(self._owned(job_id, owner)).values(**values))
        if result.rowcount != 1:
            raise LeaseLost(job_id)

    def finish(self, session: Session, job_id: str, owner: str, *, state: str, summary: str = "",
               result: Mapping[str, Any] | None = None, attributes: Mapping[str, str] | None = None,
               error_code: int = 0, error_message: str = "", alert: bool = True) -> None:
        """End a job in the caller's transaction; its alert becomes pending in the same commit."""
        now = utcnow()
        values: dict[str, Any] = {"state": state, "summary": summary, "updated_at": now, "ended_at": now,
                                  "lease_owner": "", "lease_expires": None, "error_code": error_code,
                                  "error_message": error_message, "alert_pending": 1 if alert else 0}
        if result is not None:
            values["result"] = json.dumps(dict(result))
        if attributes is not None:
            values["attributes"] = json.dumps(dict(attributes))
        outcome = session.execute(update(self.table).where(self._owned(job_id, owner)).values(**values))
        if outcome.rowcount != 1:
            raise LeaseLost(job_id)

    def release(self, job_id: str, owner: str) -> None:
        """Give a job back at shutdown so another worker resumes it at once."""
        with self.db.transaction() as session:
            session.execute(update(self.table).where(self._owned(job_id, owner)).values(
                lease_expires=utcnow() - timedelta(seconds=1)))

    def set_attributes(self, session: Session, job_id: str, attributes: Mapping[str, str]) -> None:
        session.execute(update(self.table).where(self.table.c.id == job_id).values(
            attributes=json.dumps(dict(attributes)), updated_at=utcnow()))

    # Alerts ---------------------------------------------------------------------------------------------------

    def pending_alerts(self, limit: int = 20) -> list[JobRecord]:
        with self.db.read() as session:
            rows = session.execute(select(self.table).where(self.table.c.alert_pending == 1)
                                   .order_by(self.table.c.ended_at).limit(limit))
            return [JobRecord.from_row(row._mapping) for row in rows]

    def alert_sent(self, job_id: str) -> None:
        with self.db.transaction() as session:
            session.execute(update(self.table).where(self.table.c.id == job_id).values(alert_pending=0))


@dataclass
class JobContext:
    """What a job handler gets: the job, the store, its worker identity and a way to know it should stop."""

    job: JobRecord
    store: JobStore
    owner: str
    stopping: asyncio.Event

    def should_stop(self) -> bool:
        return self.stopping.is_set()


Handler = Callable[[JobContext], Awaitable[None]]


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass
class JobRunner:
    """Claims and runs jobs of the given kinds until told to stop. A handler commits its own progress and ends the
    job with `store.finish`; if it raises, the job fails with a generic message (details in the log). A handler
    that sees `should_stop()` returns early without finishing: the lease is released and the job resumes later."""

    store: JobStore
    handlers: Mapping[str, Handler]
    owner: str = field(default_factory=worker_identity)
    poll: float = POLL_SECONDS
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def poke(self) -> None:
        self._wake.set()

    async def run(self, stopping: asyncio.Event) -> None:
        kinds = tuple(self.handlers)
        while not stopping.is_set():
            job = await self.store.db.run(self.store.claim, self.owner, kinds)
            if job is None:
                await wait_for_either(stopping, self._wake, self.poll)
                continue
            await self._run_one(job, stopping)

    async def _keep_lease(self, job: JobRecord, lost: asyncio.Event) -> None:
        while True:
            await asyncio.sleep(self.store.lease / 3)
            if not await self.store.db.run(self.store.renew, job.id, self.owner):
                lost.set()
                return

    async def _run_one(self, job: JobRecord, stopping: asyncio.Event) -> None:
        lost = asyncio.Event()
        keeper = asyncio.create_task(self._keep_lease(job, lost))
        context = JobContext(job, self.store, self.owner, stopping)
        try:
            await self.handlers[job.kind](context)
        except LeaseLost:
            log.warning("job %s: lease lost to another worker; stopped here", job.id)
        except Exception:
            log.exception("job %s (%s) failed", job.id, job.kind)
            with contextlib.suppress(LeaseLost):
                def fail() -> None:
                    with self.store.db.transaction() as session:
                        self.store.finish(session, job.id, self.owner, state=FAILED,
                                          summary="The job stopped on an unexpected error; staff can try again.",
                                          error_code=13, error_message="internal error; see the service log")
                await self.store.db.run(fail)
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            if stopping.is_set():
                await self.store.db.run(self.store.release, job.id, self.owner)


# Protobuf view and alerts ---------------------------------------------------------------------------------------

_STATES = {QUEUED: 1, RUNNING: 2, SUCCEEDED: 3, FAILED: 4, CANCELLED: 5}


def job_to_proto(record: JobRecord) -> Any:
    """The portal.common.v1.Job message for a stored job."""
    from google.rpc import status_pb2

    from portal.common.v1 import jobs_pb2

    message = jobs_pb2.Job(
        id=record.id, kind=record.kind, state=_STATES[record.state], done=record.done, total=record.total,
        summary=record.summary, attributes={k: str(v) for k, v in record.attributes.items()},
        anchor=jobs_pb2.SlackAnchor(**{k: v for k, v in record.anchor.items()
                                       if k in ("channel", "thread_ts", "message_ts", "user_id")}),
        actor=record.actor.label if record.actor.id or record.actor.name else "",
    )
    message.create_time.FromDatetime(record.created_at)
    message.update_time.FromDatetime(record.updated_at)
    if record.ended_at is not None:
        message.end_time.FromDatetime(record.ended_at)
    if record.state == FAILED:
        message.error.CopyFrom(status_pb2.Status(code=record.error_code or 13, message=record.error_message))
    return message


@dataclass(frozen=True)
class AlertFile:
    filename: str
    data: bytes
    title: str = ""


@dataclass(frozen=True)
class AlertContent:
    """The final message of a job: text (also the notification), optional Block Kit blocks and files."""

    text: str
    blocks: list[dict[str, Any]] | None = None
    files: tuple[AlertFile, ...] = ()


ComposeAlert = Callable[[JobRecord], Awaitable[AlertContent | None]]


class JobAlertRelay:
    """Hands the final message of every ended job to notify's SendAlert (idempotency key: the job id), into the
    Slack thread the job was started from, else to the requester, else to PORTAL_ALERT_CHANNEL. Pending until
    notify accepts it, so a restart neither loses nor doubles it."""

    def __init__(self, store: JobStore, settings: Any, compose: ComposeAlert, poll: float = POLL_SECONDS) -> None:
        self.store = store
        self.settings = settings
        self.compose = compose
        self.poll = poll
        self._wake = asyncio.Event()

    def poke(self) -> None:
        self._wake.set()

    def _request(self, job: JobRecord, content: AlertContent) -> Any:
        from portal.common.v1 import jobs_pb2
        from portal.notify.v1 import notify_pb2

        anchor = job.anchor
        request = notify_pb2.SendAlertRequest(
            idempotency_key=f"job:{job.id}", text=content.text,
            blocks_json=json.dumps(content.blocks) if content.blocks else "",
            files=[notify_pb2.AlertFile(filename=f.filename, data=f.data, title=f.title or f.filename)
                   for f in content.files],
        )
        if anchor.get("channel"):
            request.channel = anchor["channel"]
            request.anchor.CopyFrom(jobs_pb2.SlackAnchor(
                channel=anchor["channel"], thread_ts=anchor.get("thread_ts", ""),
                message_ts=anchor.get("message_ts", ""), user_id=anchor.get("user_id", "")))
        elif anchor.get("user_id"):
            request.user_id = anchor["user_id"]
        elif self.settings.alert_channel:
            request.channel = self.settings.alert_channel
        return request

    async def relay_once(self, stub: Any) -> int:
        sent = 0
        for job in await self.store.db.run(self.store.pending_alerts):
            content = await self.compose(job)
            if content is not None:
                await stub.SendAlert(self._request(job, content), timeout=60)
            await self.store.db.run(self.store.alert_sent, job.id)
            sent += 1
        return sent

    async def run(self, stopping: asyncio.Event) -> None:
        import grpc

        from plumbing.clients import open_channel
        from portal.notify.v1 import notify_pb2_grpc

        backoff = self.poll
        async with open_channel(self.settings, "notify") as channel:
            stub = notify_pb2_grpc.NotifyServiceStub(channel)
            while not stopping.is_set():
                try:
                    await self.relay_once(stub)
                    backoff = self.poll
                except grpc.RpcError as exc:
                    log.warning("notify is not taking job alerts yet (%s); retrying", exc.code().name)
                    backoff = min(backoff * 2, 30.0)
                except Exception:
                    log.exception("job alert relay failed; retrying")
                    backoff = min(backoff * 2, 30.0)
                await wait_for_either(stopping, self._wake, backoff)
