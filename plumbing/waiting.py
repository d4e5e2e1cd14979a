"""Waiting helpers for background loops."""

from __future__ import annotations

import asyncio
import contextlib


async def wait_for_either(stopping: asyncio.Event, wake: asyncio.Event, timeout: float) -> None:
    """Return when `stopping` or `wake` is set, or after `timeout` seconds; clears `wake` first."""
    wake.clear()
    waiters = [asyncio.create_task(stopping.wait()), asyncio.create_task(wake.wait())]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED), timeout)
    for waiter in waiters:
        waiter.cancel()
