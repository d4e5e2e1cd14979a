"""Alembic environment of the bot (see plumbing.migrations)."""

from bot.models import Base
from plumbing.migrations import run_env

run_env(Base.metadata)
