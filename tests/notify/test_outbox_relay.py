"""The shared outbox relay (plumbing/outbox.py) end to end: rows written in a service's own table reach the real
notify server and the SMTP server, once, whether or not notify was up when they were written."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from sqlalchemy import MetaData, Table, text, update

from plumbing.clients import open_channel
from plumbing.config import Settings
from plumbing.db import Database
from plumbing.outbox import OutboxRelay, enqueue_email, enqueue_emails, outbox_table, pending_count
from portal.notify.v1 import notify_pb2, notify_pb2_grpc
from tests.notify.helpers import FAST, LINK_BASE, all_in_state, eventually, notify_stub
from tests.support.services import make_settings, running_service
from tests.support.smtp import SmtpServer

SENT = notify_pb2.DELIVERY_STATE_SENT


@pytest.fixture
def outbox(database_url: str) -> Iterator[tuple[Database, Table]]:
    """A small outbox table of a pretend service, in its own schema on PostgreSQL."""
    db = Database(database_url, "relaytest", pool_size=2)
    if db.dialect == "postgresql":
        with db.engine.begin() as connection:
            connection.execute(text('CREATE SCHEMA IF NOT EXISTS "relaytest"'))
    metadata = MetaData()
    table = outbox_table(metadata, "relaytest_outbox")
    metadata.create_all(db.engine)
    try:
        yield db, table
    finally:
        db.dispose()


def _write(db: Database, table: Table, keys: list[str]) -> None:
    with db.transaction() as session:
        enqueue_emails(session, table, [
            {"key": key, "template": "invitation", "to": f"{key}@example.org", "job_id": "relay-job",
             "data": {"username": f"u{key}", "first_name": "Robin", "link": LINK_BASE + key}}
            for key in keys
        ])


def _settings(tmp_path: Path, database_url: str, smtp: SmtpServer) -> Settings:
    return make_settings(tmp_path / "data", database_url, **smtp.settings_overrides(), **FAST)


async def test_rows_written_while_notify_is_down_are_delivered_once_and_a_second_pass_sends_nothing(
        tmp_path, database_url, outbox, smtp):
    db, table = outbox
    settings = _settings(tmp_path, database_url, smtp)
    keys = [f"relay{n:03d}" for n in range(12)]
    await db.run(_write, db, table, keys)
    relay = OutboxRelay(db, table, settings)

    async with open_channel(settings, "notify") as channel:
        stub = notify_pb2_grpc.NotifyServiceStub(channel)
        # Notify is not running: the hand-over fails, the rows stay pending with the reason.
        with pytest.raises(grpc.RpcError) as down:
            await relay.relay_once(stub)
        assert down.value.code() == grpc.StatusCode.UNAVAILABLE
        assert await db.run(_pending, db, table) == 12
        with db.read() as session:
            errors = set(session.scalars(table.select().with_only_columns(table.c.last_error)))
        assert len(errors) == 1 and errors.pop().startswith("UNAVAILABLE")

        async with running_service("notify", settings):
            assert await relay.relay_once(stub) == 12
            assert await db.run(_pending, db, table) == 0
            async with notify_stub(settings) as client:
                await eventually(lambda: all_in_state(client, keys, SENT), what="every relayed email sent")
                # A second pass finds nothing to hand over.
                assert await relay.relay_once(stub) == 0
                # A relay that died after notify took the rows but before marking them hands them over again:
                # notify already has every key, so nothing is sent twice.
                await db.run(_forget_relayed, db, table)
                assert await relay.relay_once(stub) == 12
                await db.run(_write, db, table, ["relaynext"])
                assert await relay.relay_once(stub) == 1
                await eventually(lambda: all_in_state(client, ["relaynext"], SENT), what="the later email sent")
                listed = await client.ListMessages(notify_pb2.ListMessagesRequest(job_id="relay-job"), timeout=10)
                assert {m.attempts for m in listed.messages} == {1}
    received = Counter(m.rcpt_tos[0] for m in smtp.messages)
    assert received == {f"{key}@example.org": 1 for key in [*keys, "relaynext"]}
    # The outbox rows no longer hold the set-password links once notify has them.
    with db.read() as session:
        assert set(session.scalars(table.select().with_only_columns(table.c.data))) == {"{}"}


def _pending(db: Database, table: Table) -> int:
    with db.read() as session:
        return pending_count(session, table)


def _forget_relayed(db: Database, table: Table) -> None:
    with db.transaction() as session:
        session.execute(update(table).where(table.c.idempotency_key != "").values(relayed_at=None))


async def test_the_relay_loop_delivers_once_notify_starts_after_the_rows_were_written(
        tmp_path, database_url, outbox, smtp):
    db, table = outbox
    settings = _settings(tmp_path, database_url, smtp)
    with db.transaction() as session:
        enqueue_email(session, table, key="late0001", template="password_reset", to="late@example.org",
                      data={"username": "lateuser", "link": LINK_BASE + "late0001"})
    relay = OutboxRelay(db, table, settings)
    stopping = asyncio.Event()
    loop = asyncio.create_task(relay.run(stopping))
    try:
        # The relay tried while notify was down and recorded why.
        await eventually(lambda: db.run(_last_error, db, table), what="a failed hand-over recorded")
        async with running_service("notify", settings), notify_stub(settings) as client:
            await eventually(lambda: all_in_state(client, ["late0001"], SENT), timeout=40, what="the email sent")
            with db.transaction() as session:
                enqueue_email(session, table, key="late0002", template="notice", to="late@example.org",
                              data={"subject": "Parents' evening", "body": "Thursday at 6pm."})
            relay.poke()
            await eventually(lambda: all_in_state(client, ["late0002"], SENT), what="the poked email sent")
    finally:
        stopping.set()
        await asyncio.wait_for(loop, 10)
    subjects = sorted(str(m.message["Subject"]) for m in smtp.messages)
    assert subjects == ["Parents' evening", "Reset your Parent Portal password"]


def _last_error(db: Database, table: Table) -> str:
    with db.read() as session:
        return str(session.scalar(table.select().with_only_columns(table.c.last_error)) or "")
