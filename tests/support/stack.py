"""Several real services at once in the test's event loop, with stubs ready to call and a polling helper."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc

from plumbing.clients import open_channel
from plumbing.config import Settings
from plumbing.context import Actor, set_call_context
from portal.accounts.v1 import accounts_pb2_grpc
from portal.imports.v1 import imports_pb2_grpc
from portal.notify.v1 import notify_pb2_grpc
from tests.support.services import running_service

T = TypeVar("T")
STAFF = Actor("U0STAFF1", "Office Manager")


@dataclass
class Stack:
    settings: Settings
    channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)

    @property
    def accounts(self) -> accounts_pb2_grpc.AccountsServiceStub:
        return accounts_pb2_grpc.AccountsServiceStub(self.channels["accounts"])

    @property
    def imports(self) -> imports_pb2_grpc.ImportsServiceStub:
        return imports_pb2_grpc.ImportsServiceStub(self.channels["imports"])

    @property
    def notify(self) -> notify_pb2_grpc.NotifyServiceStub:
        return notify_pb2_grpc.NotifyServiceStub(self.channels["notify"])


@asynccontextmanager
async def running_stack(settings: Settings, services: tuple[str, ...] = ("accounts", "notify", "imports"),
                        actor: Actor = STAFF) -> AsyncIterator[Stack]:
    """Start the services (in that order) and open an authenticated channel to each; calls act as `actor`."""
    set_call_context(actor, "", None)
    stack = Stack(settings)
    async with AsyncExitStack() as exits:
        for name in services:
            await exits.enter_async_context(running_service(name, settings))
            stack.channels[name] = await exits.enter_async_context(open_channel(settings, name))
        yield stack


async def eventually(probe: Callable[[], Awaitable[T]], check: Callable[[T], bool], *, timeout: float = 60.0,
                     every: float = 0.1, what: str = "condition") -> T:
    """Poll `probe` until `check` holds for its answer, or fail after `timeout` seconds with the last answer."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = await probe()
        if check(last):
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached after {timeout} s; last: {last!r}")
        await asyncio.sleep(every)
