"""Tables of the notify service (SQLAlchemy typed models); the one place its schema is described.

Table names start with notify_ (services may share one SQLite file). An email or alert waiting for a worker has
`due_at` set: when it is queued, the time of its next attempt; while a worker holds it (state sending), the end of
that worker's lease, after which another worker takes it over. Sent and failed rows have no `due_at`, so the
index on it holds only work still to do.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from plumbing.db import UtcDateTime, make_base

Base = make_base()

# Idempotency keys compare byte-wise on PostgreSQL too, so a prefix query is an index range scan.
KeyString = String(200).with_variant(String(200, collation="C"), "postgresql")


class Message(Base):
    """One email of the outbox, stored once per idempotency key."""

    __tablename__ = "notify_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(KeyString, unique=True)
    template: Mapped[str] = mapped_column(String(40))
    recipient: Mapped[str] = mapped_column(String(320))
    # The address lower-cased, for look-ups by recipient whatever the case they are typed in.
    recipient_lower: Mapped[str] = mapped_column(String(320), index=True)
    # Lower-case destination domain, for the per-domain rate limit.
    domain: Mapped[str] = mapped_column(String(255))
    # Template data as JSON; emptied once the email is sent or has failed (it may hold a set-password link).
    data: Mapped[str] = mapped_column(Text)
    job_id: Mapped[str] = mapped_column(String(64), index=True)
    school: Mapped[str] = mapped_column(String(200))
    message_id: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str] = mapped_column(Text)
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True, index=True)
    # The worker (process) holding the lease, or the one that sent it.
    worker: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class DomainCounter(Base):
    """Emails handed to the SMTP server per destination domain and fixed time window, shared by every replica."""

    __tablename__ = "notify_domain_counters"

    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    # Epoch seconds at which the window starts (windows are aligned to the epoch so replicas agree).
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    count: Mapped[int] = mapped_column(Integer)


class Alert(Base):
    """A task alert to a staff member (by DM) or a channel, stored once per idempotency key (e.g. the job id)."""

    __tablename__ = "notify_alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(KeyString, unique=True)
    # Where to: a channel id, or a user id alerted by direct message.
    channel: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(64))
    thread_ts: Mapped[str] = mapped_column(String(32))
    # The message to update (chat.update) instead of posting a new one.
    update_ts: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    blocks_json: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str] = mapped_column(Text)
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True, index=True)
    worker: Mapped[str] = mapped_column(String(100))
    # Progress, saved step by step so that a retry never repeats a step that succeeded.
    posted_channel: Mapped[str] = mapped_column(String(64))
    posted_ts: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class AlertFile(Base):
    """A file attached to an alert (e.g. a report workbook); its bytes are dropped once it is uploaded."""

    __tablename__ = "notify_alert_files"
    __table_args__ = (Index("ix_notify_alert_files_alert", "alert_id", "position", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("notify_alerts.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    # Slack's file id once the upload completed (empty until then).
    slack_file_id: Mapped[str] = mapped_column(String(64))
