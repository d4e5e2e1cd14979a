"""Tables of the bot (SQLAlchemy typed models): what it has already handled, shared by every replica."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from plumbing.db import UtcDateTime, make_base

Base = make_base()


class HandledKey(Base):
    """One thing handled once: a Slack event id, a shared file id, an upload click. The primary key is the claim."""

    __tablename__ = "bot_handled"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_bot_handled_created_at", "created_at"),)


class ThreadJob(Base):
    """The latest trial run started in a Slack thread, so a fixed file dropped there names the one it replaces."""

    __tablename__ = "bot_thread_jobs"

    channel: Mapped[str] = mapped_column(String(40), primary_key=True)
    thread_ts: Mapped[str] = mapped_column(String(40), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
