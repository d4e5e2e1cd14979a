"""The SQL of password resets: the selected accounts in username order (a page at a time), the record of what a
bulk reset did to each account, and the account changes a reset makes. Methods take the caller's session."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from services.accounts import rules
from services.accounts.domain import AccountFilter, AccountStatus, TokenPurpose, TwoFactor
from services.accounts.models import AccountRecord, AccountSchoolRecord, ResetItemRecord, SetPasswordTokenRecord
from services.accounts.reset_rules import Candidate
from services.accounts.setpassword import link_email_key
from services.accounts.store import AccountStore, _chunks

_a = AccountRecord


def _first_school() -> Any:
    s = AccountSchoolRecord
    return select(func.min(s.school)).where(s.account_id == _a.id).scalar_subquery()


class ResetStore:
    def __init__(self, store: AccountStore) -> None:
        self.store = store

    def candidates(self, session: Session, where: AccountFilter, after_key: str | None, limit: int
                   ) -> list[Candidate]:
        """Up to `limit` selected accounts after `after_key`, in username order."""
        query = select(_a.id, _a.username, _a.username_key, _a.first_name, _a.last_name, _a.email, _a.status,
                       _a.two_factor, _a.password_hash.is_not(None).label("has_password"),
                       _first_school().label("school"))
        query = self.store.matching(query, where).order_by(_a.username_key).limit(limit)
        if after_key is not None:
            query = query.where(_a.username_key > after_key)
        return [Candidate(row.id, row.username, row.first_name, row.last_name, row.email,
                          AccountStatus(row.status), TwoFactor(row.two_factor), bool(row.has_password),
                          row.school or "")
                for row in session.execute(query)]

    def known_usernames(self, session: Session, usernames: Iterable[str]) -> set[str]:
        keys = sorted({rules.username_key(u) for u in usernames})
        found: set[str] = set()
        for chunk in _chunks(keys):
            found.update(session.scalars(select(_a.username_key).where(_a.username_key.in_(chunk))))
        return found

    def count(self, session: Session, where: AccountFilter) -> int:
        return int(session.scalar(self.store.matching(select(func.count()).select_from(_a), where)) or 0)

    # What a reset changes ---------------------------------------------------------------------------------------

    def require_two_factor(self, session: Session, account_ids: Sequence[str], now: datetime) -> None:
        """Two-factor REQUIRED (enrol at the next sign-in) where it is off; enrolled accounts stay as they are."""
        for chunk in _chunks(account_ids):
            session.execute(update(_a.__table__).where(_a.id.in_(chunk), _a.two_factor == TwoFactor.OFF.value)
                            .values(two_factor=TwoFactor.REQUIRED.value, updated_at=now))

    def set_generated_passwords(self, session: Session, hashes: Mapping[str, str], now: datetime) -> None:
        """New password hashes by account id, with must-change-password set."""
        if hashes:
            self.store.update_accounts(session, [
                {"id": account_id, "password_hash": encoded, "must_change_password": True, "updated_at": now}
                for account_id, encoded in hashes.items()])

    def link_keys(self, session: Session, account_ids: Sequence[str], created_at: datetime) -> dict[str, str]:
        """The outbox keys of the link emails just issued (at `created_at`) to these accounts, by account id."""
        t = SetPasswordTokenRecord
        found: dict[str, str] = {}
        for chunk in _chunks(account_ids):
            for token_id, account_id, purpose in session.execute(
                    select(t.id, t.account_id, t.purpose).where(t.account_id.in_(chunk), t.created_at == created_at,
                                                               t.revoked_at.is_(None), t.used_at.is_(None))):
                found[account_id] = link_email_key(TokenPurpose(purpose), token_id)
        return found

    # The record of a bulk reset ---------------------------------------------------------------------------------

    def add_items(self, session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            session.execute(insert(ResetItemRecord.__table__), list(rows))

    def items(self, session: Session, job_id: str, after_key: str | None, limit: int) -> list[ResetItemRecord]:
        r = ResetItemRecord
        query = select(r).where(r.job_id == job_id).order_by(r.username_key).limit(limit)
        if after_key is not None:
            query = query.where(r.username_key > after_key)
        return list(session.scalars(query))

    def email_keys(self, session: Session, job_id: str) -> set[str]:
        r = ResetItemRecord
        return set(session.scalars(select(r.email_key).where(r.job_id == job_id, r.email_key != "")))

    def counts(self, session: Session, job_id: str) -> dict[str, int]:
        r = ResetItemRecord
        found = {outcome: int(n) for outcome, n in session.execute(
            select(r.outcome, func.count()).where(r.job_id == job_id).group_by(r.outcome))}
        found["two_factor"] = int(session.scalar(select(func.count()).select_from(r).where(
            r.job_id == job_id, r.two_factor_enabled.is_(True))) or 0)
        return found
