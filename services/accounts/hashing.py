"""Password hashing with argon2id in a pool of processes, so a batch of passwords uses every core.

Hashing is the costly step of an upload (~40 ms a password at OWASP parameters), so it never runs in a trial run,
never on the event loop, and runs before the write transaction, not inside it. Plaintext passwords only pass
through the pool's pipes; they are never stored or logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import math
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from plumbing.forkserver import forkserver_context


@dataclass(frozen=True)
class HashParams:
    """argon2id cost. The defaults are OWASP's recommendation (19 MiB of memory, 2 passes, 1 lane)."""

    time_cost: int = 2
    memory_cost: int = 19 * 1024
    parallelism: int = 1


OWASP = HashParams()
_hashers: dict[HashParams, PasswordHasher] = {}


def _hasher(params: HashParams) -> PasswordHasher:
    hasher = _hashers.get(params)
    if hasher is None:
        hasher = PasswordHasher(time_cost=params.time_cost, memory_cost=params.memory_cost,
                                parallelism=params.parallelism, hash_len=32, salt_len=16, type=Type.ID)
        _hashers[params] = hasher
    return hasher


T = TypeVar("T")
# What the workers run, loaded once by the fork server rather than by every worker.
WORKER_MODULES = ("services.accounts.hashing", "services.accounts.plan_workers")
SERVICE_CHECK_SECONDS = 1.0
PR_SET_PDEATHSIG = 1  # Linux prctl(2): the signal a process gets when its parent dies


def _worker_setup(service_pid: int) -> None:
    """In a worker. Ctrl-C in a terminal reaches the whole process group, but the service stops its pool itself
    (after the batch in hand), so a worker neither dies mid-hash nor prints a traceback. And a worker ends with its
    service: one killed outright (kill -9, out of memory) would otherwise leave its workers waiting for ever. The
    worker's parent is the fork server, not the service, so a thread watches the service itself; the parent-death
    signal covers a fork server that goes first."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    threading.Thread(target=_end_with, args=(service_pid,), name="end-with-service", daemon=True).start()


def _end_with(service_pid: int) -> None:
    while True:
        try:
            os.kill(service_pid, 0)
        except (ProcessLookupError, PermissionError):  # gone (or its number reused by another user's process)
            os._exit(0)
        time.sleep(SERVICE_CHECK_SECONDS)


def _hash_chunk(params: HashParams, passwords: Sequence[str]) -> list[str]:
    hasher = _hasher(params)
    return [hasher.hash(p) for p in passwords]


def _verify(params: HashParams, encoded: str, password: str) -> tuple[bool, bool]:
    hasher = _hasher(params)
    try:
        hasher.verify(encoded, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False, False
    return True, hasher.check_needs_rehash(encoded)


class PasswordHashing:
    """A process pool that hashes and verifies passwords. `workers` defaults to the number of CPUs."""

    def __init__(self, workers: int | None = None, params: HashParams = OWASP) -> None:
        self.params = params
        self.workers = max(1, workers or os.cpu_count() or 1)
        # Forked from the fork server, not from this process: the workers must not inherit the gRPC server's
        # threads (a plain fork would copy them half-way). They plan trial-run batches too (plan_workers).
        self._pool = ProcessPoolExecutor(self.workers, mp_context=forkserver_context(WORKER_MODULES),
                                         initializer=_worker_setup, initargs=(os.getpid(),))
        self._dummy: str | None = None

    async def start(self) -> None:
        """Start every worker now (not on the first batch) and make the hash that unknown usernames are checked
        against, so that their answer takes as long as a wrong password's."""
        loop = asyncio.get_running_loop()
        warm = [loop.run_in_executor(self._pool, _hash_chunk, self.params, [secrets.token_urlsafe(16)])
                for _ in range(self.workers)]
        self._dummy = (await asyncio.gather(*warm))[0][0]

    async def hash_many(self, passwords: Sequence[str]) -> list[str]:
        if not passwords:
            return []
        loop = asyncio.get_running_loop()
        size = max(1, math.ceil(len(passwords) / (self.workers * 4)))
        chunks = [list(passwords[i:i + size]) for i in range(0, len(passwords), size)]
        done = await asyncio.gather(*(loop.run_in_executor(self._pool, _hash_chunk, self.params, chunk)
                                      for chunk in chunks))
        return [encoded for chunk in done for encoded in chunk]

    async def verify(self, encoded: str | None, password: str) -> tuple[bool, bool]:
        """(matches, needs rehash). Without a stored hash the dummy one is checked, so the answer takes as long."""
        loop = asyncio.get_running_loop()
        target = encoded or self._dummy
        if target is None:
            await self.start()
            target = self._dummy
        assert target is not None
        matches, rehash = await loop.run_in_executor(self._pool, _verify, self.params, target, password)
        return (matches and encoded is not None), rehash

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Other processor-bound work of the service in the same processes, which idle between hashes (the
        planning of a trial run's batches: services.accounts.plan_workers). `fn` must be a module's function."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
