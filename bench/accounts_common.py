"""What the accounts benchmarks share: a fresh database (SQLite in a temporary folder, or a new PostgreSQL
database when PORTAL_BENCH_DATABASE_URL points at a server), the real accounts server in this process, and bulk
seeding of the roster and accounts straight into the tables (seeding is set-up, not what is measured)."""

from __future__ import annotations

import os
import random
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import insert
from sqlalchemy.engine import make_url

from plumbing import migrations
from plumbing.clients import open_channel
from plumbing.config import Settings
from plumbing.db import Database, utcnow
from plumbing.server import serving
from portal.accounts.v1 import accounts_pb2_grpc
from services.accounts.models import (
    AccountRecord,
    AccountStudentRecord,
    RosterContactRecord,
    RosterStudentRecord,
)
from services.accounts.service import AccountsOptions, make_spec

PG_VARIABLE = "PORTAL_BENCH_DATABASE_URL"
LAST_NAMES = ["Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel", "Robinson",
              "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood", "Jackson",
              "O'Brien", "Nguyen", "García", "Kowalski", "Müller", "Okafor", "Singh", "Chen", "Dubois", "Rossi"]
FIRST_NAMES = ["Amelia", "Oliver", "Isla", "George", "Ava", "Noah", "Mia", "Leo", "Ivy", "Arthur", "Freya", "Oscar",
               "Lily", "Harry", "Sophie", "Jack", "Grace", "Finley", "Zoé", "Mateo", "Aisha", "Ravi", "Mei", "Sean"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def fresh_database(folder: Path) -> Iterator[str]:
    """A SQLite file in `folder`, or a new PostgreSQL database on PORTAL_BENCH_DATABASE_URL's server (dropped
    afterwards)."""
    base = os.environ.get(PG_VARIABLE, "").strip()
    if not base:
        yield f"sqlite:///{folder / 'bench.db'}"
        return
    if base.startswith(("postgresql://", "postgres://")):
        base = "postgresql+psycopg://" + base.split("://", 1)[1]
    admin = make_url(base).set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"portal_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def bench_settings() -> Iterator[Settings]:
    with tempfile.TemporaryDirectory(prefix="portal-bench-") as tmp, fresh_database(Path(tmp)) as url:
        yield Settings(data_dir=Path(tmp), database_url=url, service_token="bench-token", secret_key="bench-secret",
                       accounts_addr=f"127.0.0.1:{free_port()}", notify_addr=f"127.0.0.1:{free_port()}",
                       log_level="WARNING", log_format="text")


def migrated(settings: Settings) -> Database:
    db = Database(settings.resolved_database_url, "accounts")
    migrations.upgrade(db, "accounts")
    return db


@asynccontextmanager
async def running_accounts(settings: Settings, options: AccountsOptions) -> AsyncIterator[Any]:
    """The real accounts server in this process; yields a stub on an authenticated channel."""
    async with serving(make_spec(options), settings), open_channel(settings, "accounts") as channel:
        yield accounts_pb2_grpc.AccountsServiceStub(channel)


def student_id(index: int) -> str:
    return f"S{index:07d}"


def seed(db: Database, students: int, accounts: int, rng: random.Random) -> None:
    """`students` roster students, `accounts` parent accounts each linked to one student, and a roster contact for
    every other account (same email), in bulk."""
    now = utcnow()
    chunk = 20_000
    with db.transaction() as session:
        for start in range(0, students, chunk):
            session.execute(insert(RosterStudentRecord.__table__), [{
                "id": student_id(i), "first_name": rng.choice(FIRST_NAMES), "last_name": (last := rng.choice(
                    LAST_NAMES)), "last_name_key": last.lower(), "grad_year": 2026 + i % 13,
                "group": f"{7 + i % 6}{'ABCD'[i % 4]}", "group_key": f"{7 + i % 6}{'abcd'[i % 4]}",
                "school": f"School {i % 40}", "school_key": f"school {i % 40}", "status": "active",
                "created_at": now, "updated_at": now} for i in range(start, min(start + chunk, students))])
        for start in range(0, accounts, chunk):
            rows = []
            for i in range(start, min(start + chunk, accounts)):
                last = LAST_NAMES[i % len(LAST_NAMES)]
                rows.append({
                    "id": uuid.uuid4().hex, "username": f"parent{i:07d}", "username_key": f"parent{i:07d}",
                    "first_name": FIRST_NAMES[i % len(FIRST_NAMES)], "last_name": last,
                    "last_name_key": last.lower(), "email": f"parent{i:07d}@example.org",
                    "email_key": f"parent{i:07d}@example.org", "type": "guardian", "role": "parent",
                    "status": "active", "must_change_password": False, "two_factor": "off", "password_hash": None,
                    "contact_id": f"C{i:07d}" if i % 2 == 0 else "", "created_at": now, "updated_at": now,
                    "last_sign_in_at": None})
            session.execute(insert(AccountRecord.__table__), rows)
            session.execute(insert(AccountStudentRecord.__table__), [
                {"account_id": r["id"], "student_id": student_id(i % students), "created_at": now}
                for i, r in zip(range(start, start + len(rows)), rows, strict=True)])
            session.execute(insert(RosterContactRecord.__table__), [
                {"id": r["contact_id"], "first_name": r["first_name"], "last_name": r["last_name"],
                 "email": r["email"], "email_key": r["email_key"], "phone": "", "address": "", "no_contact": False,
                 "created_at": now, "updated_at": now} for r in rows if r["contact_id"]])
