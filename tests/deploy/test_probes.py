"""What the Kubernetes probes ask a service, answered by the real server: while it waits for someone else's
migration (PORTAL_MIGRATE=never, the Job not done yet) it is alive but not ready; once the schema is at head it is
ready; and the `liveness` health name never depends on the database."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from pathlib import Path

from grpc_health.v1 import health_pb2, health_pb2_grpc

from plumbing import migrations
from plumbing.clients import open_channel
from plumbing.db import Database
from plumbing.server import LIVENESS_SERVICE, run_service
from tests.support.services import make_settings
from tests.support.stack import eventually

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def test_alive_while_waiting_for_the_migration_then_ready(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path / "data", database_url, migrate="never")
    spec = importlib.import_module("services.notify.service").SPEC
    ready = asyncio.Event()
    server = asyncio.create_task(run_service(spec, settings, ready))
    try:
        await asyncio.wait_for(ready.wait(), 60)
        async with open_channel(settings, "notify") as channel:
            health = health_pb2_grpc.HealthStub(channel)

            async def status(name: str) -> int:
                reply = await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
                return int(reply.status)

            assert await status(LIVENESS_SERVICE) == SERVING
            assert await status("") == NOT_SERVING
            assert await status(spec.full_name) == NOT_SERVING

            # The migration Job runs (`portal migrate`): the service becomes ready without a restart.
            db = Database(settings.resolved_database_url, "notify", pool_size=1)
            try:
                await asyncio.to_thread(migrations.upgrade, db, "notify")
            finally:
                db.dispose()
            await eventually(lambda: status(""), lambda s: s == SERVING, timeout=30, what="readiness")
            assert await status(spec.full_name) == SERVING
            assert await status(LIVENESS_SERVICE) == SERVING
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server
