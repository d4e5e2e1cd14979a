"""The email outbox every service shares.

A service that commits a change needing an email writes an outbox row in its own database, in the same
transaction (`enqueue_email`). A relay (`OutboxRelay`, one per service process) hands pending rows to the notify
service with their idempotency keys, which notify stores once. A crash anywhere between the commit and the
hand-over therefore delays an email but never loses it, and a repeated hand-over never sends it twice.
Once notify has a message, the row's data (which may hold a set-password link) is cleared.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import grpc
from google.protobuf import struct_pb2
from sqlalchemy import Column, Index, Integer, MetaData, String, Table, Text, select, update
from sqlalchemy.orm import Session

from plumbing.bulk import insert_many
from plumbing.config import Settings
from plumbing.db import Database, UtcDateTime, utcnow
from plumbing.waiting import wait_for_either

log = logging.getLogger("portal.outbox")

TEMPLATES = ("invitation", "password_reset", "login_details", "two_factor_enabled", "notice")
RELAY_BATCH = 500
_data_json = json.JSONEncoder(default=str).encode  # built once: a batch queues thousands of emails
POLL_SECONDS = 1.0


def outbox_table(metadata: MetaData, name: str) -> Table:
    """The outbox table of one service (its name is unique across services: they may share a SQLite file)."""
    return Table(
        name,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("idempotency_key", String(200), nullable=False, unique=True),
        Column("template", String(40), nullable=False),
        Column("recipient", String(320), nullable=False),
        Column("data", Text, nullable=False),
        Column("job_id", String(64), nullable=False, default=""),
        Column("school", String(200), nullable=False, default=""),
        Column("created_at", UtcDateTime, nullable=False),
        Column("relayed_at", UtcDateTime, nullable=True),
        Column("attempts", Integer, nullable=False, default=0),
        Column("last_error", Text, nullable=False, default=""),
        Index(f"ix_{name}_pending", "relayed_at", "id"),
    )


def enqueue_email(
    session: Session,
    table: Table,
    *,
    key: str,
    template: str,
    to: str,
    data: Mapping[str, Any],
    job_id: str = "",
    school: str = "",
) -> None:
    """Add one email to the outbox inside the caller's transaction. A key already present is left as it is."""
    enqueue_emails(session, table, [dict(key=key, template=template, to=to, data=data, job_id=job_id,
                                         school=school)])


def outbox_rows(emails: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The outbox rows of emails (one per key; a key given twice is queued once), ready for `enqueue_rows`. Pure,
    so a bulk job can build them before it opens its transaction."""
    for email in emails:
        if email["template"] not in TEMPLATES:
            raise ValueError(f"unknown email template {email['template']!r}")
    now = utcnow()
    rows, keys = [], set()
    for email in emails:
        if email["key"] in keys:
            continue
        keys.add(email["key"])
        rows.append({
            "idempotency_key": email["key"], "template": email["template"], "recipient": email["to"],
            "data": _data_json(dict(email["data"])), "job_id": email.get("job_id", ""),
            "school": email.get("school", ""), "created_at": now, "attempts": 0, "last_error": "",
        })
    return rows


def enqueue_rows(session: Session, table: Table, rows: list[dict[str, Any]]) -> int:
    """Queue outbox rows made by `outbox_rows`; returns how many new rows were written (a key already queued is
    left as it is)."""
    return insert_many(session, table, rows, ignore_duplicates=True) if rows else 0


def enqueue_emails(session: Session, table: Table, emails: list[dict[str, Any]]) -> int:
    """Bulk form of `enqueue_email`; returns how many new rows were written."""
    return enqueue_rows(session, table, outbox_rows(emails))


def pending_count(session: Session, table: Table) -> int:
    from sqlalchemy import func

    return int(session.scalar(select(func.count()).select_from(table).where(table.c.relayed_at.is_(None))) or 0)


class OutboxRelay:
    """Hands a service's pending outbox rows to notify, oldest first, in batches. Several replicas may run it:
    rows are claimed with FOR UPDATE SKIP LOCKED on PostgreSQL (SQLite serialises writers anyway)."""

    def __init__(self, db: Database, table: Table, settings: Settings, batch: int = RELAY_BATCH) -> None:
        self.db = db
        self.table = table
        self.settings = settings
        self.batch = batch
        self._wake = asyncio.Event()

    def poke(self) -> None:
        """Ask the relay to look now (after a commit that queued emails) instead of at the next poll."""
        self._wake.set()

    def _claim(self) -> list[dict[str, Any]]:
        with self.db.transaction() as session:
            query = (select(self.table).where(self.table.c.relayed_at.is_(None))
                     .order_by(self.table.c.id).limit(self.batch))
            if self.db.dialect == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = [dict(row._mapping) for row in session.execute(query)]
            if rows:
                # A short lease: bump attempts so a relay that dies mid-way is visible; rows stay pending until
                # notify confirms, so the next pass (here or in another replica) hands them over again.
                session.execute(update(self.table).where(self.table.c.id.in_([r["id"] for r in rows]))
                                .values(attempts=self.table.c.attempts + 1))
            return rows

    def _mark_relayed(self, ids: list[int], when: datetime) -> None:
        with self.db.transaction() as session:
            session.execute(update(self.table).where(self.table.c.id.in_(ids))
                            .values(relayed_at=when, data="{}", last_error=""))

    def _record_error(self, ids: list[int], error: str) -> None:
        with self.db.transaction() as session:
            session.execute(update(self.table).where(self.table.c.id.in_(ids)).values(last_error=error[:2000]))

    async def relay_once(self, stub: Any) -> int:
        """Hand over one batch; returns how many rows notify accepted."""
        from portal.notify.v1 import notify_pb2

        rows = await self.db.run(self._claim)
        if not rows:
            return 0
        emails = []
        for row in rows:
            data = struct_pb2.Struct()
            data.update(json.loads(row["data"]))
            emails.append(notify_pb2.EmailRequest(
                idempotency_key=row["idempotency_key"],
                template=notify_pb2.Template.Value(f"TEMPLATE_{row['template'].upper()}"),
                to=row["recipient"], data=data, job_id=row["job_id"], school=row["school"],
            ))
        ids = [row["id"] for row in rows]
        try:
            await stub.EnqueueEmails(notify_pb2.EnqueueEmailsRequest(emails=emails), timeout=30)
        except grpc.RpcError as exc:
            await self.db.run(self._record_error, ids, f"{exc.code().name}: {exc.details()}")
            raise
        await self.db.run(self._mark_relayed, ids, utcnow())
        return len(rows)

    async def run(self, stopping: asyncio.Event) -> None:
        """Relay until `stopping` is set; back off while notify is not answering."""
        from plumbing.clients import open_channel
        from portal.notify.v1 import notify_pb2_grpc

        backoff = POLL_SECONDS
        async with open_channel(self.settings, "notify") as channel:
            stub = notify_pb2_grpc.NotifyServiceStub(channel)
            while not stopping.is_set():
                try:
                    moved = await self.relay_once(stub)
                    backoff = POLL_SECONDS
                except grpc.RpcError as exc:
                    log.warning("notify is not taking emails yet (%s); retrying in %.0f s", exc.code().name, backoff)
                    moved = 0
                    backoff = min(backoff * 2, 30.0)
                except Exception:
                    log.exception("outbox relay failed; retrying")
                    moved = 0
                    backoff = min(backoff * 2, 30.0)
                if moved >= self.batch:
                    continue
                await wait_for_either(stopping, self._wake, backoff)
