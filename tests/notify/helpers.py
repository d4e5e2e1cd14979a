"""Helpers for the notify tests: waiting on observable state, requests, and the notify client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import grpc
from google.protobuf import struct_pb2

from plumbing.clients import open_channel
from plumbing.config import Settings
from portal.notify.v1 import notify_pb2, notify_pb2_grpc

T = TypeVar("T")
LINK_BASE = "https://portal.example.org/set-password?token="
# Short retries so that tests wait seconds, not minutes (what operators would set PORTAL_NOTIFY_RETRY_* to).
FAST = {"notify_retry_initial_seconds": 0.2, "notify_retry_max_seconds": 1.0, "notify_poll_seconds": 0.2,
        "smtp_timeout_seconds": 5.0}


async def eventually(check: Callable[[], Awaitable[T] | T], timeout: float = 20.0, interval: float = 0.05,
                     what: str = "condition") -> T:
    """Poll `check` until it returns something truthy (returned), failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        result = check()
        if asyncio.iscoroutine(result) or isinstance(result, Awaitable):
            result = await result
        last = result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s (last: {last!r})")
        await asyncio.sleep(interval)


@asynccontextmanager
async def notify_stub(settings: Settings) -> AsyncIterator[notify_pb2_grpc.NotifyServiceStub]:
    async with open_channel(settings, "notify") as channel:
        yield notify_pb2_grpc.NotifyServiceStub(channel)


def struct(values: dict[str, Any]) -> struct_pb2.Struct:
    data = struct_pb2.Struct()
    data.update(values)
    return data


def invitation(key: str, to: str, job_id: str = "", school: str = "", **data: Any) -> notify_pb2.EmailRequest:
    values = {"username": f"user{key[-6:]}", "first_name": "Sam", "link": LINK_BASE + key,
              "expire_time": "2030-01-04T17:00:00Z", **data}
    return notify_pb2.EmailRequest(idempotency_key=key, template=notify_pb2.TEMPLATE_INVITATION, to=to,
                                   data=struct(values), job_id=job_id, school=school)


async def enqueue(stub: notify_pb2_grpc.NotifyServiceStub, *emails: notify_pb2.EmailRequest
                  ) -> list[notify_pb2.Message]:
    reply = await stub.EnqueueEmails(notify_pb2.EnqueueEmailsRequest(emails=list(emails)), timeout=30)
    return list(reply.messages)


async def message_state(stub: notify_pb2_grpc.NotifyServiceStub, key: str) -> notify_pb2.Message:
    return await stub.GetMessage(notify_pb2.GetMessageRequest(idempotency_key=key), timeout=10)


async def all_in_state(stub: notify_pb2_grpc.NotifyServiceStub, keys: list[str], state: int) -> bool:
    """Whether every key is known to notify and in `state`."""
    for key in keys:
        try:
            message = await message_state(stub, key)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return False
            raise
        if message.state != state:
            return False
    return True
