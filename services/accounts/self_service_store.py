"""The SQL of the parents' self-service pages: web sessions (shared by every replica; only the SHA-256 of a session
id is stored), and how many reset links an account was sent lately (forgot-password is throttled per account)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from services.accounts.domain import AccountStatus, TokenPurpose, TwoFactor
from services.accounts.models import AccountRecord, SetPasswordTokenRecord, WebSessionRecord

_w = WebSessionRecord
_a = AccountRecord


@dataclass(frozen=True)
class WebSession:
    id_hash: str
    account_id: str
    username: str
    stage: str
    status: AccountStatus
    two_factor: TwoFactor
    must_change_password: bool
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


class SelfServiceStore:
    def add_session(self, session: Session, id_hash: str, account_id: str, stage: str, source: str, now: datetime,
                    expires_at: datetime) -> None:
        session.execute(insert(_w.__table__).values(id_hash=id_hash, account_id=account_id, stage=stage,
                                                    source=source[:100], created_at=now, last_seen_at=now,
                                                    expires_at=expires_at))

    def find_session(self, session: Session, id_hash: str) -> WebSession | None:
        row = session.execute(
            select(_w.id_hash, _w.account_id, _w.stage, _w.created_at, _w.last_seen_at, _w.expires_at, _a.username,
                   _a.status, _a.two_factor, _a.must_change_password)
            .join(_a, _a.id == _w.account_id).where(_w.id_hash == id_hash)).first()
        if row is None:
            return None
        return WebSession(row.id_hash, row.account_id, row.username, row.stage, AccountStatus(row.status),
                          TwoFactor(row.two_factor), row.must_change_password, row.created_at, row.last_seen_at,
                          row.expires_at)

    def touch_session(self, session: Session, id_hash: str, now: datetime, expires_at: datetime,
                      stage: str | None = None) -> None:
        values: dict[str, object] = {"last_seen_at": now, "expires_at": expires_at}
        if stage is not None:
            values["stage"] = stage
        session.execute(update(_w.__table__).where(_w.id_hash == id_hash).values(**values))

    def end_session(self, session: Session, id_hash: str) -> None:
        session.execute(delete(_w.__table__).where(_w.id_hash == id_hash))

    def prune_sessions(self, session: Session, now: datetime) -> int:
        return int(session.execute(delete(_w.__table__).where(_w.expires_at < now)).rowcount)  # type: ignore[attr-defined]

    def recent_resets(self, session: Session, account_id: str, since: datetime) -> int:
        t = SetPasswordTokenRecord
        return int(session.scalar(select(func.count()).select_from(t).where(
            t.account_id == account_id, t.purpose == TokenPurpose.RESET.value, t.created_at >= since)) or 0)

    def token_holder(self, session: Session, token_hash: str) -> tuple[str, AccountStatus, bool] | None:
        """The username, status and whether a password is set, of the account a token (in any state) was for."""
        t = SetPasswordTokenRecord
        row = session.execute(select(_a.username, _a.status, _a.password_hash.is_not(None))
                              .join(t, t.account_id == _a.id).where(t.token_hash == token_hash)).first()
        return (row[0], AccountStatus(row[1]), bool(row[2])) if row is not None else None
