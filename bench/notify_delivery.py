"""Benchmark: deliver invitations to a local SMTP server running in another process, through notify's outbox
(the real notify server: EnqueueEmails over gRPC, claims, the SMTP connection pool, outcomes recorded), and, in
the same run, with a naive loop that opens one SMTP connection per message. Prints messages/s and the ratio.

    .venv/bin/python bench/notify_delivery.py            # 5,000 invitations
    .venv/bin/python bench/notify_delivery.py --quick    # 500
    PORTAL_DATABASE_URL=postgresql+psycopg://... .venv/bin/python bench/notify_delivery.py   # outbox on PostgreSQL

Not a test: it prints figures. The SMTP server is aiosmtpd (accepting and discarding) in its own process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import multiprocessing
import os
import socket
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosmtplib
from google.protobuf import struct_pb2

from plumbing.clients import open_channel
from plumbing.config import Settings
from plumbing.db import Database
from plumbing.server import run_service
from portal.notify.v1 import notify_pb2, notify_pb2_grpc
from services.notify.service import SPEC
from services.notify.store import NotifyStore
from services.notify.templates import branding_for, build_message, new_message_id, render

BATCH = 500  # what the outbox relay hands over per call


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# The SMTP server, in its own process ---------------------------------------------------------------------------------

def _sink(port: int, received: Any, connections: Any, ready: Any, stop: Any) -> None:
    from aiosmtpd.controller import Controller

    class Counting:
        async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                              responses: list[str]) -> list[str]:
            session.host_name = hostname
            with connections.get_lock():
                connections.value += 1
            return responses

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            with received.get_lock():
                received.value += 1
            return "250 2.0.0 Ok: queued"

    # A fixed server name: aiosmtpd would otherwise look up its FQDN for every connection.
    controller = Controller(Counting(), hostname="127.0.0.1", port=port, server_hostname="sink.bench.local")
    controller.start()
    ready.set()
    stop.wait()
    controller.stop()


class Sink:
    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.port = free_port()
        self.received = context.Value("q", 0)
        self.connections = context.Value("q", 0)
        self._ready = context.Event()
        self._stop = context.Event()
        self._process = context.Process(target=_sink, args=(self.port, self.received, self.connections,
                                                           self._ready, self._stop), daemon=True)

    def __enter__(self) -> Sink:
        self._process.start()
        if not self._ready.wait(30):
            raise RuntimeError("the SMTP sink did not start")
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._process.join(10)

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def reset(self) -> None:
        with self.received.get_lock():
            self.received.value = 0
        with self.connections.get_lock():
            self.connections.value = 0


# The two ways to send ---------------------------------------------------------------------------------------------

def _data(n: int, settings: Settings) -> dict[str, Any]:
    return {"first_name": "Parent", "username": f"parent{n:06d}",
            "link": f"{settings.public_url}/set-password?token=bench-{n:06d}-abcdefghijklmnopqrstuvwxyz0123456789",
            "expire_time": "2030-01-04T17:00:00Z"}


async def outbox_run(settings: Settings, sink: Sink, count: int) -> dict[str, float]:
    """Everything notify does: EnqueueEmails in relay-sized batches, then claim, render, send, record."""
    run = uuid.uuid4().hex[:8]
    ready = asyncio.Event()
    service = asyncio.create_task(run_service(SPEC, settings, ready))
    await ready.wait()
    db = Database(settings.resolved_database_url, "notify", pool_size=1)
    store = NotifyStore(db)
    try:
        async with open_channel(settings, "notify") as channel:
            stub = notify_pb2_grpc.NotifyServiceStub(channel)
            started = time.perf_counter()
            for start in range(0, count, BATCH):
                emails = []
                for n in range(start, min(start + BATCH, count)):
                    data = struct_pb2.Struct()
                    data.update(_data(n, settings))
                    emails.append(notify_pb2.EmailRequest(
                        idempotency_key=f"bench:{run}:{n:06d}", template=notify_pb2.TEMPLATE_INVITATION,
                        to=f"parent{n:06d}@school{n % 7}.example.org", data=data, job_id=f"bench-{run}"))
                await stub.EnqueueEmails(notify_pb2.EnqueueEmailsRequest(emails=emails), timeout=120)
            enqueued = time.perf_counter() - started
            while True:
                counts = await db.run(store.count_messages, f"bench-{run}")
                if counts["sent"] + counts["failed"] >= count:
                    break
                await asyncio.sleep(0.02)
            elapsed = time.perf_counter() - started
        return {"seconds": elapsed, "enqueue_seconds": enqueued, "sent": counts["sent"], "failed": counts["failed"],
                "received": sink.received.value, "connections": sink.connections.value}
    finally:
        db.dispose()
        service.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await service


async def naive_run(settings: Settings, sink: Sink, count: int, local_hostname: str) -> dict[str, float]:
    """The same messages, rendered the same way, each sent on a connection of its own, one after the other."""
    branding = branding_for(settings)
    started = time.perf_counter()
    for n in range(count):
        to = f"parent{n:06d}@school{n % 7}.example.org"
        rendered = render("invitation", _data(n, settings), branding)
        message = build_message(rendered, branding, to, new_message_id(branding), datetime.now(UTC))
        await aiosmtplib.send(message, sender=branding.sender_address, recipients=[to], hostname="127.0.0.1",
                              port=sink.port, start_tls=False, local_hostname=local_hostname, timeout=30)
    elapsed = time.perf_counter() - started
    return {"seconds": elapsed, "received": sink.received.value, "connections": sink.connections.value}


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="500 messages instead of 5,000")
    parser.add_argument("--messages", type=int, default=None, help="how many invitations (default 5,000)")
    parser.add_argument("--pool-size", type=int, default=4, help="PORTAL_SMTP_POOL_SIZE for the outbox run")
    args = parser.parse_args()
    count = args.messages or (500 if args.quick else 5000)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")

    with tempfile.TemporaryDirectory(prefix="notify-bench-") as tmp, Sink() as sink:
        database_url = os.environ.get("PORTAL_DATABASE_URL") or f"sqlite:///{Path(tmp) / 'portal.db'}"
        settings = Settings(
            data_dir=Path(tmp), database_url=database_url, service_token="bench-token",
            notify_addr=f"127.0.0.1:{free_port()}", smtp_host="127.0.0.1", smtp_port=sink.port,
            smtp_pool_size=args.pool_size, log_level="WARNING", _env_file=None,
        )
        local_hostname = await asyncio.to_thread(socket.getfqdn)
        # Compile the templates once, as a long-running notify has: neither run should pay for it.
        render("invitation", _data(0, settings), branding_for(settings))
        print(f"{count} invitations to an aiosmtpd server in another process (pid {sink.pid}, 127.0.0.1:{sink.port})")
        print(f"outbox: notify server on {settings.notify_addr}, "
              f"{'SQLite' if 'sqlite' in settings.resolved_database_url else 'PostgreSQL'}, "
              f"{args.pool_size} pooled SMTP connections")

        outbox = await outbox_run(settings, sink, count)
        outbox_rate = outbox["sent"] / outbox["seconds"]
        print(f"outbox delivery : {outbox['sent']:>6.0f} sent in {outbox['seconds']:6.2f} s = {outbox_rate:8.1f} "
              f"messages/s (enqueue over gRPC {outbox['enqueue_seconds']:.2f} s; SMTP server saw "
              f"{outbox['received']:.0f} messages on {outbox['connections']:.0f} connections; "
              f"{outbox['failed']:.0f} failed)")

        sink.reset()
        naive = await naive_run(settings, sink, count, local_hostname)
        naive_rate = count / naive["seconds"]
        print(f"naive loop      : {count:>6d} sent in {naive['seconds']:6.2f} s = {naive_rate:8.1f} messages/s "
              f"(one connection per message: {naive['connections']:.0f} connections)")
        ratio = outbox_rate / naive_rate
        print(f"ratio           : {ratio:.2f}x (target >= 2x) {'OK' if ratio >= 2 else 'BELOW TARGET'}")
        return 0 if outbox["sent"] == count else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
