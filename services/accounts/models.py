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
# Links made before permissions existed, and links made without a policy, may see everything.
ALL_PERMISSIONS = "grades,attendance,reports,messages"


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
    # What the account may see of this student: permission names, comma separated (policy_rules.PERMISSIONS);
    # set from the school's default_permissions when the link is made, then only by staff.
    permissions: Mapped[str] = mapped_column(String(200), default=ALL_PERMISSIONS, server_default=ALL_PERMISSIONS)


class PolicyRecord(Base):
    """The district's policy (school_key empty) or a school's; a NULL value is not set by that policy."""

    __tablename__ = "accounts_policies"

    school_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    school: Mapped[str] = mapped_column(String(200), default="")
    must_change_password: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    two_factor: Mapped[str | None] = mapped_column(String(16), nullable=True)
    min_password_length: Mapped[int | None] = mapped_column(Integer, nullable=True)
    invite_expiry_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    default_permissions: Mapped[str | None] = mapped_column(String(200), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_by: Mapped[str] = mapped_column(String(200), default="")


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


class ResetItemRecord(Base):
    """One account a bulk reset job reset or skipped: written with the chunk that did it (the job's workbook)."""

    __tablename__ = "accounts_reset_items"

    job_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    username_key: Mapped[str] = mapped_column(String(150), primary_key=True)
    username: Mapped[str] = mapped_column(String(150))
    name: Mapped[str] = mapped_column(String(201), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    # "invitation", "reset" or "password" (what was emailed); "skipped" with `reason` set.
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(40), default="")
    two_factor_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # The outbox key of the email sent (its delivery state is asked of notify by this key).
    email_key: Mapped[str] = mapped_column(String(200), default="")


class WebSessionRecord(Base):
    """A parent's session on the web pages, shared by every replica. The cookie holds the session id (signed);
    only its SHA-256 is stored."""

    __tablename__ = "accounts_web_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    # "code" (password right, waiting for the two-factor code), "change_password", "enrol" or "signed_in".
    stage: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class AutogeneratePendingRecord(Base):
    """A roster relationship (student and contact) that is new or changed, or a contact that changed (student_id
    empty), since the last auto-generation (PORTAL_AUTOGENERATE): written with the roster change, claimed by the
    generation job that handles it (job_id), and removed when that job ends."""

    __tablename__ = "accounts_autogenerate_pending"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    student_id: Mapped[str] = mapped_column(String(64), default="")
    contact_id: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


accounts_outbox = outbox_table(Base.metadata, "accounts_outbox")

# Long work owned by this service (bulk resets, usage reports, generation): see plumbing.jobs and jobs.py.
accounts_jobs = jobs_table(Base.metadata, "accounts_jobs")
