"""Fixtures of the accounts tests: the real service on a loopback port, with an injectable clock, a cheap argon2
setting and a one-process hashing pool (production defaults stay as they are)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from plumbing.clients import open_channel
from plumbing.config import Settings
from plumbing.context import Actor, actor_metadata
from plumbing.db import Database
from plumbing.errors import status_details
from portal.accounts.v1 import accounts_pb2 as pb
from portal.accounts.v1 import accounts_pb2_grpc
from services.accounts.hashing import HashParams
from services.accounts.service import AccountsOptions, make_spec
from services.accounts.throttling import ThrottleRules
from tests.support.services import running_service

# argon2id at its smallest cost: the same code path as production, a thousand times cheaper.
CHEAP_HASHING = HashParams(time_cost=1, memory_cost=8, parallelism=1)
OFFICE = Actor("U0OFFICE", "Olive Office")
STAFF_CALL = actor_metadata(OFFICE)


class Clock:
    """A clock the test moves by hand (the service reads it wherever it needs the time)."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 9, 1, 8, 0, tzinfo=UTC))


@asynccontextmanager
async def serve_accounts(settings: Settings, clock: Clock, **options: Any) -> AsyncIterator[Any]:
    """Run the accounts service until the block ends; yields a stub on an authenticated channel."""
    spec = make_spec(AccountsOptions(hash_workers=1, hash_params=CHEAP_HASHING, clock=clock,
                                     throttle=options.pop("throttle", ThrottleRules()), **options))
    async with running_service("accounts", settings, spec), open_channel(settings, "accounts") as channel:
        yield accounts_pb2_grpc.AccountsServiceStub(channel)


@pytest.fixture
async def accounts(settings: Settings, clock: Clock) -> AsyncIterator[Any]:
    async with serve_accounts(settings, clock) as stub:
        yield stub


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    """Direct access to the service's tables, for what the API does not show (hashes, outbox rows)."""
    db = Database(settings.resolved_database_url, "accounts", pool_size=2)
    try:
        yield db
    finally:
        db.dispose()


# Helpers ---------------------------------------------------------------------------------------------------------

async def create_account(stub: Any, username: str, password: str = "", request_id: str = "",
                         **fields: Any) -> pb.Account:
    values: dict[str, Any] = {"first_name": "Jane", "last_name": "Smith",
                              "email": f"{username.lower()}@example.org"}
    values.update(fields)
    return await stub.CreateAccount(pb.CreateAccountRequest(
        account=pb.Account(username=username, **values), password=password, request_id=request_id),
        metadata=STAFF_CALL)


async def failure(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    """The error a call ends with (the test fails if it succeeds)."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


def details(error: grpc.aio.AioRpcError) -> tuple[list[tuple[str, str]], str]:
    """Field violations as (field, description) and the ErrorInfo reason."""
    violations, reason = status_details(error)
    return [(v.field, v.description) for v in violations], reason


async def add_students(stub: Any, *ids: str, **fields: Any) -> None:
    students = [pb.Student(id=i, first_name=f"Kid {i}", last_name=fields.get("last_name", "Smith"),
                           grad_year=fields.get("grad_year", 2031), group=fields.get("group", "7B"),
                           school=fields.get("school", "Hillside")) for i in ids]
    await stub.BatchUpsertRoster(pb.BatchUpsertRosterRequest(students=students), metadata=STAFF_CALL)


# Columns the outbox relay updates in the background while it retries (notify is not running in these tests).
RELAY_BOOKKEEPING = {"attempts", "last_error"}


def dump_tables(db: Database) -> str:
    """Every value of every table of the service, as text, in primary-key order (to compare before and after,
    and to look for what must never be stored)."""
    from sqlalchemy import select

    from services.accounts.models import Base

    parts = []
    with db.read() as session:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if c.name not in RELAY_BOOKKEEPING]
            for row in session.execute(select(*columns).order_by(*table.primary_key.columns)):
                parts.append(f"{table.name}: {tuple(row)!r}")
    return "\n".join(parts)
