"""Alembic migrations per service: applied at start (or by `portal migrate`), under an advisory lock on PostgreSQL.

Each service keeps its scripts in services/<name>/migrations/ with a two-line env.py calling `run_env`.
"""

from __future__ import annotations

import logging
import time
import zlib
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, text

from plumbing.db import Database

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent
# Every owner of tables and where its Alembic scripts live (the bot keeps its record of handled events too).
MIGRATION_DIRS = {
    "accounts": ROOT / "services" / "accounts" / "migrations",
    "imports": ROOT / "services" / "imports" / "migrations",
    "notify": ROOT / "services" / "notify" / "migrations",
    "bot": ROOT / "bot" / "migrations",
}


def version_table(service: str) -> str:
    return f"alembic_version_{service}"


def alembic_config(service: str, connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATION_DIRS[service]))
    config.attributes["service"] = service
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def run_env(metadata: MetaData) -> None:
    """Body of every service's migrations/env.py: migrate on the connection handed in by `upgrade`."""
    from alembic import context

    config = context.config
    service = config.attributes["service"]
    connection: Connection = config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=version_table(service),
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _lock_key(service: str) -> int:
    return zlib.crc32(f"portal-migrate-{service}".encode()) & 0x7FFFFFFF


def upgrade(db: Database, service: str) -> None:
    """Bring the service's schema to head. Safe to run from several processes at once."""
    with db.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _lock_key(service)})
            connection.commit()
            try:
                connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{db.schema}"'))
                connection.commit()
                _upgrade_on(connection, service)
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _lock_key(service)})
                connection.commit()
        else:
            _upgrade_on(connection, service)


def _upgrade_on(connection: Connection, service: str) -> None:
    if is_at_head(connection, service):
        return
    log.info("migrating %s schema to head", service)
    command.upgrade(alembic_config(service, connection), "head")
    connection.commit()


# The head of each service's scripts, kept with the state of their folder: health asks every few seconds, and
# reading the scripts (Alembic imports every one) costs a good part of a second of processor time.
_heads: dict[str, tuple[tuple[int, int], str | None]] = {}


def _scripts_state(service: str) -> tuple[int, int]:
    versions = MIGRATION_DIRS[service] / "versions"
    stat = versions.stat()
    return stat.st_mtime_ns, sum(1 for _ in versions.glob("*.py"))


def head_revision(service: str) -> str | None:
    state = _scripts_state(service)
    cached = _heads.get(service)
    if cached is not None and cached[0] == state:
        return cached[1]
    head = ScriptDirectory.from_config(alembic_config(service)).get_current_head()
    _heads[service] = (state, head)
    return head


def is_at_head(connection: Connection, service: str) -> bool:
    context = MigrationContext.configure(connection, opts={"version_table": version_table(service)})
    return context.get_current_revision() == head_revision(service)


def schema_ready(db: Database, service: str) -> bool:
    """True when the database answers and the service's schema is at head (what health reports)."""
    try:
        with db.engine.connect() as connection:
            return is_at_head(connection, service)
    except Exception:
        return False


def wait_for_schema(db: Database, service: str, timeout: float | None = None) -> bool:
    """PORTAL_MIGRATE=never: wait for someone else's migration (a Kubernetes Job) to reach head."""
    started = time.monotonic()
    while not schema_ready(db, service):
        if timeout is not None and time.monotonic() - started > timeout:
            return False
        time.sleep(1.0)
    return True


def make_revision(service: str, db: Database, message: str) -> None:
    """Autogenerate a migration from the difference between the models and the database at head."""
    upgrade(db, service)
    with db.engine.connect() as connection:
        command.revision(alembic_config(service, connection), message=message, autogenerate=True)
