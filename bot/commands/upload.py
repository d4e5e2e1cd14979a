"""The console's way to hand over a file (Slack carries uploads itself), and the Upload and Undo buttons."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

from bot.core import BotCore, Request
from bot.flows import FileProblem, FileSource, run_trial, run_undo, run_upload
from bot.registry import REGISTRY, UsageError, first
from bot.replies import Button, Confirm, Reply

READ_BYTES = 1024 * 1024


def local_file(path: Path) -> FileSource:
    async def open_file() -> AsyncIterator[bytes]:
        if not path.is_file():
            raise FileProblem(f"There is no file at {path}.")

        async def chunks() -> AsyncIterator[bytes]:
            with path.open("rb") as handle:
                while block := await asyncio.to_thread(handle.read, READ_BYTES):
                    yield block

        return chunks()

    return FileSource(path.name, open_file)


def local_request_id(path: Path) -> str:
    """The same file content is the same trial run (as a Slack file id is in Slack)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(READ_BYTES), b""):
            digest.update(block)
    return f"console:{path.name}:{digest.hexdigest()[:32]}"


@REGISTRY.command("upload", "PATH", "Trial-run a spreadsheet on this computer (or just type its path).",
                  ("/portal upload ~/Downloads/parents.xlsx",), surfaces=frozenset({"console"}))
async def upload(core: BotCore, request: Request, args: list[str]) -> Reply | None:
    path = Path(" ".join(args) or first(args, "file", "/portal upload PATH")).expanduser()
    if not path.is_file():
        raise UsageError(f"There is no file at {path}.")
    core.tasks.spawn(run_trial(core, request, local_file(path), local_request_id(path)), name="trial run")
    return None


@REGISTRY.action("imports_upload")
async def upload_clicked(core: BotCore, request: Request, _action: str, job_id: str) -> Reply | None:
    return await run_upload(core, request, job_id)


@REGISTRY.command("undo", "JOB_ID", "Undo an upload (accounts nobody signed in to, links it added), within 14 days.",
                  ("/portal undo imp_20250301_a1b2c3d4e5",))
async def undo(core: BotCore, request: Request, args: list[str]) -> Reply:
    job_id = first(args, "upload job", "/portal undo JOB_ID")
    return Reply(f"Undo upload `{job_id}`? Accounts it created that nobody has signed in to are deleted and the "
                 "student links it added are removed.",
                 buttons=[Button("Undo upload", "imports_undo", job_id, "danger",
                                 Confirm("Undo this upload?", f"Undo upload {job_id}. This cannot be reversed.",
                                         "Undo", "Keep it"))])


@REGISTRY.action("imports_undo")
async def undo_clicked(core: BotCore, request: Request, _action: str, job_id: str) -> Reply | None:
    return await run_undo(core, request, job_id)
