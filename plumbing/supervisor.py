"""`portal up`: everything for one machine. Migrates, starts each service as its own process, waits until all are
healthy, then the bot. Ctrl-C or SIGTERM stops everything; a child that dies stops the whole stack (exit 1)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from plumbing.clients import client_credentials
from plumbing.config import Settings

log = logging.getLogger("portal.up")
SERVICES = ("accounts", "imports", "notify")
HEALTHY_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]


def _spawn(name: str, args: list[str], env: dict[str, str], log_dir: Path | None = None) -> Child:
    """Start `portal ARGS` as a child; its log goes to log_dir/<name>.log when given (the console keeps the
    terminal), else to this process's stderr."""
    if log_dir is None:
        return Child(name, subprocess.Popen([sys.executable, "-m", "portal", *args], env=env))
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / f"{name}.log").open("ab") as log_file:
        process = subprocess.Popen([sys.executable, "-m", "portal", *args], env=env, stderr=log_file,
                                   stdin=subprocess.DEVNULL)
    return Child(name, process)


def console_wanted(settings: Settings) -> bool:
    """The bot will open the chat console: no Slack tokens and a terminal on standard input."""
    return settings.slack_bot_token is None and sys.stdin.isatty()


async def check_health(settings: Settings, service: str, timeout: float = 2.0) -> bool:
    target = settings.dial_target(service)
    channel = (grpc.aio.secure_channel(target, client_credentials(settings)) if settings.tls_enabled
               else grpc.aio.insecure_channel(target))
    async with channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def _stop_all(children: list[Child]) -> None:
    for child in children:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for child in children:
        remaining = max(deadline - time.monotonic(), 0.1)
        try:
            child.process.wait(remaining)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in time; killing it", child.name)
            child.process.kill()
            child.process.wait()


def _dead(children: list[Child]) -> Child | None:
    return next((c for c in children if c.process.poll() is not None), None)


async def _wait_healthy(settings: Settings, children: list[Child], stop: asyncio.Event) -> bool:
    started = time.monotonic()
    pending = set(SERVICES)
    while pending and not stop.is_set():
        if (dead := _dead(children)) is not None:
            log.error("%s exited with code %s before it was healthy", dead.name, dead.process.returncode)
            return False
        for service in list(pending):
            if await check_health(settings, service):
                log.info("%s is healthy at %s", service, settings.dial_target(service))
                pending.discard(service)
        if time.monotonic() - started > HEALTHY_TIMEOUT:
            log.error("not healthy after %.0f s: %s", HEALTHY_TIMEOUT, ", ".join(sorted(pending)))
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.3)
    return not pending


async def run_up(settings: Settings, with_bot: bool) -> int:
    from plumbing import migrations
    from plumbing.db import Database

    for service in (*SERVICES, "bot"):
        db = Database(settings.resolved_database_url, service, pool_size=1)
        try:
            migrations.upgrade(db, service)
        finally:
            db.dispose()

    env = dict(os.environ)
    env["PORTAL_DATA_DIR"] = str(settings.data_dir.resolve())
    env["PORTAL_SERVICE_TOKEN"] = settings.token
    env["PORTAL_SECRET_KEY"] = settings.web_secret
    sink = None
    if settings.smtp_host is None:
        from plumbing.mailsink import start_mail_sink

        folder = settings.data_dir / "mail"
        sink = start_mail_sink(folder, "127.0.0.1", settings.mail_sink_port)
        env.update(PORTAL_SMTP_HOST="127.0.0.1", PORTAL_SMTP_PORT=str(settings.mail_sink_port),
                   PORTAL_SMTP_STARTTLS="false", PORTAL_SMTP_TLS="false")
        log.info("no PORTAL_SMTP_HOST: local mail sink on 127.0.0.1:%s saves mail under %s",
                 settings.mail_sink_port, folder)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    # With the chat console in this terminal, the services' logs go to files so the console stays readable.
    log_dir = settings.data_dir / "logs" if with_bot and console_wanted(settings) else None
    if log_dir is not None:
        log.info("the services' logs are in %s", log_dir)
    children = [_spawn(service, ["serve", service], env, log_dir) for service in SERVICES]
    code = 0
    try:
        if not await _wait_healthy(settings, children, stop):
            return 0 if stop.is_set() else 1
        if with_bot:
            children.append(_spawn("bot", ["bot"], env))
        log.info("the portal is up; press Ctrl-C to stop")
        while not stop.is_set():
            if (dead := _dead(children)) is not None:
                log.error("%s exited with code %s; stopping everything", dead.name, dead.process.returncode)
                code = 1
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
        return code
    finally:
        log.info("stopping")
        await asyncio.to_thread(_stop_all, children)
        if sink is not None:
            sink.stop()
        log.info("stopped")
