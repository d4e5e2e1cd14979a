"""Task alerts: delivered in the background to Slack (slack_sdk's AsyncWebClient), or to the chat console's log
when Slack is not configured.

An alert is claimed with a lease like an email. Delivery has steps (open the DM, post or update the message, upload
each file) and each step that succeeds is saved before the next, so a retry after a failure (a 429, Slack down,
this process dying) carries on where it stopped instead of posting twice. Slack's rate-limit answers delay the
alert by their Retry-After and hold back this process's other alerts for as long.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Protocol

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from plumbing.config import Settings
from plumbing.db import utcnow
from services.notify import rules
from services.notify.delivery import log_db_trouble, retry_policy, seconds_until, wait_for_any
from services.notify.store import AlertRecord, NotifyStore, Outcome, PendingFile

log = logging.getLogger("portal.notify.alerts")
ALERT_BATCH = 20
ALERT_CONCURRENCY = 4
SLACK_TIMEOUT = 30
DB_RETRY_SECONDS = 1.0


class AlertFailed(Exception):
    """A step of an alert's delivery failed; `failure` says whether and when to try again."""

    def __init__(self, failure: rules.SlackFailure) -> None:
        super().__init__(failure.reason)
        self.failure = failure


class Progress(Protocol):
    async def opened(self, channel: str) -> None: ...

    async def posted(self, channel: str, ts: str) -> None: ...

    async def file_uploaded(self, file: PendingFile, slack_file_id: str) -> None: ...


class Transport(Protocol):
    async def deliver(self, alert: AlertRecord, files: list[PendingFile], progress: Progress) -> tuple[str, str]:
        """Deliver what is left of an alert; returns (channel, ts) of its message."""
        ...

    async def __aenter__(self) -> Transport: ...

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None: ...


def _slack_failure(exc: BaseException) -> rules.SlackFailure:
    if isinstance(exc, SlackApiError):
        response = exc.response
        data = response.data if isinstance(response.data, dict) else {}
        headers = response.headers or {}
        retry_after = next((str(v) for k, v in headers.items() if k.lower() == "retry-after"), None)
        return rules.classify_slack_error(response.status_code, str(data.get("error", "")), retry_after)
    return rules.classify_slack_error(None, f"{type(exc).__name__}: {exc}", None)


class SlackTransport:
    """Posts alerts with slack_sdk's async client against SLACK_API_URL (Slack's, or a stand-in)."""

    def __init__(self, settings: Settings) -> None:
        assert settings.slack_bot_token is not None
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None
        self.client: AsyncWebClient | None = None

    async def __aenter__(self) -> SlackTransport:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SLACK_TIMEOUT))
        assert self.settings.slack_bot_token is not None
        # No retry handlers: retries are ours (stored, with backoff and Retry-After), not hidden in the client.
        self.client = AsyncWebClient(token=self.settings.slack_bot_token.get_secret_value(),
                                     base_url=self.settings.slack_api_url, session=self._session,
                                     timeout=SLACK_TIMEOUT, retry_handlers=[])
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._session is not None:
            await self._session.close()

    async def deliver(self, alert: AlertRecord, files: list[PendingFile], progress: Progress) -> tuple[str, str]:
        try:
            return await self._deliver(alert, files, progress)
        except (SlackApiError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise AlertFailed(_slack_failure(exc)) from exc

    async def _deliver(self, alert: AlertRecord, files: list[PendingFile], progress: Progress) -> tuple[str, str]:
        assert self.client is not None
        channel, ts = alert.posted_channel, alert.posted_ts
        if not ts:
            channel = channel or alert.channel
            if not channel:
                opened = await self.client.conversations_open(users=alert.user_id)
                channel = str(opened["channel"]["id"])
                await progress.opened(channel)
            ts = await self._post(alert, channel)
            await progress.posted(channel, ts)
        for file in files:
            slack_file_id = await self._upload(file, channel, alert.thread_ts)
            await progress.file_uploaded(file, slack_file_id)
        return channel, ts

    async def _post(self, alert: AlertRecord, channel: str) -> str:
        assert self.client is not None
        blocks = rules.check_blocks(alert.blocks_json)
        if alert.update_ts:
            try:
                # The final message replaces the progress message whole (an empty list clears its old blocks).
                updated = await self.client.chat_update(channel=channel, ts=alert.update_ts, text=alert.text,
                                                        blocks=blocks if blocks is not None else [])
                return str(updated["ts"])
            except SlackApiError as exc:
                error = exc.response.data.get("error", "") if isinstance(exc.response.data, dict) else ""
                if error not in rules.UPDATE_FALLBACK_ERRORS:
                    raise
                log.info("alert %s: message %s cannot be updated (%s); posting a new one", alert.key,
                         alert.update_ts, error)
        posted = await self.client.chat_postMessage(channel=channel, text=alert.text, blocks=blocks,
                                                    thread_ts=alert.thread_ts or None)
        return str(posted["ts"])

    async def _upload(self, file: PendingFile, channel: str, thread_ts: str) -> str:
        """files.getUploadURLExternal, the bytes to the URL it returns, then files.completeUploadExternal."""
        assert self.client is not None and self._session is not None
        ticket = await self.client.files_getUploadURLExternal(filename=file.filename, length=len(file.data))
        async with self._session.post(str(ticket["upload_url"]), data=file.data) as answer:
            if answer.status != 200:
                body = (await answer.text())[:200]
                if answer.status == 429 or answer.status >= 500:
                    raise AlertFailed(rules.classify_slack_error(answer.status, body,
                                                                 answer.headers.get("Retry-After")))
                raise AlertFailed(rules.SlackFailure(True, f"file upload refused: HTTP {answer.status} {body}"))
        file_id = str(ticket["file_id"])
        await self.client.files_completeUploadExternal(
            files=[{"id": file_id, "title": file.title or file.filename}], channel_id=channel,
            thread_ts=thread_ts or None)
        return file_id


def _safe_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return cleaned[:120] or "file"


class ConsoleTransport:
    """Without Slack: each alert becomes one JSON line in <data_dir>/outbox/alerts.log (which the chat console
    prints), its files are saved beside it, and the service log says so."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.log_path = folder / "alerts.log"

    async def __aenter__(self) -> ConsoleTransport:
        await asyncio.to_thread(self.folder.mkdir, parents=True, exist_ok=True)
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        return None

    async def deliver(self, alert: AlertRecord, files: list[PendingFile], progress: Progress) -> tuple[str, str]:
        channel = alert.posted_channel or alert.channel or (f"@{alert.user_id}" if alert.user_id else "console")
        ts = alert.posted_ts or f"{time.time():.6f}"
        saved: list[str] = []
        for file in files:
            name = f"{file.position + 1:02d}-{_safe_name(file.filename)}"
            path = self.folder / "files" / _safe_name(alert.key) / name
            await asyncio.to_thread(_write_bytes, path, file.data)
            saved.append(str(path))
        entry = {"time": utcnow().isoformat(), "key": alert.key, "channel": alert.channel, "user_id": alert.user_id,
                 "thread_ts": alert.thread_ts, "update_ts": alert.update_ts, "text": alert.text,
                 "blocks": rules.check_blocks(alert.blocks_json), "files": saved}
        if not alert.posted_ts:
            await asyncio.to_thread(_append_line, self.log_path, json.dumps(entry, ensure_ascii=False))
            log.info("alert for %s: %s%s", channel, alert.text.splitlines()[0] if alert.text else "(blocks)",
                     f" (+{len(saved)} files under {self.folder / 'files'})" if saved else "")
            await progress.posted(channel, ts)
        for file in files:
            await progress.file_uploaded(file, f"console:{file.id}")
        return channel, ts


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _append_line(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")


class _StoreProgress:
    def __init__(self, store: NotifyStore, alert: AlertRecord, worker: str) -> None:
        self.store = store
        self.alert = alert
        self.worker = worker

    async def opened(self, channel: str) -> None:
        await self.store.db.run(self.store.save_alert_post, self.alert.id, self.worker, channel, "", utcnow())

    async def posted(self, channel: str, ts: str) -> None:
        await self.store.db.run(self.store.save_alert_post, self.alert.id, self.worker, channel, ts, utcnow())

    async def file_uploaded(self, file: PendingFile, slack_file_id: str) -> None:
        await self.store.db.run(self.store.save_file_uploaded, file.id, slack_file_id)


class AlertDelivery:
    """The alert loop of one notify process (its `run` is a background coroutine of the server)."""

    def __init__(self, store: NotifyStore, settings: Settings, wake: asyncio.Event, stopping: asyncio.Event,
                 worker: str, rand: Callable[[], float] = random.random) -> None:
        self.store = store
        self.settings = settings
        self.wake = wake
        self.stopping = stopping
        self.worker = worker
        self.rand = rand
        self.policy = retry_policy(settings)
        self._paused_until = 0.0

    def transport(self) -> Transport:
        if self.settings.slack_bot_token is not None:
            return SlackTransport(self.settings)
        return ConsoleTransport(self.settings.data_dir / "outbox")

    async def run(self) -> None:
        async with self.transport() as transport:
            limit = asyncio.Semaphore(ALERT_CONCURRENCY)
            trouble = 0
            while not self.stopping.is_set():
                pause = self._paused_until - time.monotonic()
                if pause > 0:
                    await wait_for_any([self.stopping], pause)
                    continue
                self.wake.clear()
                try:
                    claimed = await self.store.db.run(self.store.claim_alerts, self.worker, ALERT_BATCH, utcnow(),
                                                      self.settings.notify_lease_seconds)
                except Exception as exc:
                    log_db_trouble(log, "could not claim alerts", exc, trouble)
                    trouble += 1
                    await wait_for_any([self.stopping], DB_RETRY_SECONDS)
                    continue
                trouble = 0
                if claimed:
                    await asyncio.gather(*(self._guarded(transport, alert, limit) for alert in claimed))
                    continue
                timeout = self.settings.notify_poll_seconds
                with contextlib.suppress(Exception):
                    due = seconds_until(await self.store.db.run(self.store.next_alert_due), utcnow())
                    if due is not None:
                        timeout = min(timeout, max(due, 0.01))
                await wait_for_any([self.wake, self.stopping], timeout)

    async def _guarded(self, transport: Transport, alert: AlertRecord, limit: asyncio.Semaphore) -> None:
        async with limit:
            if self.stopping.is_set() or time.monotonic() < self._paused_until:
                with contextlib.suppress(Exception):
                    await self.store.db.run(self.store.release_alerts, self.worker, [alert.id], utcnow())
                return
            try:
                outcome = await self._deliver(transport, alert)
            except Exception:
                log.exception("unexpected error delivering alert %s", alert.key)
                outcome = self._transient(alert, "internal error while posting; see the notify log", None)
            try:
                await self.store.db.run(self.store.finish_alert, alert.id, self.worker, outcome)
            except Exception:
                log.exception("could not record the outcome of alert %s (its lease will expire)", alert.key)

    async def _deliver(self, transport: Transport, alert: AlertRecord) -> Outcome:
        files = await self.store.db.run(self.store.pending_files, alert.id)
        try:
            channel, ts = await transport.deliver(alert, files, _StoreProgress(self.store, alert, self.worker))
        except AlertFailed as failed:
            failure = failed.failure
            if failure.retry_after is not None:
                self._paused_until = max(self._paused_until, time.monotonic() + failure.retry_after)
                log.warning("Slack rate limit: holding alerts for %.0f s", failure.retry_after)
            if failure.permanent:
                log.warning("alert %s failed: %s", alert.key, failure.reason)
                return Outcome(alert.id, rules.FAILED, failure.reason)
            return self._transient(alert, failure.reason, failure.retry_after)
        log.info("alert %s delivered to %s (ts %s)", alert.key, channel, ts)
        return Outcome(alert.id, rules.SENT)

    def _transient(self, alert: AlertRecord, reason: str, retry_after: float | None) -> Outcome:
        now = utcnow()
        when = rules.next_attempt(alert.attempts, alert.created_at, now, self.policy, self.rand(), retry_after)
        if when is None:
            return Outcome(alert.id, rules.FAILED, rules.gave_up_message(alert.attempts, alert.created_at, now, reason),
                           at=now)
        log.info("alert %s will be retried at %s: %s", alert.key, when.isoformat(timespec="seconds"), reason)
        return Outcome(alert.id, rules.QUEUED, reason, due_at=when, at=now)
