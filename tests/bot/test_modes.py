"""Which mode `portal bot` runs in, and /healthz in every mode."""

from __future__ import annotations

import asyncio
import io

import aiohttp
import pytest

from bot.app import CONSOLE_MODE, HTTP_MODE, IDLE_MODE, SOCKET_MODE, BotConfigError, choose_mode, run_bot
from tests.support.net import free_port
from tests.support.services import make_settings


def test_modes(tmp_path) -> None:
    def mode(interactive: bool = False, **slack: str) -> str:
        return choose_mode(make_settings(tmp_path, "sqlite://", **slack), interactive)

    assert mode(SLACK_BOT_TOKEN="xoxb-1", SLACK_APP_TOKEN="xapp-1") == SOCKET_MODE
    assert mode(SLACK_BOT_TOKEN="xoxb-1", SLACK_APP_TOKEN="xapp-1", SLACK_SIGNING_SECRET="s") == SOCKET_MODE
    assert mode(SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET="s") == HTTP_MODE
    assert mode(interactive=True) == CONSOLE_MODE
    assert mode() == IDLE_MODE
    for partial in ({"SLACK_BOT_TOKEN": "xoxb-1"}, {"SLACK_APP_TOKEN": "xapp-1"}, {"SLACK_SIGNING_SECRET": "s"}):
        with pytest.raises(BotConfigError):
            mode(**partial)


async def test_without_slack_or_a_terminal_the_bot_serves_only_healthz(tmp_path, sqlite_url) -> None:
    settings = make_settings(tmp_path / "data", sqlite_url, bot_port=free_port())
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_bot(settings, stop=stop, ready=ready, stdin=io.StringIO(), stdout=io.StringIO()))
    await asyncio.wait_for(ready.wait(), 30)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{settings.bot_port}/healthz") as response:
            assert (await response.json()) == {"status": "ok", "mode": "idle"}
        async with session.post(f"http://127.0.0.1:{settings.bot_port}/slack/events", data=b"{}") as response:
            assert response.status in (404, 405)
    stop.set()
    assert await asyncio.wait_for(task, 30) == 0


async def test_a_half_configured_slack_stops_with_exit_code_2(tmp_path, sqlite_url) -> None:
    settings = make_settings(tmp_path / "data", sqlite_url, SLACK_BOT_TOKEN="xoxb-1")
    assert await run_bot(settings, stdin=io.StringIO(), stdout=io.StringIO()) == 2
