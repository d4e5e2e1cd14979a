"""`portal bot`: the Slack bot in Socket Mode or HTTP mode, or the chat console, and /healthz in every mode.

- SLACK_APP_TOKEN + SLACK_BOT_TOKEN: Socket Mode (PORTAL_BOT_PORT serves only /healthz).
- SLACK_BOT_TOKEN + SLACK_SIGNING_SECRET: HTTP mode, Slack posts to /slack/events on PORTAL_BOT_PORT.
- No Slack variables: the chat console when stdin is a terminal; otherwise only /healthz until SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from typing import TextIO

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.access import Access
from bot.core import BotCore
from bot.dedup import HandledStore
from bot.registry import loaded_registry
from bot.services import Services
from plumbing import migrations
from plumbing.config import Settings
from plumbing.db import Database

log = logging.getLogger("portal.bot")
SOCKET_MODE, HTTP_MODE, CONSOLE_MODE, IDLE_MODE = "socket", "http", "console", "idle"
WATCHDOG_SECONDS = 60.0
PRUNE_SECONDS = 3600.0
REFUSED_TOKEN = {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}


class BotConfigError(Exception):
    pass


def choose_mode(settings: Settings, interactive: bool) -> str:
    bot, app, secret = settings.slack_bot_token, settings.slack_app_token, settings.slack_signing_secret
    if bot and app:
        return SOCKET_MODE
    if bot and secret:
        return HTTP_MODE
    if bot:
        raise BotConfigError("SLACK_BOT_TOKEN is set but neither SLACK_APP_TOKEN (Socket Mode) nor "
                             "SLACK_SIGNING_SECRET (HTTP mode) is: set one of them")
    if app or secret:
        raise BotConfigError("SLACK_APP_TOKEN or SLACK_SIGNING_SECRET is set without SLACK_BOT_TOKEN: set it too")
    return CONSOLE_MODE if interactive else IDLE_MODE


class ConsoleOperator:
    """The console's operator is the person at this computer's terminal: staff by definition."""

    async def allows(self, user_id: str) -> bool:
        return True


def _log_to_file(settings: Settings) -> None:
    """In the console the terminal is the conversation: log lines go to <data dir>/bot-console.log instead."""
    root = logging.getLogger()
    handler = logging.FileHandler(settings.data_dir / "bot-console.log", encoding="utf-8")
    if root.handlers:
        handler.setFormatter(root.handlers[0].formatter)
    root.handlers[:] = [handler]


async def _open_database(settings: Settings) -> Database:
    db = Database(settings.resolved_database_url, "bot", pool_size=5)
    if settings.migrate == "auto":
        await db.run(migrations.upgrade, db, "bot")
    else:
        log.info("PORTAL_MIGRATE=never: waiting for the bot schema to reach head")
        await db.run(migrations.wait_for_schema, db, "bot")
    return db


async def _serve(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    return runner


async def _bot_user_id(client: AsyncWebClient) -> str:
    try:
        answer = await client.auth_test()
    except SlackApiError as exc:
        error = exc.response.get("error")
        if error in REFUSED_TOKEN:
            raise BotConfigError(f"SLACK_BOT_TOKEN was refused by Slack ({error})") from None
        log.warning("auth.test failed (%s); continuing", error)
        return ""
    except aiohttp.ClientError as exc:
        log.warning("Slack's Web API at the configured SLACK_API_URL does not answer (%s); continuing", exc)
        return ""
    return str(answer.get("user_id", ""))


async def _prune(core: BotCore) -> None:
    while not core.stopping.is_set():
        with contextlib.suppress(Exception):
            await core.handled.prune()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(core.stopping.wait(), PRUNE_SECONDS)


async def _socket_watchdog(handler: object, client: AsyncWebClient, stopping: asyncio.Event,
                           every: float = WATCHDOG_SECONDS) -> None:
    """A periodic auth.test; a connection that went silent (auth.test failing, or the socket found closed) is
    replaced by a new one as soon as Slack answers again."""
    socket_client = handler.client  # type: ignore[attr-defined]
    was_healthy = True
    while not stopping.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), every)
        if stopping.is_set():
            return
        try:
            await client.auth_test()
            healthy = True
        except Exception as exc:
            log.warning("auth.test failed (%s): the Socket Mode connection may be silent", exc)
            healthy = False
        connected = await socket_client.is_connected()
        if healthy and (not connected or not was_healthy):
            log.info("reconnecting Socket Mode")
            try:
                await socket_client.connect_to_new_endpoint(force=True)
            except Exception as exc:
                log.warning("Socket Mode reconnect failed (%s); trying again later", exc)
                healthy = False
        was_healthy = healthy


async def run_bot(settings: Settings, *, stop: asyncio.Event | None = None, ready: asyncio.Event | None = None,
                  stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """Run the bot until SIGTERM/SIGINT (or `stop`); returns the process exit code."""
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    try:
        mode = choose_mode(settings, interactive=stdin.isatty())
    except BotConfigError as exc:
        log.error("configuration error: %s", exc)
        return 2
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[int] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)

    db = await _open_database(settings)
    services = Services(settings)
    session = aiohttp.ClientSession()
    client: AsyncWebClient | None = None
    if settings.slack_bot_token is not None:
        client = AsyncWebClient(token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url)
    core = BotCore(settings=settings, services=services, handled=HandledStore(db), registry=loaded_registry(),
                   access=Access(settings, client) if client else ConsoleOperator(), stopping=stop)
    health = web.Application()

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "mode": mode})

    health.router.add_get("/healthz", healthz)
    background: list[asyncio.Task[object]] = [asyncio.create_task(_prune(core), name="prune")]
    socket_handler = None
    code = 0
    try:
        if client is not None:
            from bot.slack_app import SlackFrontEnd

            secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
            front = SlackFrontEnd(core, client, session, settings.slack_bot_token.get_secret_value(),  # type: ignore
                                  secret, await _bot_user_id(client))
            if mode == HTTP_MODE:
                async def slack_events(request: web.Request) -> web.Response:
                    return await to_aiohttp_response(await front.app.async_dispatch(await to_bolt_request(request)))

                health.router.add_post("/slack/events", slack_events)
        runner = await _serve(health, settings.bot_port)
        try:
            if mode == SOCKET_MODE:
                from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

                assert settings.slack_app_token is not None and client is not None
                socket_handler = AsyncSocketModeHandler(front.app, settings.slack_app_token.get_secret_value(),
                                                        web_client=client)
                await socket_handler.connect_async()
                background.append(asyncio.create_task(_socket_watchdog(socket_handler, client, stop),
                                                      name="socket watchdog"))
            if client is not None:
                background.append(asyncio.create_task(front.resume_progress(), name="resume progress"))
            log.info("bot running in %s mode; /healthz on port %s", mode, settings.bot_port)
            if ready is not None:
                ready.set()
            if mode == CONSOLE_MODE:
                from bot.console import Console

                _log_to_file(settings)
                console = asyncio.create_task(Console(core, stdin, stdout).run(), name="console")
                stopper = asyncio.create_task(stop.wait())
                await asyncio.wait({console, stopper}, return_when=asyncio.FIRST_COMPLETED)
                stopper.cancel()
                if console.done():
                    code = console.result()
                else:
                    console.cancel()
            else:
                await stop.wait()
        finally:
            stop.set()
            if socket_handler is not None:
                with contextlib.suppress(Exception):
                    await socket_handler.close_async()
            await core.tasks.drain(timeout=10.0)
            await runner.cleanup()
    except BotConfigError as exc:
        log.error("configuration error: %s", exc)
        code = 2
    finally:
        for task in background:
            task.cancel()
        await session.close()
        await services.close()
        db.dispose()
        for signum in installed:
            loop.remove_signal_handler(signum)
        log.info("bot stopped")
    return code
