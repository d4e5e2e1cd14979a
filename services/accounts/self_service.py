"""What parents do for themselves on the web pages, over the same operations the gRPC servicer uses: set a password
from a link (SetPasswordLinks), sign in (SignIns, with the code as a second step), change a password (Directory),
enrol two-factor (SignIns), ask for a reset link; and the web sessions that carry them from page to page.

A session moves through stages: "code" (the password was right, the two-factor code is next), "change_password"
(staff set must-change-password), "enrol" (staff turned two-factor on before the parent enrolled), "signed_in".
Sessions live in the database (replicas share them); the browser holds only the session id, signed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from plumbing.db import Database
from plumbing.errors import ServiceError
from services.accounts import credentials
from services.accounts.directory import Directory
from services.accounts.domain import (
    AccountStatus,
    AuthOutcome,
    AuthResult,
    Call,
    Clock,
    Enrollment,
    TokenPurpose,
    TwoFactor,
)
from services.accounts.self_service_store import SelfServiceStore, WebSession
from services.accounts.setpassword import SetPasswordLinks
from services.accounts.signin import SignIns

log = logging.getLogger("portal.accounts.web")
CODE, CHANGE_PASSWORD, ENROL, SIGNED_IN = "code", "change_password", "enrol", "signed_in"
CODE_LIFETIME = timedelta(minutes=5)
ABSOLUTE_LIFETIME = timedelta(hours=12)
TOUCH_EVERY = timedelta(minutes=1)
# Reset links emailed to one account within an hour, at most (forgot-password and new links from old ones).
RESETS_PER_HOUR = 3


def parent_call(username: str, request_id: str = "") -> Call:
    """The audit log's actor for what a parent does on the web pages."""
    return Call(f"parent:{username.strip().lower()}"[:100], f"{username.strip()} (parent, web pages)", request_id)


def next_stage(must_change_password: bool, two_factor: TwoFactor) -> str:
    if must_change_password:
        return CHANGE_PASSWORD
    if two_factor == TwoFactor.REQUIRED:
        return ENROL
    return SIGNED_IN


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass(frozen=True)
class SignInStep:
    """What a sign-in step led to: the outcome, and the session (id and stage) when it opened or moved one."""

    result: AuthResult
    session_id: str = ""
    stage: str = ""


class SelfService:
    def __init__(self, db: Database, links: SetPasswordLinks, sign_ins: SignIns, directory: Directory,
                 clock: Clock, idle: timedelta) -> None:
        self.db = db
        self.store = SelfServiceStore()
        self.links = links
        self.sign_ins = sign_ins
        self.directory = directory
        self.clock = clock
        self.idle = idle
        self._quiet: set[asyncio.Task[None]] = set()

    # Sessions ---------------------------------------------------------------------------------------------------

    def _expiry(self, stage: str, created: datetime, now: datetime) -> datetime:
        return min(now + (CODE_LIFETIME if stage == CODE else self.idle), created + ABSOLUTE_LIFETIME)

    async def _open(self, account_id: str, stage: str, source: str) -> str:
        session_id = secrets.token_urlsafe(32)
        now = self.clock()

        def write() -> None:
            with self.db.transaction() as session:
                self.store.add_session(session, _digest(session_id), account_id, stage, source, now,
                                       self._expiry(stage, now, now))
        await self.db.run(write)
        return session_id

    async def session(self, session_id: str) -> WebSession | None:
        """The live session of this id (None: unknown, expired, or its account disabled); sliding expiry."""
        if not session_id:
            return None
        now = self.clock()

        def read() -> WebSession | None:
            with self.db.read() as session:
                return self.store.find_session(session, _digest(session_id))

        found = await self.db.run(read)
        if found is None or found.expires_at <= now or found.status == AccountStatus.DISABLED:
            return None
        if now - found.last_seen_at >= TOUCH_EVERY:
            await self.advance(found, found.stage)
        return found

    async def advance(self, found: WebSession, stage: str) -> None:
        """Move a session to another stage (and extend it)."""
        now = self.clock()

        def write() -> None:
            with self.db.transaction() as session:
                self.store.touch_session(session, found.id_hash, now, self._expiry(stage, found.created_at, now),
                                         stage)
        await self.db.run(write)

    async def end(self, session_id: str) -> None:
        def write() -> None:
            with self.db.transaction() as session:
                self.store.end_session(session, _digest(session_id))
        if session_id:
            await self.db.run(write)

    async def prune(self) -> int:
        def write() -> int:
            with self.db.transaction() as session:
                return self.store.prune_sessions(session, self.clock())
        return await self.db.run(write)

    # Signing in -------------------------------------------------------------------------------------------------

    async def sign_in(self, username: str, password: str, source: str) -> SignInStep:
        result = await self.sign_ins.authenticate(username, password, "", source)
        if result.outcome == AuthOutcome.TOTP_REQUIRED:
            account = await self.directory.get(username)
            return SignInStep(result, await self._open(account.id, CODE, source), CODE)
        if result.outcome != AuthOutcome.OK or result.account is None:
            return SignInStep(result)
        stage = next_stage(result.must_change_password, result.account.two_factor)
        return SignInStep(result, await self._open(result.account.id, stage, source), stage)

    async def second_step(self, found: WebSession, code: str, source: str) -> SignInStep:
        result = await self.sign_ins.second_factor(found.username, code, source)
        if result.outcome == AuthOutcome.OK and result.account is not None:
            stage = next_stage(result.must_change_password, result.account.two_factor)
            await self.advance(found, stage)
            return SignInStep(result, stage=stage)
        if result.outcome == AuthOutcome.THROTTLED:
            await self.db.run(self._end_hash, found.id_hash)
        return SignInStep(result, stage=CODE)

    def _end_hash(self, id_hash: str) -> None:
        with self.db.transaction() as session:
            self.store.end_session(session, id_hash)

    # Passwords and two-factor -----------------------------------------------------------------------------------

    async def change_password(self, found: WebSession, password: str) -> str:
        """Set a new password (the rules checked as UpdateAccount checks them); returns the next stage."""
        account = await self.directory.update(parent_call(found.username), found.username,
                                              {"password": password, "must_change_password": False})
        stage = next_stage(False, account.two_factor)
        await self.advance(found, stage)
        return stage

    async def enrol(self, found: WebSession) -> Enrollment:
        """A pending enrolment; the same secret and codes whenever this session asks again (derived from it)."""
        return await self.sign_ins.enroll(parent_call(found.username, f"web-enrol:{found.id_hash[:40]}"),
                                          found.username)

    async def confirm(self, found: WebSession, code: str) -> None:
        await self.sign_ins.confirm(parent_call(found.username), found.username, code)
        await self.advance(found, SIGNED_IN)

    # Links by email (always answered the same way: these run after the answer, out of sight) -------------------

    def _quietly(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._quiet.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._quiet.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("emailing a link failed", exc_info=task.exception())

    async def _send_reset(self, username: str, purpose: TokenPurpose) -> None:
        try:
            account = await self.directory.get(username)
        except ServiceError:
            return
        if account.status == AccountStatus.DISABLED or not account.email:
            return
        since = self.clock() - timedelta(hours=1)

        def recent() -> int:
            with self.db.read() as session:
                return self.store.recent_resets(session, account.id, since)

        if await self.db.run(recent) >= RESETS_PER_HOUR:
            log.warning("reset link for %s not sent: %d already this hour", account.username, RESETS_PER_HOUR)
            return
        try:
            await self.links.issue(parent_call(account.username), account.username, purpose, True)
        except ServiceError as exc:
            log.info("no link for %s: %s", account.username, exc)

    def forgot(self, username_or_email: str) -> None:
        """Email a reset link when the username or address matches an account that can have one."""
        if username_or_email.strip():
            self._quietly(self._send_reset(username_or_email.strip(), TokenPurpose.RESET))

    def new_link(self, token: str) -> None:
        """Email a fresh link to the holder of an expired, used or replaced one: an invitation if they never set a
        password, else a reset link."""
        async def send() -> None:
            def holder() -> tuple[str, AccountStatus, bool] | None:
                with self.db.read() as session:
                    return self.store.token_holder(session, credentials.digest(token.strip()))
            found = await self.db.run(holder)
            if found is not None:
                username, status, has_password = found
                invited = status == AccountStatus.INVITED and not has_password
                await self._send_reset(username, TokenPurpose.INVITATION if invited else TokenPurpose.RESET)
        if token.strip():
            self._quietly(send())

    async def drain(self) -> None:
        """Let links being emailed finish (at shutdown)."""
        if self._quiet:
            await asyncio.wait(set(self._quiet), timeout=10)
