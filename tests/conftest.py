"""Fixtures every test may use. `database_url` runs a test on SQLite, and on PostgreSQL too when
PORTAL_TEST_DATABASE_URL is set."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from plumbing.config import Settings
from tests.support.databases import fresh_database, postgres_base_url
from tests.support.services import make_settings

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql" and postgres_base_url() is None:
        pytest.skip("PORTAL_TEST_DATABASE_URL is not set: PostgreSQL variant skipped")
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    with fresh_database(backend, tmp_path) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'portal.db'}"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path / "data", database_url)
