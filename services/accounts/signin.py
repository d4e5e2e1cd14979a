"""Sign-in: username (any case) and password, then a TOTP or recovery code when two-factor is on; the record of
every attempt; throttling of repeated failures per username and per source; and two-factor enrolment.

The answer never tells whether a username exists: unknown usernames are checked against a dummy hash (the same
cost), throttled by the username as typed, and answered INVALID_CREDENTIALS like a wrong password.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from plumbing.db import Database
from plumbing.errors import FailedPrecondition, FieldViolation, InvalidArgument
from services.accounts import credentials, paging, rules, throttling
from services.accounts.domain import (
    Account,
    AccountStatus,
    AuthOutcome,
    AuthResult,
    Call,
    Clock,
    Enrollment,
    Page,
    SignIn,
    TwoFactor,
)
from services.accounts.hashing import PasswordHashing
from services.accounts.mutations import Audit, Mutations, account_or_404, account_target
from services.accounts.policy_store import effective_for_accounts
from services.accounts.store import AccountStore, Credentials
from services.accounts.throttling import Counter, ThrottleRules


@dataclass(frozen=True)
class _Attempt:
    username: str
    password_ok: bool
    rehash: str | None
    totp_code: str
    source: str


def _keys(username: str, source: str) -> list[str]:
    keys = [f"username:{rules.username_key(username)[:200]}"]
    if source:
        keys.append(f"source:{source[:100]}")
    return keys


class SignIns:
    def __init__(self, db: Database, store: AccountStore, mutations: Mutations, hashing: PasswordHashing,
                 clock: Clock, secret_key: str, issuer: str, throttle: ThrottleRules | None = None) -> None:
        self.db = db
        self.store = store
        self.mutations = mutations
        self.hashing = hashing
        self.clock = clock
        self.secret_key = secret_key
        self.issuer = issuer
        self.throttle = throttle or ThrottleRules()

    def _limits(self, keys: list[str]) -> dict[str, throttling.Limit]:
        return {k: (self.throttle.per_username if k.startswith("username:") else self.throttle.per_source)
                for k in keys}

    def _before(self, username: str, keys: list[str]) -> tuple[Credentials | None, int]:
        """The account's credentials (None when unknown) and how long the throttle still holds the attempt."""
        now = self.clock()
        with self.db.read() as session:
            found = self.store.credentials(session, username)
            counters = self.store.counters(session, keys)
        wait = max(throttling.retry_after(throttling.after_lockout_passed(c, now), now) for c in counters.values())
        return found, wait

    def _record_throttled(self, found: Credentials | None, username: str, source: str) -> None:
        with self.db.transaction() as session:
            self.store.record_sign_in(session, found.account_id if found else None, username, self.clock(), False,
                                      AuthOutcome.THROTTLED.value, source)

    def _second_factor(self, session: Session, found: Credentials, code: str, now: datetime) -> bool:
        if found.totp_secret is None:
            return False
        step = credentials.matching_totp_step(found.totp_secret, code, now, found.totp_last_step)
        if step is not None:
            return self.store.use_totp_step(session, found.account_id, step)
        if credentials.looks_like_recovery_code(code):
            return self.store.use_recovery_code(session, found.account_id, credentials.recovery_digest(code), now)
        return False

    def _finish(self, found: Credentials | None, attempt: _Attempt, keys: list[str]) -> AuthResult:
        """Decide and record the attempt in one transaction (counters locked: replicas share them)."""
        with self.db.transaction() as session:
            now = self.clock()
            outcome = AuthOutcome.INVALID_CREDENTIALS
            if found is not None and attempt.password_ok:
                if found.status == AccountStatus.DISABLED:
                    outcome = AuthOutcome.DISABLED
                elif found.two_factor == TwoFactor.ENROLLED and found.totp_confirmed:
                    if not attempt.totp_code.strip():
                        outcome = AuthOutcome.TOTP_REQUIRED
                    elif self._second_factor(session, found, attempt.totp_code, now):
                        outcome = AuthOutcome.OK
                    else:
                        outcome = AuthOutcome.TOTP_INVALID
                else:
                    outcome = AuthOutcome.OK
            if outcome in (AuthOutcome.INVALID_CREDENTIALS, AuthOutcome.TOTP_INVALID):
                limits = self._limits(keys)
                counters = self.store.counters(session, keys, lock=True)
                self.store.save_counters(session, {
                    k: throttling.after_failure(throttling.after_lockout_passed(c, now), limits[k], now)
                    for k, c in counters.items()})
            elif outcome == AuthOutcome.OK:
                # Success clears the username's failures (not the source's: it may be trying many names).
                self.store.save_counters(session, {k: Counter() for k in keys if k.startswith("username:")})
            account_id = found.account_id if found is not None else None
            self.store.record_sign_in(session, account_id, attempt.username, now, outcome == AuthOutcome.OK,
                                      outcome.value, attempt.source)
            if outcome != AuthOutcome.OK or found is None:
                return AuthResult(outcome)
            self.store.signed_in(session, found.account_id, now, activate=found.status == AccountStatus.INVITED,
                                 new_hash=attempt.rehash)
            self._two_factor_policy(session, found, now)
            account = self.store.account(session, found.account_id)
            assert account is not None
            return AuthResult(AuthOutcome.OK, account, must_change_password=account.must_change_password,
                              must_enroll_two_factor=account.two_factor == TwoFactor.REQUIRED)

    def _two_factor_policy(self, session: Session, found: Credentials, now: datetime) -> None:
        """Where the account's schools require two-factor sign-in and the holder has not enrolled, two-factor is
        turned on for the account as staff would: the holder enrols now (and at every sign-in until they do)."""
        if found.two_factor != TwoFactor.OFF:
            return
        if effective_for_accounts(session, [found.account_id])[found.account_id].two_factor != "required":
            return
        self.store.update_account(session, found.account_id, {"two_factor": TwoFactor.REQUIRED.value,
                                                               "updated_at": now})
        audit = Audit(Call("policy", "two-factor policy"), now)
        audit.record("account.update", account_target(found.username), before={"two_factor": "off"},
                     after={"two_factor": "required"}, via="the school's two_factor policy (required)")
        self.store.add_audit(session, audit.events)

    async def authenticate(self, username: str, password: str, totp_code: str, source: str) -> AuthResult:
        source = source.strip()
        keys = _keys(username, source)
        found, wait = await self.db.run(self._before, username, keys)
        if wait:
            await self.db.run(self._record_throttled, found, username.strip(), source)
            return AuthResult(AuthOutcome.THROTTLED, retry_after_seconds=wait)
        # Always one verification of the same cost, whether or not the username exists or has a password.
        matches, rehash = await self.hashing.verify(found.password_hash if found else None, password)
        new_hash = (await self.hashing.hash_many([password]))[0] if matches and rehash else None
        attempt = _Attempt(username.strip(), matches, new_hash, totp_code, source)
        # A failure that reaches the limit is still answered INVALID_CREDENTIALS; the lock holds from the next one.
        return await self.db.run(self._finish, found, attempt, keys)

    async def second_factor(self, username: str, code: str, source: str) -> AuthResult:
        """The second step of a sign-in whose password was right a moment ago (the parents' code page asks for the
        code after Authenticate answered TOTP_REQUIRED): the code is checked, throttled and recorded exactly as
        Authenticate does. The caller vouches for the password step."""
        source = source.strip()
        keys = _keys(username, source)
        found, wait = await self.db.run(self._before, username, keys)
        if wait:
            await self.db.run(self._record_throttled, found, username.strip(), source)
            return AuthResult(AuthOutcome.THROTTLED, retry_after_seconds=wait)
        attempt = _Attempt(username.strip(), found is not None, None, code, source)
        return await self.db.run(self._finish, found, attempt, keys)

    def _list(self, username: str, start: datetime | None, end: datetime | None, successful_only: bool,
              size: int, token: str) -> Page[SignIn]:
        kind = paging.list_kind("sign-ins", (rules.username_key(username), start, end, successful_only))
        position = paging.decode(kind, token)
        before = (datetime.fromisoformat(position[0]), int(position[1])) if position else None
        with self.db.read() as session:
            found = self.store.list_sign_ins(session, username, start, end, successful_only, before, size + 1)
        more = len(found) > size
        found = found[:size]
        next_token = paging.encode(kind, found[-1][1].time.isoformat(), found[-1][0]) if more else ""
        return Page(tuple(item for _, item in found), next_token)

    async def list(self, username: str, start: datetime | None, end: datetime | None, successful_only: bool,
                   page_size: int, page_token: str) -> Page[SignIn]:
        return await self.db.run(self._list, username, start, end, successful_only, paging.page_size(page_size),
                                 page_token)

    # Two-factor enrolment ---------------------------------------------------------------------------------------

    async def enroll(self, call: Call, username: str) -> Enrollment:
        """A new secret and recovery codes, pending until confirmed with a first code. With a request id both are
        derived from it, so a retried call shows the same ones; neither is kept in the idempotency record."""
        key = rules.username_key(username)
        parts = (call.request_id, key) if call.request_id else ()
        secret = credentials.new_totp_secret(self.secret_key, *parts)
        codes = credentials.new_recovery_codes(self.secret_key, *parts)

        def work(session: Session, audit: Audit) -> str:
            account = account_or_404(self.store, session, username)
            if account.two_factor == TwoFactor.ENROLLED:
                raise FailedPrecondition(
                    f"Two-factor sign-in is already on for '{account.username}': staff must turn it off before a "
                    "new device can be enrolled.", reason="TWO_FACTOR_ENROLLED")
            if account.two_factor == TwoFactor.OFF and \
                    effective_for_accounts(session, [account.id])[account.id].two_factor == "off":
                raise FailedPrecondition(
                    "Two-factor sign-in is off for this school's parents (its two_factor policy): staff can turn it "
                    f"on for '{account.username}', or set the policy to optional.", reason="TWO_FACTOR_OFF")
            self.store.start_enrolment(session, account.id, secret, [credentials.recovery_digest(c) for c in codes],
                                       audit.now)
            audit.record("two_factor.enroll", account_target(account.username))
            return account.username

        enrolled = await self.db.run(self.mutations.run, call, "EnrollTwoFactor", str, work)
        if enrolled.lower() != key:
            raise FailedPrecondition(f"The request id '{call.request_id}' was used to enrol another account: give "
                                     "this call a new request id.", reason="REQUEST_ID_REUSED")
        return Enrollment(credentials.otpauth_uri(secret, enrolled, self.issuer), codes)

    async def confirm(self, call: Call, username: str, code: str) -> Account:
        def work(session: Session, audit: Audit) -> Account:
            account = account_or_404(self.store, session, username)
            pending = self.store.totp(session, account.id)
            if pending is None or pending.confirmed:
                raise FailedPrecondition(
                    f"No two-factor enrolment of '{account.username}' is waiting for a code: start with "
                    "EnrollTwoFactor.", reason="NO_PENDING_ENROLMENT")
            step = credentials.matching_totp_step(pending.secret, code, audit.now, pending.last_step)
            if step is None:
                raise InvalidArgument(
                    "The code is not right: type the 6-digit code the authenticator app shows now (it changes every "
                    "30 seconds).", [FieldViolation("totp_code", "not the current code")], reason="TOTP_INVALID")
            self.store.confirm_enrolment(session, account.id, step, audit.now)
            self.store.update_account(session, account.id, {"two_factor": TwoFactor.ENROLLED.value,
                                                            "updated_at": audit.now})
            audit.record("two_factor.confirm", account_target(account.username))
            refreshed = self.store.account(session, account.id)
            assert refreshed is not None
            return refreshed

        return await self.db.run(self.mutations.run, call, "ConfirmTwoFactor", Account, work)
