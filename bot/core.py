"""What every command gets: the shared dependencies (BotCore) and the request (who asked, where, and the surface
that shows the answer: Slack or the console)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.dedup import HandledStore
from bot.registry import Registry
from bot.replies import Form, Reply
from bot.services import Services
from plumbing.config import Settings
from plumbing.context import Actor

log = logging.getLogger("portal.bot")


@dataclass(frozen=True)
class Anchor:
    """Where a job reports: a conversation, its thread, the progress message, and who started it."""

    channel: str
    thread_ts: str = ""
    message_ts: str = ""
    user_id: str = ""


class Surface(Protocol):
    """How answers reach the person who asked: Slack (Block Kit) or the console (plain text)."""

    name: str

    async def reply(self, reply: Reply) -> None: ...

    async def refuse(self, text: str) -> None: ...

    async def open_form(self, form: Form, metadata: dict[str, str]) -> None: ...

    async def start_progress(self, text: str, thread_ts: str = "") -> Anchor: ...

    async def update_progress(self, anchor: Anchor, text: str) -> None: ...


class AccessPolicy(Protocol):
    async def allows(self, user_id: str) -> bool: ...


@dataclass
class Request:
    """One person's command, click or submission."""

    actor: Actor
    surface: Surface
    channel: str = ""
    thread_ts: str = ""
    # A key unique to the thing clicked or submitted (message ts, view id): makes a retried click idempotent.
    key: str = ""
    # What the form being submitted was opened with (e.g. the account it edits).
    metadata: dict[str, str] = field(default_factory=dict)


class Tasks:
    """Work started after Slack has its ack: tracked so it is not garbage-collected, and its errors are logged."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str = "") -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name or None)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background work %s failed", task.get_name(), exc_info=task.exception())

    async def drain(self, timeout: float) -> None:
        if not self._tasks:
            return
        _done, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in pending:
            task.cancel()


@dataclass
class BotCore:
    settings: Settings
    services: Services
    handled: HandledStore
    registry: Registry
    access: AccessPolicy
    tasks: Tasks = field(default_factory=Tasks)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # Seconds between progress updates of one message, and between polls of a running job.
    progress_interval: float = 3.0
    progress_poll: float = 1.0
