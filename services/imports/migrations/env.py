"""Alembic environment of the imports service (see plumbing.migrations)."""

from plumbing.migrations import run_env
from services.imports.models import Base

run_env(Base.metadata)
