"""Reading an uploaded file end to end: intake checks, parsing in a worker process, typed rows and checks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .intake import check_upload
from .limits import Limits
from .rows import ParsedFile, parse_rows
from .worker import parse_in_worker


def read_upload(data: bytes, filename: str, limits: Limits | None = None, *,
                on_worker_start: Callable[[int], None] | None = None) -> ParsedFile:
    """Read an untrusted upload: refuse it with a `FileRefused` (one sentence for staff) or return its rows.

    Blocking (it waits for the worker process): from asynchronous code use `read_upload_async`.
    """
    limits = limits or Limits()
    upload = check_upload(data, filename, limits)
    table = parse_in_worker(upload, limits, on_worker_start=on_worker_start)
    return parse_rows(table)


async def read_upload_async(data: bytes, filename: str, limits: Limits | None = None) -> ParsedFile:
    """`read_upload` run in a thread, so the event loop keeps serving while the worker parses."""
    return await asyncio.to_thread(read_upload, data, filename, limits)
