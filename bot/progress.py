"""Progress of a running import job shown on its progress message: polled, throttled, stopped when it ends.

The final message is not ours: notify's task alert posts it into the same thread (and updates the same message)
once the job has ended, so this watcher only ever writes while the job is still queued or running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from bot.services import ServiceProblem, Services, calling
from plumbing.context import Actor
from portal.common.v1 import jobs_pb2
from portal.imports.v1 import imports_pb2

log = logging.getLogger("portal.bot.progress")
ENDED = (jobs_pb2.JOB_STATE_SUCCEEDED, jobs_pb2.JOB_STATE_FAILED, jobs_pb2.JOB_STATE_CANCELLED)
KIND_NAMES = {"trial_run": "Trial run", "upload": "Upload", "undo": "Undo"}


def kind_name(kind: str) -> str:
    return KIND_NAMES.get(kind, kind.replace("_", " ").capitalize() or "Job")


def progress_text(job: jobs_pb2.Job) -> str:
    name = kind_name(job.kind)
    if job.state == jobs_pb2.JOB_STATE_QUEUED:
        return f"{name} queued… (`{job.id}`)"
    if job.total > 0:
        percent = min(100, job.done * 100 // job.total)
        return f"{name} running… {job.done:,} of {job.total:,} rows ({percent}%) (`{job.id}`)"
    return f"{name} running… (`{job.id}`)"


Update = Callable[[str], Awaitable[None]]


async def watch_job(services: Services, actor: Actor, job_id: str, update: Update, stopping: asyncio.Event,
                    interval: float = 3.0, poll: float = 1.0) -> imports_pb2.ImportJob | None:
    """Update the progress message at most every `interval` seconds until the job ends (or the bot stops).
    Best effort: a failed poll or update is logged and the next one tried."""
    shown = ""
    last_update = 0.0
    while not stopping.is_set():
        try:
            async with calling("imports", actor, seconds=10):
                job = await services.imports.GetImportJob(imports_pb2.GetImportJobRequest(id=job_id))
        except ServiceProblem as exc:
            log.info("progress of %s unknown for now: %s", job_id, exc.message)
        else:
            if job.job.state in ENDED:
                return job
            text = progress_text(job.job)
            if text != shown and time.monotonic() - last_update >= interval:
                try:
                    await update(text)
                    shown, last_update = text, time.monotonic()
                except Exception as exc:
                    log.info("progress update of %s failed: %s", job_id, exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), poll)
    return None
