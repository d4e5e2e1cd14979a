"""The schema the migrations build is the schema the models describe, for every owner of tables."""

from __future__ import annotations

import importlib

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from plumbing import migrations
from plumbing.db import Database

OWNERS = {
    "accounts": "services.accounts.models",
    "imports": "services.imports.models",
    "notify": "services.notify.models",
    "bot": "bot.models",
}


@pytest.mark.parametrize("owner", sorted(OWNERS))
def test_migrations_build_exactly_the_models(owner: str, database_url: str) -> None:
    db = Database(database_url, owner, pool_size=1)
    try:
        migrations.upgrade(db, owner)
        metadata = importlib.import_module(OWNERS[owner]).Base.metadata
        with db.engine.connect() as connection:
            assert migrations.is_at_head(connection, owner)
            context = MigrationContext.configure(connection, opts={
                "compare_type": True,
                "include_name": _own_tables(metadata, owner),
            })
            assert compare_metadata(context, metadata) == []
        # Running again (a second replica starting) changes nothing.
        migrations.upgrade(db, owner)
    finally:
        db.dispose()


def _own_tables(metadata, owner):
    """On SQLite every owner's tables share one file: compare only this owner's (and ignore Alembic's own)."""
    names = set(metadata.tables)

    def include(name, type_, _parent_names):
        if type_ == "table":
            return name in names
        return True

    return include
