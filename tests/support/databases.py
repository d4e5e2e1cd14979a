"""A fresh database per test: a SQLite file always, and a new PostgreSQL database when
PORTAL_TEST_DATABASE_URL is set (created from that server, dropped afterwards)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

PG_ENV = "PORTAL_TEST_DATABASE_URL"


def postgres_base_url() -> str | None:
    url = os.environ.get(PG_ENV, "").strip()
    if not url:
        return None
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _admin_dsn(url: str) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


@contextmanager
def fresh_database(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'portal.db'}"
        return
    base = postgres_base_url()
    assert base is not None
    name = f"portal_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_admin_dsn(base), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_admin_dsn(base), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
