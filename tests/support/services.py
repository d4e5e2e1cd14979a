"""Start the real services in the test's event loop on loopback ports, and open channels to them."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc

from plumbing.clients import open_channel
from plumbing.config import Settings
from plumbing.server import ServiceSpec, serving
from tests.support.net import free_port

TEST_TOKEN = "test-service-token"
SERVICE_MODULES = {
    "accounts": "services.accounts.service",
    "imports": "services.imports.service",
    "notify": "services.notify.service",
}


def make_settings(data_dir: Path, database_url: str, **overrides: Any) -> Settings:
    """Settings for a test: its own data dir and database, the test token, fresh loopback ports."""
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "service_token": TEST_TOKEN,
        "secret_key": "test-secret-key",
        "accounts_addr": f"127.0.0.1:{free_port()}",
        "imports_addr": f"127.0.0.1:{free_port()}",
        "notify_addr": f"127.0.0.1:{free_port()}",
        "web_port": free_port(),
        "log_format": "text",
    }
    values.update(overrides)
    data_dir.mkdir(parents=True, exist_ok=True)
    return Settings(**values)


@asynccontextmanager
async def running_service(name: str, settings: Settings, spec: ServiceSpec | None = None) -> AsyncIterator[str]:
    """Run one service (its standard spec, or the one given) until the block ends; yields its address once it
    answers SERVING."""
    chosen = spec or importlib.import_module(SERVICE_MODULES[name]).SPEC
    async with serving(chosen, settings):
        await wait_serving(settings, name)
        yield settings.listen_address(name)


async def wait_serving(settings: Settings, name: str, timeout: float = 30.0) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async with open_channel(settings, name) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if loop.time() > deadline:
                raise TimeoutError(f"{name} not SERVING after {timeout} s")
            await asyncio.sleep(0.05)


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that gives a child process (`portal serve ...`) these settings."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTAL_", "SLACK_"))}
    for name, value in settings.model_dump().items():
        if value is None or name.startswith("slack_"):
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"PORTAL_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    for name in ("slack_bot_token", "slack_app_token", "slack_signing_secret", "slack_api_url"):
        value = getattr(settings, name)
        if value is not None:
            env[name.upper()] = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
    env.update(extra)
    return env
