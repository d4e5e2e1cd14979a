"""Parsing at arm's length: a file is parsed in a short-lived worker process with memory (RLIMIT_AS), CPU-time
(RLIMIT_CPU) and wall-clock limits, so a crafted file costs one worker and never the service.

The upload's bytes go to the worker through a pipe (never through a temporary file, since uploads may hold
passwords) and the table comes back through the same pipe as lists of strings.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import resource
import signal
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from plumbing.forkserver import forkserver_context
from plumbing.gcpause import paused_gc

from .errors import FileRefused, UnreadableFile, refusal_for_code
from .formats import FileFormat
from .intake import Upload
from .limits import Limits
from .oneroster import read_bundle
from .sheets import read_csv, read_workbook
from .table import Table


def parse_in_worker(upload: Upload, limits: Limits | None = None,
                    on_worker_start: Callable[[int], None] | None = None) -> Table:
    """Parse an upload that passed intake into a `Table`, in a separate process under `limits`.

    Refusals found while parsing (too many rows, unknown headers, ...) are raised as their `FileRefused`; a worker
    that dies, runs out of memory or time raises `UnreadableFile`. `on_worker_start` receives the worker's pid.
    Blocking: call it from a thread (`asyncio.to_thread`) in asynchronous code.
    """
    limits = limits or Limits()
    context = _context(limits.worker_start_method)
    ours, theirs = context.Pipe(duplex=True)
    process = context.Process(target=worker_main, args=(theirs, upload.file_format.value, limits), daemon=True,
                              name="portal-file-reader")
    process.start()
    theirs.close()
    timed_out = threading.Event()

    def expire() -> None:
        timed_out.set()
        process.kill()

    timer = threading.Timer(limits.worker_timeout_seconds, expire)
    timer.daemon = True
    timer.start()
    reply: Any = None
    try:
        if on_worker_start is not None:
            on_worker_start(process.pid or 0)
        try:
            ours.send_bytes(upload.data)
            reply = ours.recv()
            if reply[0] == "packed":
                with paused_gc():
                    reply = ("ok", unpack_rows(reply[1], ours.recv_bytes()))
        except (EOFError, OSError):
            reply = None
    finally:
        timer.cancel()
        ours.close()
        process.join(5)
        if process.exitcode is None:
            process.kill()
            process.join()
        exitcode = process.exitcode
        process.close()
    if reply is None:
        raise UnreadableFile(_death_message(exitcode, timed_out.is_set(), limits))
    status = reply[0]
    if status == "ok":
        return reply[1]
    if status == "refused":
        raise refusal_for_code(reply[1])(reply[2])
    if status == "memory":
        raise UnreadableFile(_MEMORY)
    raise UnreadableFile(_CRASHED)


_MEMORY = ("The portal could not read this file: reading it needed more memory than a file may use (a stray value "
           "far below or to the right of the data makes a sheet huge): delete the empty rows and columns after your "
           "data, or split the file, save it as .xlsx, and send it again.")
_CRASHED = ("The portal could not read this file: the reader stopped on it: open it in Excel, save a fresh copy "
            "(Save As .xlsx), and send that copy.")


def _death_message(exitcode: int | None, timed_out: bool, limits: Limits) -> str:
    if timed_out or exitcode == -signal.SIGXCPU:
        seconds = (f"{limits.worker_timeout_seconds:g} seconds" if timed_out
                   else f"{limits.worker_cpu_seconds} seconds of processor time")
        return (f"The portal could not read this file within the {seconds} a file may take: delete the empty rows "
                "and columns after your data, or split the file, save it as .xlsx, and send it again.")
    if exitcode in (-signal.SIGABRT, -signal.SIGSEGV, -signal.SIGBUS):
        return _MEMORY
    return _CRASHED


def prepare_workers(limits: Limits | None = None) -> None:
    """Start the fork server now, so that the first file read after the service starts does not wait for it
    (and for the modules it preloads). Blocking: call it from a thread."""
    limits = limits or Limits()
    if limits.worker_start_method == "forkserver":
        _context(limits.worker_start_method)
        from multiprocessing import forkserver

        forkserver.ensure_running()


def _context(method: str) -> multiprocessing.context.BaseContext:
    if method == "forkserver":
        # Preloading the main module (guarded by `if __name__ == "__main__"`, as multiprocessing requires) spares
        # each worker from importing it.
        return forkserver_context(["__main__", __name__])
    return multiprocessing.get_context(method)


# Inside the worker process -----------------------------------------------------------------------------------------
def worker_main(connection: Connection, file_format: str, limits: Limits) -> None:
    """Entry point of the worker: apply the limits, receive the bytes, parse, send back the table or the refusal."""
    try:
        apply_limits(limits)
        data = connection.recv_bytes()
        with paused_gc():
            table = parse_bytes(data, FileFormat(file_format), limits)
            del data
            packed = pack_rows(table.rows)
            if packed is None:
                connection.send(("ok", table))
            else:
                table.rows = []
                connection.send(("packed", table))
                connection.send_bytes(packed)
    except FileRefused as exc:
        _send(connection, ("refused", exc.code, exc.message))
    except MemoryError:
        _send(connection, ("memory",))
    except BaseException as exc:  # anything else a crafted file provokes ends this worker, not the service
        _send(connection, ("error", type(exc).__name__))
    finally:
        connection.close()


def parse_bytes(data: bytes, file_format: FileFormat, limits: Limits) -> Table:
    """Parse bytes of a known format into a `Table` in this process (the worker's body; no limits applied here)."""
    if file_format is FileFormat.XLSX:
        return read_workbook(data, limits)
    if file_format is FileFormat.ONEROSTER:
        return read_bundle(data, limits)
    return read_csv(data, limits)


# Rows travel as one UTF-8 text with unit separators between cells and record separators between rows: splitting
# it is several times faster than unpickling a million small strings. Cells holding a separator fall back to pickle.
_CELL = "\x1f"
_ROW = "\x1e"


def pack_rows(rows: list[list[str]]) -> bytes | None:
    """The rows as one separated text, or None when a cell itself holds a separator character."""
    if not rows:
        return None
    width = len(rows[0])
    text = _ROW.join([_CELL.join(row) for row in rows])
    if text.count(_CELL) != len(rows) * (width - 1) or text.count(_ROW) != len(rows) - 1:
        return None
    return text.encode("utf-8", "surrogatepass")


def unpack_rows(table: Table, packed: bytes) -> Table:
    """The table with the rows `pack_rows` packed put back."""
    table.rows = [row.split(_CELL) for row in packed.decode("utf-8", "surrogatepass").split(_ROW)]
    return table


def apply_limits(limits: Limits) -> None:
    """Limit this process's address space and CPU time, and forbid core dumps and file writes."""
    os.environ["RUST_BACKTRACE"] = "0"
    _set(resource.RLIMIT_AS, limits.worker_memory_bytes)
    _set(resource.RLIMIT_CPU, limits.worker_cpu_seconds, hard_extra=5)
    _set(resource.RLIMIT_CORE, 0)
    _set(resource.RLIMIT_FSIZE, 0)


def _set(which: int, value: int, hard_extra: int = 0) -> None:
    _, hard = resource.getrlimit(which)
    wanted_hard = value + hard_extra
    if hard != resource.RLIM_INFINITY:
        wanted_hard = min(wanted_hard, hard)
        value = min(value, hard)
    resource.setrlimit(which, (value, wanted_hard))


def _send(connection: Connection, message: tuple[Any, ...]) -> None:
    with contextlib.suppress(OSError, MemoryError, ValueError):
        connection.send(message)
