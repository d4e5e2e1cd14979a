"""plumbing.bulk.insert_many stores exactly what SQLAlchemy's own insert stores, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Boolean, Column, Integer, MetaData, String, Table, select
from sqlalchemy.exc import IntegrityError

from plumbing.bulk import insert_many
from plumbing.db import Database, UtcDateTime
from services.accounts.store import new_id

metadata = MetaData()
things = Table(
    "bulk_things", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(40), nullable=False, unique=True),
    Column("flag", Boolean, nullable=False),
    Column("seen_at", UtcDateTime, nullable=True),
    Column("note", String(40), nullable=False, default="(none)"),  # a default computed in Python
)


@pytest.fixture
def db(database_url: str) -> Database:
    database = Database(database_url, "bulktest")
    if database.dialect == "postgresql":
        with database.engine.begin() as connection:
            connection.exec_driver_sql("CREATE SCHEMA IF NOT EXISTS bulktest")
    metadata.drop_all(database.engine)
    metadata.create_all(database.engine)
    yield database
    metadata.drop_all(database.engine)
    database.dispose()


def stored(db: Database) -> list[tuple]:
    with db.read() as session:
        return [tuple(r) for r in session.execute(select(things.c.key, things.c.flag, things.c.seen_at, things.c.note)
                                                  .order_by(things.c.key))]


def test_values_come_back_as_given_whatever_the_shape_of_each_row(db: Database) -> None:
    now = datetime(2026, 9, 1, 8, 30, 15, 123456, tzinfo=UTC)
    later = now + timedelta(hours=2)
    rows = [{"key": f"k{i:03d}", "flag": i % 2 == 0, "seen_at": now if i < 5 else later, "note": f"n{i}"}
            for i in range(8)]
    rows.append({"key": "k900", "flag": False, "seen_at": None, "note": "empty"})
    rows.append({"key": "k901", "flag": True, "seen_at": later})  # no note: the column's default applies
    with db.transaction() as session:
        assert insert_many(session, things, rows) == 10
    found = stored(db)
    assert found[:8] == [(f"k{i:03d}", i % 2 == 0, now if i < 5 else later, f"n{i}") for i in range(8)]
    assert found[8] == ("k900", False, None, "empty")
    assert found[9] == ("k901", True, later, "(none)")
    assert all(r[2] is None or r[2].tzinfo is not None for r in found)


def test_duplicates_are_skipped_when_asked_and_refused_otherwise(db: Database) -> None:
    now = datetime.now(UTC)
    with db.transaction() as session:
        insert_many(session, things, [{"key": "a", "flag": True, "seen_at": now, "note": "first"}])
    with db.transaction() as session:
        written = insert_many(session, things, [{"key": "a", "flag": False, "seen_at": now, "note": "second"},
                                                {"key": "b", "flag": False, "seen_at": now, "note": "new"}],
                              ignore_duplicates=True)
    assert written == 1
    assert [(r[0], r[3]) for r in stored(db)] == [("a", "first"), ("b", "new")]
    with pytest.raises(IntegrityError), db.transaction() as session:
        insert_many(session, things, [{"key": "c", "flag": True, "seen_at": now, "note": "x"},
                                      {"key": "a", "flag": True, "seen_at": now, "note": "again"}])
    assert [r[0] for r in stored(db)] == ["a", "b"]  # the refused batch left nothing behind


def test_new_ids_sort_in_the_order_they_were_made() -> None:
    ids = [new_id() for _ in range(20_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
