"""Alembic environment of the accounts service (see plumbing.migrations)."""

from plumbing.migrations import run_env
from services.accounts.models import Base

run_env(Base.metadata)
