"""Tables of the accounts service (SQLAlchemy typed models); the one place its schema is described.

Table names are unique across services (on SQLite every service's tables share one file).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from plumbing.db import UtcDateTime, make_base
from plumbing.jobs import jobs_table
from plumbing.outbox import outbox_table

Base = make_base()


class AccountRecord(Base):
    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # As typed; `username_key` (trimmed, lower-cased) is what is unique, enforced by the database.
    username: Mapped[str] = mapped_column(String(150))
    username_key: Mapped[str] = mapped_column(String(150), unique=True)
    first_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100), default="")
    last_name_key: Mapped[str] = mapped_column(String(100), default="", index=True)
    # As given; `email_key` (lower-cased) is what comparisons use.
    email: Mapped[str] = mapped_column(String(254), default="")
    email_key: Mapped[str] = mapped_column(String(254), default="", index=True)
    type: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16))
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    two_factor: Mapped[str] = mapped_column(String(16), default="off")
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    contact_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class AccountSchoolRecord(Base):
    __tablename__ = "account_schools"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    school: Mapped[str] = mapped_column(String(200), primary_key=True)
    school_key: Mapped[str] = mapped_column(String(200), index=True)


class RosterStudentRecord(Base):
    __tablename__ = "roster_students"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    first_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100), default="")
    last_name_key: Mapped[str] = mapped_column(String(100), default="", index=True)
    grad_year: Mapped[int] = mapped_column(Integer, default=0, index=True)
    group: Mapped[str] = mapped_column(String(100), default="")
    group_key: Mapped[str] = mapped_column(String(100), default="", index=True)
    school: Mapped[str] = mapped_column(String(200), default="")
    school_key: Mapped[str] = mapped_column(String(200), default="", index=True)
    status: Mapped[str] = mapped_column(String(32), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class RosterContactRecord(Base):
    __tablename__ = "roster_contacts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    first_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    email_key: Mapped[str] = mapped_column(String(254), default="", index=True)
    phone: Mapped[str] = mapped_column(String(50), default="")
    address: Mapped[str] = mapped_column(String(500), default="")
    # A court order or no-contact flag: this contact must not get access.
    no_contact: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class RosterRelationshipRecord(Base):
    """A contact as related to one student (one contact may be shared by siblings)."""

    __tablename__ = "roster_relationships"

    student_id: Mapped[str] = mapped_column(ForeignKey("roster_students.id", ondelete="CASCADE"), primary_key=True)
    contact_id: Mapped[str] = mapped_column(ForeignKey("roster_contacts.id", ondelete="CASCADE"), primary_key=True,
                                            index=True)
    relationship: Mapped[str] = mapped_column(String(60), default="")
    parental_responsibility: Mapped[bool] = mapped_column(Boolean, default=False)
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AccountStudentRecord(Base):
    """A student an account may see. Adding links never removes others."""

    __tablename__ = "account_students"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    student_id: Mapped[str] = mapped_column(ForeignKey("roster_students.id"), primary_key=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class SignInRecord(Base):
    __tablename__ = "account_sign_ins"
    __table_args__ = (Index("ix_account_sign_ins_username_key_time", "username_key", "time"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"), nullable=True,
                                                   index=True)
    # The username as typed, lower-cased (kept for attempts on unknown usernames and after a deletion).
    username_key: Mapped[str] = mapped_column(String(150))
    time: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    success: Mapped[bool] = mapped_column(Boolean)
    outcome: Mapped[str] = mapped_column(String(24))
    source: Mapped[str] = mapped_column(String(100), default="")


class SetPasswordTokenRecord(Base):
    __tablename__ = "account_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(16))
    # SHA-256 of the token; the token itself is never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class TotpSecretRecord(Base):
    __tablename__ = "account_totp"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    secret: Mapped[str] = mapped_column(String(64))
    # None while enrolment waits for its first code.
    confirmed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # Last 30-second step accepted: a code is never accepted twice.
    last_step: Mapped[int] = mapped_column(BigInteger, default=0)


class RecoveryCodeRecord(Base):
    __tablename__ = "account_recovery_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    # SHA-256 of the code; the code itself is shown once and never stored.
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class AuditEventRecord(Base):
    __tablename__ = "accounts_audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(UtcDateTime)
    actor_id: Mapped[str] = mapped_column(String(100), default="", index=True)
    actor_name: Mapped[str] = mapped_column(String(200), default="")
    action: Mapped[str] = mapped_column(String(60))
    target: Mapped[str] = mapped_column(String(300), index=True)
    request_id: Mapped[str] = mapped_column(String(200), default="")
    # JSON of what changed; never a password, a token or a secret.
    detail: Mapped[str] = mapped_column(Text, default="{}")


class IdempotencyRecord(Base):
    """The first answer to a mutation with a request_id: a retry gets it back and changes nothing."""

    __tablename__ = "accounts_idempotency"

    request_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    method: Mapped[str] = mapped_column(String(60))
    reply: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class ThrottleRecord(Base):
    """Sign-in failure counters, shared by every replica ("username:..." and "source:..." keys)."""

    __tablename__ = "accounts_throttle"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


accounts_outbox = outbox_table(Base.metadata, "accounts_outbox")

# Long work owned by this service (bulk resets, usage reports, generation): see plumbing.jobs and jobs.py.
accounts_jobs = jobs_table(Base.metadata, "accounts_jobs")
