"""The bootstrap every service shares: migrate, serve gRPC with health and reflection, stop gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from plumbing import migrations
from plumbing.clients import LIVENESS_SERVICE, channel_options
from plumbing.config import Settings
from plumbing.db import Database
from plumbing.interceptors import AuthInterceptor, CallContextInterceptor

log = logging.getLogger("portal.server")
GRACE_SECONDS = 20.0
# After SIGTERM every health name turns NOT_SERVING and the server keeps taking calls this long, so clients' health
# watches (plumbing.clients) take it out of their round robin first. Stopping the server at once cancelled calls
# that raced with it (CANCELLED, which no retry policy covers) instead of refusing them.
DRAIN_SECONDS = 2.0
HEALTH_POLL_SECONDS = 2.0
# LIVENESS_SERVICE (plumbing.clients) is SERVING while the process runs, whatever the database says: what a liveness
# probe asks (restarting every replica during a database outage would not help) and what clients route on; "" and
# the service's own name answer readiness (database reachable, schema at head).
# Server-side connection management for replicas behind DNS: clients ping every 30 s (plumbing.clients) and are
# allowed to; connections are recycled every 5 minutes so clients re-resolve DNS and spread over new replicas
# (scale-out), with a long grace so no call in flight is cut.
SERVER_OPTIONS = (
    ("grpc.http2.min_ping_interval_without_data_ms", 20_000),
    ("grpc.max_connection_age_ms", 300_000),
    ("grpc.max_connection_age_grace_ms", 600_000),
)


@dataclass
class Runtime:
    """What a service's setup gets: settings, its database, the server, and a place for background work."""

    settings: Settings
    db: Database
    server: grpc.aio.Server
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    background: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    full_name: str
    # Adds the servicers to runtime.server and appends background loops (job workers, relays) to runtime.background.
    setup: Callable[[Runtime], Awaitable[None]]


def server_credentials(settings: Settings) -> grpc.ServerCredentials:
    assert settings.tls_cert is not None and settings.tls_key is not None
    ca = settings.tls_ca.read_bytes() if settings.tls_ca is not None else None
    return grpc.ssl_server_credentials(
        [(settings.tls_key.read_bytes(), settings.tls_cert.read_bytes())],
        root_certificates=ca,
        require_client_auth=ca is not None,
    )


async def _watch_health(runtime: Runtime, spec: ServiceSpec, servicer: Any) -> None:
    """SERVING only while the database answers and the schema is at head; NOT_SERVING otherwise."""
    last: int | None = None
    while not runtime.stopping.is_set():
        ready = await runtime.db.run(migrations.schema_ready, runtime.db, spec.name)
        status = health_pb2.HealthCheckResponse.SERVING if ready else health_pb2.HealthCheckResponse.NOT_SERVING
        if status != last:
            for name in ("", spec.full_name):
                await servicer.set(name, status)
            log.info("health %s", "SERVING" if ready else "NOT_SERVING (database unreachable or schema behind)")
            last = status
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runtime.stopping.wait(), HEALTH_POLL_SECONDS)


async def run_service(spec: ServiceSpec, settings: Settings, ready: asyncio.Event | None = None) -> None:
    """Serve one service until SIGTERM or SIGINT (or until `ready`'s caller cancels this coroutine)."""
    db = Database(settings.resolved_database_url, spec.name)
    if settings.migrate == "auto":
        await db.run(migrations.upgrade, db, spec.name)
    else:
        log.info("PORTAL_MIGRATE=never: waiting for the %s schema to reach head", spec.name)

    server = grpc.aio.server(
        interceptors=[AuthInterceptor(settings.token), CallContextInterceptor()],
        options=[*channel_options(None), *SERVER_OPTIONS],
        maximum_concurrent_rpcs=256,
    )
    runtime = Runtime(settings=settings, db=db, server=server)
    await spec.setup(runtime)

    health_servicer = health.aio.HealthServicer()
    for name in ("", spec.full_name):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    await health_servicer.set(LIVENESS_SERVICE, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (spec.full_name, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )
    address = settings.listen_address(spec.name)
    if settings.tls_enabled:
        server.add_secure_port(address, server_credentials(settings))
    else:
        server.add_insecure_port(address)

    probe_server = None
    if settings.tls_enabled and settings.health_listen:
        probe_server = grpc.aio.server(options=SERVER_OPTIONS)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, probe_server)
        probe_server.add_insecure_port(settings.health_listen)
        await probe_server.start()

    await server.start()
    log.info("%s listening on %s%s", spec.name, address, " (TLS)" if settings.tls_enabled else "")
    tasks = [asyncio.create_task(_watch_health(runtime, spec, health_servicer), name="health")]
    tasks += [asyncio.create_task(loop(), name=loop.__name__) for loop in runtime.background]

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, runtime.stopping.set)
    if ready is not None:
        ready.set()
    try:
        await runtime.stopping.wait()
    finally:
        # Set by SIGTERM/SIGINT; not when `serving()` ends the block by cancelling (no client to drain then).
        signalled = runtime.stopping.is_set()
        log.info("%s stopping: finishing in-flight calls", spec.name)
        runtime.stopping.set()  # background loops take no new work (jobs release their leases at a safe point)
        await health_servicer.enter_graceful_shutdown()
        if signalled:
            log.info("NOT_SERVING: still taking calls for %.1f s while clients drain", DRAIN_SECONDS)
            await asyncio.sleep(DRAIN_SECONDS)
        await server.stop(GRACE_SECONDS)
        if probe_server is not None:
            await probe_server.stop(1)
        # Background loops see `stopping` and return at a safe point; give them the grace period.
        _done, pending = await asyncio.wait(tasks, timeout=GRACE_SECONDS)
        for task in pending:
            task.cancel()
        for hook in runtime.on_stop:
            await hook()
        db.dispose()
        log.info("%s stopped", spec.name)


@asynccontextmanager
async def serving(spec: ServiceSpec, settings: Settings) -> AsyncIterator[None]:
    """Run a service in this event loop until the block ends (tests and benchmarks); enters once it listens."""
    ready = asyncio.Event()
    task = asyncio.create_task(run_service(spec, settings, ready))
    waiter = asyncio.create_task(ready.wait())
    done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        waiter.cancel()
        task.result()
        raise RuntimeError(f"{spec.name} stopped before it was ready")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
