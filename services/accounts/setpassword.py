"""One-time set-password links: issued for invitations and resets, inspected by the parents' page, redeemed once.

Only each token's SHA-256 is stored. A new link of one purpose revokes the account's older unused links of that
purpose; setting the password revokes every unused link. Emails with links go through the outbox in the same
transaction as the token.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from plumbing.db import Database
from plumbing.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from plumbing.outbox import outbox_rows
from plumbing.status_codes import E_REQUIRED
from services.accounts import credentials, rules
from services.accounts.domain import (
    Account,
    AccountStatus,
    Call,
    Clock,
    IssuedToken,
    TokenInspection,
    TokenPurpose,
    TokenState,
)
from services.accounts.hashing import PasswordHashing
from services.accounts.mutations import Audit, Mutations, account_or_404, account_target
from services.accounts.policy_rules import Effective
from services.accounts.policy_store import effective_for_accounts
from services.accounts.store import AccountStore, TokenRecord, new_id

TEMPLATES = {TokenPurpose.INVITATION: "invitation", TokenPurpose.RESET: "password_reset"}


@dataclass(frozen=True)
class LinkSettings:
    """Where links point, whose name emails carry, and how long links live."""

    public_url: str
    school_name: str
    secret_key: str = field(repr=False)
    lifetimes: dict[TokenPurpose, timedelta] = field(default_factory=lambda: dict(credentials.TOKEN_LIFETIMES))


@dataclass(frozen=True)
class LinkTarget:
    account_id: str
    username: str
    first_name: str
    email: str
    school: str = ""


def link_email_key(purpose: TokenPurpose, token_id: str) -> str:
    """The outbox key of the email carrying one link (notify reports its delivery under this key)."""
    return f"accounts-{purpose.value}-{token_id}"


@dataclass
class NewLinks:
    """Tokens and the outbox rows of their emails, made before the transaction that stores them."""

    tokens: list[dict[str, Any]]
    emails: list[dict[str, Any]]
    latest: datetime  # the latest expiry among them


def invitation_lifetimes(policies: Mapping[str, Effective]) -> dict[str, timedelta]:
    """How long each account's invitation lives, by account id, from its schools' policy (invite_expiry_days)."""
    return {account_id: timedelta(days=p.invite_expiry_days) for account_id, p in policies.items()}


def new_links(links: LinkSettings, targets: Sequence[LinkTarget], purpose: TokenPurpose, now: datetime,
              send_email: bool, lifetimes: Mapping[str, timedelta], job_id: str = "",
              raw_tokens: Sequence[str] = ()) -> NewLinks:
    """New tokens for the targets (the given raw tokens, or random ones), with their emails when asked. Pure."""
    latest = now
    rows, emails = [], []
    expiries: dict[timedelta, tuple[datetime, str]] = {}  # a batch has a handful of lifetimes: one expiry each
    for index, target in enumerate(targets):
        lifetime = lifetimes.get(target.account_id, links.lifetimes[purpose])
        if lifetime not in expiries:
            expiries[lifetime] = (now + lifetime, (now + lifetime).isoformat())
        expires, expire_text = expiries[lifetime]
        latest = max(latest, expires)
        raw = raw_tokens[index] if raw_tokens else credentials.new_token()
        token_id = new_id()
        rows.append({"id": token_id, "account_id": target.account_id, "purpose": purpose.value,
                     "token_hash": credentials.digest(raw), "created_at": now, "expires_at": expires})
        if send_email:
            emails.append({
                "key": link_email_key(purpose, token_id), "template": TEMPLATES[purpose], "to": target.email,
                "job_id": job_id, "school": target.school,
                "data": {"username": target.username, "first_name": target.first_name,
                         "link": f"{links.public_url}/set-password?token={raw}",
                         "expire_time": expire_text, "school_name": links.school_name},
            })
    return NewLinks(rows, outbox_rows(emails), latest)


def store_links(store: AccountStore, session: Session, made: NewLinks) -> None:
    store.insert_tokens(session, made.tokens)
    store.enqueue_outbox_rows(session, made.emails)


def issue_links(store: AccountStore, session: Session, links: LinkSettings, targets: Sequence[LinkTarget],
                purpose: TokenPurpose, now: datetime, send_email: bool, job_id: str = "",
                raw_tokens: Sequence[str] = (), policies: Mapping[str, Effective] | None = None,
                new_accounts: bool = False) -> datetime:
    """New tokens for the targets (revoking their older unused ones of this purpose), with their emails queued
    when asked. The raw tokens are the given ones, or random. An invitation lives as long as the policy of the
    account's schools says (invite_expiry_days): `policies` by account id when the caller knows them, else read.
    `new_accounts`: the targets were created in this transaction, so they have no older tokens to revoke.
    Returns the expiry (the latest, for several targets)."""
    lifetimes: dict[str, timedelta] = {}
    if purpose == TokenPurpose.INVITATION:
        if policies is None:
            policies = effective_for_accounts(session, [t.account_id for t in targets])
        lifetimes = invitation_lifetimes(policies)
    if not new_accounts:
        store.revoke_tokens(session, [t.account_id for t in targets], purpose, now)
    made = new_links(links, targets, purpose, now, send_email, lifetimes, job_id, raw_tokens)
    store_links(store, session, made)
    return made.latest


def _state(token: TokenRecord | None, now: datetime) -> TokenState:
    if token is None:
        return TokenState.UNKNOWN
    if token.used_at is not None:
        return TokenState.USED
    if token.revoked_at is not None:
        return TokenState.REVOKED
    if token.expires_at <= now:
        return TokenState.EXPIRED
    return TokenState.VALID


_REFUSALS = {
    TokenState.UNKNOWN: "This set-password link is not valid: check that the whole link was copied, or ask the "
                        "school for a new one.",
    TokenState.EXPIRED: "This set-password link has expired: ask the school for a new one.",
    TokenState.USED: "This set-password link has been used already: sign in with the password you set, or ask "
                     "the school for a new link.",
    TokenState.REVOKED: "This set-password link was replaced by a newer one: use the link in the latest email.",
}


def _refuse(state: TokenState) -> Exception:
    reason = f"TOKEN_{state.name}"
    if state == TokenState.UNKNOWN:
        return NotFound(_REFUSALS[state], reason=reason)
    return FailedPrecondition(_REFUSALS[state], reason=reason)


class SetPasswordLinks:
    def __init__(self, db: Database, store: AccountStore, mutations: Mutations, hashing: PasswordHashing,
                 links: LinkSettings, clock: Clock, emails_queued: Callable[[], None]) -> None:
        self.db = db
        self.store = store
        self.mutations = mutations
        self.hashing = hashing
        self.links = links
        self.clock = clock
        self.emails_queued = emails_queued

    async def issue(self, call: Call, username: str, purpose: TokenPurpose | None, send_email: bool) -> IssuedToken:
        if purpose is None:
            raise InvalidArgument("Say what the link is for: an invitation or a password reset.",
                                  [FieldViolation("purpose", "must be TOKEN_PURPOSE_INVITATION or _RESET")])
        # With a request id the token is derived from it, so a retry answers with the same token, never stored.
        raw = (credentials.new_token(self.links.secret_key, call.request_id, rules.username_key(username),
                                     purpose.value) if call.request_id else credentials.new_token())

        def work(session: Session, audit: Audit) -> IssuedToken:
            account = account_or_404(self.store, session, username)
            if account.status == AccountStatus.DISABLED:
                raise FailedPrecondition(f"The account '{account.username}' is disabled: enable it before "
                                         "sending a set-password link.", reason="ACCOUNT_DISABLED")
            if send_email and not account.email:
                raise FailedPrecondition(f"The account '{account.username}' has no email address: add one first.",
                                         reason="NO_EMAIL")
            target = LinkTarget(account.id, account.username, account.first_name, account.email,
                                account.schools[0] if account.schools else "")
            expires = issue_links(self.store, session, self.links, [target], purpose, audit.now, send_email,
                                  raw_tokens=[raw])
            audit.record("token.issue", account_target(account.username), purpose=purpose.value, emailed=send_email,
                         expire_time=expires.isoformat())
            # The stored answer never holds the token.
            return IssuedToken(expires)

        issued = await self.db.run(self.mutations.run, call, "IssueSetPasswordToken", IssuedToken, work)
        if send_email:
            self.emails_queued()
            return issued
        return IssuedToken(issued.expire_time, raw)

    def _inspect(self, token: str) -> tuple[TokenRecord | None, TokenState]:
        with self.db.read() as session:
            found = self.store.token(session, credentials.digest(token.strip())) if token.strip() else None
        return found, _state(found, self.clock())

    def _min_length(self, account_id: str) -> int:
        with self.db.read() as session:
            return effective_for_accounts(session, [account_id])[account_id].min_password_length

    async def inspect(self, token: str) -> TokenInspection:
        found, state = await self.db.run(self._inspect, token)
        return TokenInspection(state, found.username if found is not None and state == TokenState.VALID else "")

    async def redeem(self, call: Call, token: str, new_password: str) -> Account:
        if not new_password:
            raise InvalidArgument("Type the new password.", [FieldViolation("new_password", "required")],
                                  reason=E_REQUIRED.code)
        stored = await self.db.run(self.mutations.replay, call, "RedeemSetPasswordToken", Account)
        if stored is not None:
            return stored.value
        found, state = await self.db.run(self._inspect, token)
        if found is None or state != TokenState.VALID:
            raise _refuse(state)
        problems = rules.check_password(new_password, found.username, "new_password",
                                        await self.db.run(self._min_length, found.account_id))
        if problems:
            raise InvalidArgument(problems[0].message, [FieldViolation(p.field, p.message) for p in problems],
                                  reason=problems[0].code)
        encoded = (await self.hashing.hash_many([new_password]))[0]

        def work(session: Session, audit: Audit) -> Account:
            current = self.store.token(session, credentials.digest(token.strip()))
            state = _state(current, audit.now)
            if current is None or state != TokenState.VALID:
                raise _refuse(state)
            account = self.store.account(session, current.account_id)
            if account is None:
                raise _refuse(TokenState.UNKNOWN)
            if account.status == AccountStatus.DISABLED:
                raise FailedPrecondition(f"The account '{account.username}' is disabled: ask the school to enable "
                                         "it.", reason="ACCOUNT_DISABLED")
            if not self.store.use_token(session, current.id, audit.now):
                raise _refuse(TokenState.USED)
            self.store.update_account(session, account.id, {
                "password_hash": encoded, "status": AccountStatus.ACTIVE.value, "must_change_password": False,
                "updated_at": audit.now})
            self.store.revoke_tokens(session, [account.id], None, audit.now)
            audit.record("password.set", account_target(account.username), via=f"{current.purpose.value} link")
            refreshed = self.store.account(session, account.id)
            assert refreshed is not None
            return refreshed

        return await self.db.run(self.mutations.run, call, "RedeemSetPasswordToken", Account, work)
