"""Email delivery: claim due messages with a lease, send them through the SMTP pool, record every outcome.

One claimer keeps a small in-memory queue filled (a batch per transaction); `pool_size` senders take from it, each
message on a reused connection; a recorder writes outcomes as they come, coalescing whatever finished while it was
writing, so a crash can lose at most the record of the messages of one write (those are then sent again once
their lease expires). A connection failure or timeout pauses delivery (the server is down, not the message at
fault) instead of failing every message in turn. On stop, messages claimed but not attempted are given back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from plumbing.config import Settings
from plumbing.db import utcnow
from services.notify import rules
from services.notify.mailer import SmtpConfig, SmtpPool
from services.notify.store import ClaimedMessage, DomainRate, NotifyStore, Outcome
from services.notify.templates import BrandingCache, TemplateDataError, build_message, render

log = logging.getLogger("portal.notify.delivery")
# Messages whose lease ends sooner than this are left for the next claim rather than sent late.
LEASE_MARGIN_SECONDS = 5.0
PRUNE_EVERY_SECONDS = 600.0
COUNTER_KEEP_SECONDS = 86400
DB_RETRY_SECONDS = 1.0
# Outcomes are written together: as soon as this many are waiting, else this long after the first one.
RECORD_BATCH = 50
RECORD_LINGER_SECONDS = 0.05
# Connections unused for this long are closed while there is nothing to send.
IDLE_CLOSE_SECONDS = 5.0


def retry_policy(settings: Settings) -> rules.RetryPolicy:
    return rules.RetryPolicy(settings.notify_retry_initial_seconds, settings.notify_retry_max_seconds,
                             settings.notify_retry_max_age_seconds)


async def wait_for_any(events: list[asyncio.Event], timeout: float | None) -> None:
    """Return when any event is set or the timeout passes."""
    if any(event.is_set() for event in events):
        return
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def log_db_trouble(logger: logging.Logger, what: str, exc: BaseException, streak: int) -> None:
    """The first failure of a streak with its traceback, the next ones in one line (a database that is down or a
    schema still being migrated by someone else would otherwise fill the log)."""
    if streak == 0:
        logger.error("%s; retrying", what, exc_info=exc)
    elif streak % 60 == 0:
        logger.warning("%s (still, %d times): %s", what, streak, str(exc).splitlines()[0] if str(exc) else exc)


def seconds_until(when: datetime | None, now: datetime) -> float | None:
    return None if when is None else max((when - now).total_seconds(), 0.0)


class EmailDelivery:
    """The delivery loop of one notify process (its `run` is a background coroutine of the server)."""

    def __init__(self, store: NotifyStore, settings: Settings, wake: asyncio.Event, stopping: asyncio.Event,
                 worker: str, rand: Callable[[], float] = random.random) -> None:
        self.store = store
        self.settings = settings
        self.wake = wake
        self.stopping = stopping
        self.worker = worker
        self.rand = rand
        self.policy = retry_policy(settings)
        self.branding = BrandingCache(settings)
        self.batch = settings.notify_batch_size
        self.rate = (DomainRate(settings.notify_domain_rate_limit, settings.notify_domain_rate_window_seconds)
                     if settings.notify_domain_rate_limit > 0 else None)
        self._queue: asyncio.Queue[ClaimedMessage | None] = asyncio.Queue()
        self._need_work = asyncio.Event()
        self._results: list[Outcome] = []
        self._results_ready = asyncio.Event()
        self._results_full = asyncio.Event()
        self._closing = False
        self._unsent: list[int] = []
        self._paused_until = 0.0
        self._pause_reason = ""
        self._server_failures = 0
        self.pool: SmtpPool | None = None
        self._db_trouble = 0

    # The loop -------------------------------------------------------------------------------------------------

    async def run(self) -> None:
        local_hostname = await asyncio.to_thread(socket.getfqdn)
        self.pool = SmtpPool(SmtpConfig.from_settings(self.settings, local_hostname), self.settings.smtp_pool_size,
                             self.settings.smtp_messages_per_connection)
        senders = [asyncio.create_task(self._sender(), name=f"smtp-sender-{n}")
                   for n in range(self.settings.smtp_pool_size)]
        recorder = asyncio.create_task(self._recorder(), name="smtp-recorder")
        log.info("email delivery started: %s:%s, %d connections", self.settings.smtp_host, self.settings.smtp_port,
                 self.settings.smtp_pool_size)
        try:
            await self._claimer()
        finally:
            for _ in senders:
                self._queue.put_nowait(None)
            await asyncio.gather(*senders, return_exceptions=True)
            self._closing = True
            self._results_ready.set()
            await asyncio.gather(recorder, return_exceptions=True)
            if self._unsent:
                with contextlib.suppress(Exception):
                    await self.store.db.run(self.store.release_messages, self.worker, self._unsent, utcnow())
            await self.pool.close()
            log.info("email delivery stopped")

    async def _claimer(self) -> None:
        last_prune = 0.0
        while not self.stopping.is_set():
            pause = self._paused_until - time.monotonic()
            if pause > 0:
                await wait_for_any([self.stopping], pause)
                continue
            if self.rate is not None and time.monotonic() - last_prune > PRUNE_EVERY_SECONDS:
                last_prune = time.monotonic()
                with contextlib.suppress(Exception):
                    cutoff = int(time.time()) - COUNTER_KEEP_SECONDS
                    await self.store.db.run(self.store.prune_counters, cutoff)
            room = self.batch - self._queue.qsize()
            if room <= self.batch // 2:
                self._need_work.clear()
                await wait_for_any([self._need_work, self.stopping], self.settings.notify_poll_seconds)
                continue
            self.wake.clear()
            try:
                claimed = await self.store.db.run(
                    self.store.claim_messages, self.worker, room, utcnow(), self.settings.notify_lease_seconds,
                    self.rate)
            except Exception as exc:
                log_db_trouble(log, "could not claim emails", exc, self._db_trouble)
                self._db_trouble += 1
                await wait_for_any([self.stopping], DB_RETRY_SECONDS)
                continue
            self._db_trouble = 0
            for message in claimed:
                self._queue.put_nowait(message)
            if len(claimed) == room:
                continue
            await self._idle_wait(bool(claimed))

    async def _idle_wait(self, busy: bool) -> None:
        """Sleep until new work arrives, the next message is due, or the poll interval passes."""
        timeout = self.settings.notify_poll_seconds
        try:
            due = seconds_until(await self.store.db.run(self.store.next_message_due), utcnow())
        except Exception:
            due = None
        if due is not None:
            timeout = min(timeout, max(due, 0.01))
        if not busy and self.pool is not None:
            await self.pool.close_idle(older_than=IDLE_CLOSE_SECONDS)
        await wait_for_any([self.wake, self.stopping], timeout)

    async def _sender(self) -> None:
        while True:
            message = await self._queue.get()
            if message is None:
                return
            if self._queue.qsize() <= self.batch // 2:
                self._need_work.set()
            if self.stopping.is_set():
                self._unsent.append(message.id)
                continue
            try:
                outcome = await self._deliver(message)
            except Exception:
                log.exception("unexpected error delivering %s", message.key)
                outcome = self._transient(message, "internal error while sending; see the notify log")
            if outcome is not None:
                self._results.append(outcome)
                self._results_ready.set()
                if len(self._results) >= RECORD_BATCH:
                    self._results_full.set()

    async def _recorder(self) -> None:
        while True:
            await self._results_ready.wait()
            if not self._closing and len(self._results) < RECORD_BATCH:
                # Let a few more outcomes gather so that one write records many. Bounded and short: a crash in
                # this window loses the record of messages already sent (they would be sent again).
                self._results_full.clear()
                await wait_for_any([self._results_full], RECORD_LINGER_SECONDS)
            self._results_ready.clear()
            batch, self._results = self._results, []
            if batch:
                try:
                    await self.store.db.run(self.store.record_outcomes, self.worker, batch)
                except Exception:
                    log.exception("could not record %d delivery outcomes; retrying", len(batch))
                    self._results = batch + self._results
                    self._results_ready.set()
                    if self._closing:
                        return
                    await asyncio.sleep(DB_RETRY_SECONDS)
                    continue
                self._log_outcomes(batch)
            if self._closing and not self._results:
                return

    # One message ----------------------------------------------------------------------------------------------

    async def _deliver(self, message: ClaimedMessage) -> Outcome | None:
        now = utcnow()
        margin = min(LEASE_MARGIN_SECONDS, self.settings.notify_lease_seconds / 4)
        if now >= message.lease_until - timedelta(seconds=margin):
            log.warning("lease on %s ran out before it could be sent; leaving it to the next claim", message.key)
            return None
        if time.monotonic() < self._paused_until:
            return self._transient(message, self._pause_reason)
        branding = self.branding(message.school)
        try:
            rendered = render(message.template, message.data, branding)
        except TemplateDataError as exc:
            return Outcome(message.id, rules.FAILED, f"cannot render {message.template}: {exc}")
        email = build_message(rendered, branding, message.recipient, message.message_id, now)
        return await self._send(message, email, branding.sender_address)

    async def _send(self, message: ClaimedMessage, email: bytes, sender: str) -> Outcome:
        assert self.pool is not None
        try:
            reply = await self.pool.send(email, sender, message.recipient)
        except Exception as exc:
            failure = rules.classify_smtp_error(exc)
            if failure.server_level:
                self._pause(failure.reply)
            if failure.permanent:
                return Outcome(message.id, rules.FAILED, failure.reply)
            return self._transient(message, failure.reply)
        self._server_failures = 0
        log.debug("sent %s (%s)", message.key, reply)
        return Outcome(message.id, rules.SENT)

    def _transient(self, message: ClaimedMessage, reason: str) -> Outcome:
        now = utcnow()
        when = rules.next_attempt(message.attempts, message.created_at, now, self.policy, self.rand())
        if when is None:
            return Outcome(message.id, rules.FAILED,
                           rules.gave_up_message(message.attempts, message.created_at, now, reason), at=now)
        return Outcome(message.id, rules.QUEUED, reason, due_at=when, at=now)

    def _pause(self, reason: str) -> None:
        """The server is unreachable or refusing us: stop trying for a while (growing while it stays so)."""
        self._server_failures += 1
        delay = rules.backoff_seconds(self._server_failures, self.policy.initial, self.policy.maximum, self.rand())
        until = time.monotonic() + delay
        if until > self._paused_until:
            self._paused_until = until
            self._pause_reason = f"SMTP server unavailable: {reason}"
            log.warning("SMTP server %s:%s unavailable (%s); pausing delivery for %.1f s",
                        self.settings.smtp_host, self.settings.smtp_port, reason, delay)

    def _log_outcomes(self, outcomes: list[Outcome]) -> None:
        sent = sum(1 for o in outcomes if o.state == rules.SENT)
        failed = [o for o in outcomes if o.state == rules.FAILED]
        retrying = [o for o in outcomes if o.state == rules.QUEUED]
        for outcome in failed:
            log.warning("email %d failed: %s", outcome.id, outcome.error)
        if retrying:
            log.info("%d emails will be retried (%s)", len(retrying), retrying[0].error)
        log.debug("recorded %d sent, %d retrying, %d failed", sent, len(retrying), len(failed))
