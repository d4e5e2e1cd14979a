"""The bot in HTTP mode on a free port, talking to the Slack stand-in, with or without the real services."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.app import run_bot
from bot.services import Services
from plumbing.config import Settings
from tests.bot.wire import SlackWire
from tests.support.net import free_port
from tests.support.services import make_settings, running_service
from tests.support.slack_api import SlackApiStandIn

SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-test-portal-bot"
ADMIN_GROUP = "SPORTAL01"
ADMIN = "UADMIN0001"
GROUP_MEMBER = "UGROUP0001"
OUTSIDER = "UOUTSIDER1"
STAFF_CHANNEL = "GSTAFF0001"
PUBLIC_CHANNEL = "CPUBLIC001"


@dataclass
class Bot:
    settings: Settings
    slack: SlackApiStandIn
    wire: SlackWire
    services: Services

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir


def bot_settings(data_dir: Path, database_url: str, slack: SlackApiStandIn, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": slack.base_url,
        "admins": ADMIN, "admin_group": ADMIN_GROUP, "bot_port": free_port(), "log_level": "INFO",
    }
    values.update(overrides)
    return make_settings(data_dir, database_url, **values)


@asynccontextmanager
async def bot_running(settings: Settings) -> AsyncIterator[None]:
    """`run_bot` in this event loop until the block ends (stdin is no terminal: HTTP mode, as configured)."""
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_bot(settings, stop=stop, ready=ready, stdin=io.StringIO(), stdout=io.StringIO()))
    waiter = asyncio.create_task(ready.wait())
    done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        waiter.cancel()
        raise RuntimeError(f"the bot stopped before it was ready (exit code {task.result()})")
    try:
        yield
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            assert await task == 0


@pytest.fixture
async def slack() -> AsyncIterator[SlackApiStandIn]:
    users = {user: {"id": user, "name": name.split()[0].lower(), "real_name": name,
                    "profile": {"real_name": name, "display_name": name.split()[0]}}
             for user, name in ((ADMIN, "Ada Admin"), (GROUP_MEMBER, "Gus Group"), (OUTSIDER, "Olive Outsider"))}
    async with SlackApiStandIn(token=BOT_TOKEN, users=users, usergroups={ADMIN_GROUP: [GROUP_MEMBER]}) as api:
        yield api


async def _start(tmp_path: Path, database_url: str, slack: SlackApiStandIn, services: tuple[str, ...],
                 **overrides: Any) -> AsyncIterator[Bot]:
    settings = bot_settings(tmp_path / "data", database_url, slack, **overrides)
    async with AsyncExitStack() as stack:
        for name in services:
            await stack.enter_async_context(running_service(name, settings))
        await stack.enter_async_context(bot_running(settings))
        clients = Services(settings)
        stack.push_async_callback(clients.close)
        yield Bot(settings, slack, SlackWire(f"http://127.0.0.1:{settings.bot_port}/slack/events", SECRET), clients)


@pytest.fixture
async def bot_alone(tmp_path: Path, sqlite_url: str, slack: SlackApiStandIn) -> AsyncIterator[Bot]:
    """The bot with no service running (what staff meet while the services are down)."""
    async for bot in _start(tmp_path, sqlite_url, slack, ()):
        yield bot


@pytest.fixture
async def portal(tmp_path: Path, database_url: str, slack: SlackApiStandIn) -> AsyncIterator[Bot]:
    """The three services and the bot, on SQLite (and PostgreSQL when PORTAL_TEST_DATABASE_URL is set)."""
    async for bot in _start(tmp_path, database_url, slack, ("accounts", "imports", "notify")):
        yield bot


@pytest.fixture
async def accounts_portal(tmp_path: Path, database_url: str, slack: SlackApiStandIn) -> AsyncIterator[Bot]:
    """The accounts service and the bot: what account lookups, links and the create form need."""
    async for bot in _start(tmp_path, database_url, slack, ("accounts",)):
        yield bot
