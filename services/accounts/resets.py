"""Password resets, one account or thousands, through one path (`Resets.apply`): older unused set-password links
revoked, a new invitation or reset link emailed (no hashing), or a generated password emailed with must-change-
password set (only when staff insist), two-factor turned on when asked, and an audit event per account, all in
the caller's transaction with the emails in the outbox. The preview reads the same selection through the same
rules (`reset_rules.decide`) and changes nothing."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from plumbing.db import Database
from plumbing.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from services.accounts.domain import Account, Call, Clock, TokenPurpose
from services.accounts.hashing import PasswordHashing
from services.accounts.mutations import Audit, Mutations, account_target
from services.accounts.reset_rules import (
    Decision,
    Outcome,
    ResetSpec,
    decide,
    generated_password,
    not_found,
    selection,
)
from services.accounts.reset_store import ResetStore
from services.accounts.setpassword import LinkSettings, LinkTarget, issue_links
from services.accounts.store import AccountStore, new_id

PAGE = 1000
SAMPLE_DEFAULT = 10
SAMPLE_MAX = 100
_PURPOSES = {Outcome.INVITATION: TokenPurpose.INVITATION, Outcome.RESET: TokenPurpose.RESET}


@dataclass(frozen=True)
class ResetPreview:
    reset_count: int
    sample: tuple[str, ...]
    skipped_count: int
    skipped: tuple[Decision, ...]
    invitation_count: int
    two_factor_count: int


@dataclass(frozen=True)
class SingleReset:
    """What a reset of one account did (never the password it may have emailed)."""

    account: Account
    email: str
    outcome: Outcome
    expire_time: datetime | None
    two_factor_enabled: bool


@dataclass(frozen=True)
class Applied:
    """What `apply` did to a chunk: one item row per decision (the bulk reset's record) and the links' expiry."""

    items: list[dict[str, Any]]
    expire_time: datetime | None


class Resets:
    def __init__(self, db: Database, store: AccountStore, mutations: Mutations, hashing: PasswordHashing,
                 links: LinkSettings, clock: Clock, emails_queued: Callable[[], None]) -> None:
        self.db = db
        self.store = store
        self.reset_store = ResetStore(store)
        self.mutations = mutations
        self.hashing = hashing
        self.links = links
        self.clock = clock
        self.emails_queued = emails_queued

    # Reading the selection --------------------------------------------------------------------------------------

    def decisions(self, session: Session, spec: ResetSpec, after_key: str | None, limit: int = PAGE
                  ) -> list[Decision]:
        """The next page of the selection (username order), each account with what the reset does to it."""
        return [decide(c, spec) for c in self.reset_store.candidates(session, spec.where, after_key, limit)]

    def missing(self, session: Session, spec: ResetSpec) -> list[Decision]:
        """Usernames asked for by name that match no account."""
        if not spec.usernames:
            return []
        return not_found(spec.usernames, self.reset_store.known_usernames(session, spec.usernames))

    def _preview(self, spec: ResetSpec, sample_size: int) -> ResetPreview:
        sample: list[str] = []
        skipped: list[Decision] = []
        resets = skipped_count = invitations = two_factor = 0
        with self.db.read() as session:
            for decision in self.missing(session, spec):
                skipped_count += 1
                if len(skipped) < sample_size:
                    skipped.append(decision)
            after: str | None = None
            while True:
                page = self.decisions(session, spec, after)
                for decision in page:
                    if decision.outcome == Outcome.SKIPPED:
                        skipped_count += 1
                        if len(skipped) < sample_size:
                            skipped.append(decision)
                        continue
                    resets += 1
                    invitations += decision.outcome == Outcome.INVITATION
                    two_factor += decision.two_factor_on
                    if len(sample) < sample_size:
                        sample.append(decision.candidate.username)
                if len(page) < PAGE:
                    break
                after = page[-1].candidate.key
        return ResetPreview(resets, tuple(sample), skipped_count, tuple(skipped), invitations, two_factor)

    async def preview(self, spec: ResetSpec, sample_size: int = 0) -> ResetPreview:
        check_spec(spec)
        size = min(sample_size or SAMPLE_DEFAULT, SAMPLE_MAX)
        return await self.db.run(self._preview, spec, size)

    # The one path every reset takes -----------------------------------------------------------------------------

    async def passwords_for(self, decisions: Sequence[Decision]) -> dict[str, tuple[str, str]]:
        """Generated passwords and their hashes (in the hashing pool) for the decisions that email a password."""
        chosen = [(d.candidate.id, generated_password(d.candidate.username)) for d in decisions
                  if d.outcome == Outcome.PASSWORD]
        hashes = await self.hashing.hash_many([password for _, password in chosen])
        return {account_id: (password, encoded) for (account_id, password), encoded in zip(chosen, hashes,
                                                                                             strict=True)}

    def apply(self, session: Session, audit: Audit, decisions: Sequence[Decision], job_id: str,
              passwords: Mapping[str, tuple[str, str]]) -> Applied:
        """Reset the decided accounts in the caller's transaction; skipped ones are only recorded."""
        now = audit.now
        resets = [d for d in decisions if d.outcome != Outcome.SKIPPED]
        self.store.revoke_tokens(session, [d.candidate.id for d in resets], None, now)
        expires: datetime | None = None
        keys: dict[str, str] = {}
        linked: list[str] = []
        for outcome, purpose in _PURPOSES.items():
            targets = [LinkTarget(d.candidate.id, d.candidate.username, d.candidate.first_name, d.candidate.email,
                                  d.candidate.school) for d in resets if d.outcome == outcome]
            if targets:
                expires = issue_links(self.store, session, self.links, targets, purpose, now, True, job_id=job_id)
                linked += [t.account_id for t in targets]
        if linked:
            keys.update(self.reset_store.link_keys(session, linked, now))
        emails: list[dict[str, Any]] = []
        chosen = {d.candidate.id: passwords[d.candidate.id] for d in resets if d.outcome == Outcome.PASSWORD}
        self.reset_store.set_generated_passwords(session, {i: encoded for i, (_, encoded) in chosen.items()}, now)
        for d in resets:
            c = d.candidate
            base = {"username": c.username, "first_name": c.first_name, "school_name": self.links.school_name}
            if d.outcome == Outcome.PASSWORD:
                keys[c.id] = f"accounts-login-{new_id()}"
                emails.append({"key": keys[c.id], "template": "login_details", "to": c.email, "job_id": job_id,
                               "school": c.school, "data": {**base, "password": chosen[c.id][0],
                                                            "login_url": f"{self.links.public_url}/login"}})
            if d.two_factor_on:
                emails.append({"key": f"accounts-2fa-{new_id()}", "template": "two_factor_enabled", "to": c.email,
                               "job_id": job_id, "school": c.school, "data": base})
            audit.record("password.reset", account_target(c.username), job_id=job_id, sent=d.outcome.value,
                         two_factor_required=d.two_factor_on)
        self.reset_store.require_two_factor(session, [d.candidate.id for d in resets if d.two_factor_on], now)
        self.store.enqueue_emails(session, emails)
        items = [{"job_id": job_id, "username_key": d.candidate.key, "username": d.candidate.username,
                  "name": d.candidate.name, "email": d.candidate.email, "outcome": d.outcome.value,
                  "reason": d.reason, "two_factor_enabled": d.two_factor_on,
                  "email_key": keys.get(d.candidate.id, "")} for d in decisions]
        return Applied(items, expires if not chosen else None)

    # One account ------------------------------------------------------------------------------------------------

    async def reset_one(self, call: Call, username: str, enable_two_factor: bool, send_password: bool
                        ) -> SingleReset:
        """The account view's "reset password" and "send login details": the bulk reset's path for one account."""
        if not username.strip():
            raise InvalidArgument("Say which account to reset.", [FieldViolation("username", "required")])
        stored = await self.db.run(self.mutations.replay, call, "ResetAccountPassword", SingleReset)
        if stored is not None:
            return stored.value
        spec = ResetSpec(selection("usernames", usernames=[username]), enable_two_factor, send_password,
                         (username.strip(),))

        def read() -> Decision:
            with self.db.read() as session:
                return _only(self.decisions(session, spec, None, 1), username)

        first = await self.db.run(read)
        passwords = await self.passwords_for([first])

        def work(session: Session, audit: Audit) -> SingleReset:
            decision = _only(self.decisions(session, spec, None, 1), username)
            if decision.outcome != first.outcome:
                raise FailedPrecondition("The account changed while it was being reset: try again.",
                                         reason="ACCOUNT_CHANGED")
            applied = self.apply(session, audit, [decision], "", passwords)
            account = self.store.account(session, decision.candidate.id)
            assert account is not None
            return SingleReset(account, decision.candidate.email, decision.outcome, applied.expire_time,
                               decision.two_factor_on)

        result = await self.db.run(self.mutations.run, call, "ResetAccountPassword", SingleReset, work)
        self.emails_queued()
        return result


def _only(decisions: list[Decision], username: str) -> Decision:
    if not decisions:
        raise NotFound(f"No account has the username '{username.strip()}'.", reason="ACCOUNT_NOT_FOUND")
    decision = decisions[0]
    if decision.outcome == Outcome.SKIPPED:
        raise FailedPrecondition(f"{decision.candidate.username} was not reset: {decision.message}.",
                                 reason=decision.reason)
    return decision


def check_spec(spec: ResetSpec) -> None:
    """A selection that names no account by username always means parent accounts: never "every account"."""
    w = spec.where
    if w.type is None and not w.usernames:
        raise InvalidArgument("Give at least one username, or choose parents by all, school, group or grad year.",
                              [FieldViolation("spec.selector", "no username given")])
    if w.grad_year and not 1900 < w.grad_year < 2200:
        raise InvalidArgument(f"{w.grad_year} is not a graduation year.",
                              [FieldViolation("spec.selector.grad_year", "expected a year such as 2031")])
