"""Progress of a running job (imports or accounts) shown on its progress message: polled, throttled, stopped
when it ends.

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
from portal.accounts.v1 import accounts_pb2
from portal.common.v1 import jobs_pb2
from portal.imports.v1 import imports_pb2

log = logging.getLogger("portal.bot.progress")
ENDED = (jobs_pb2.JOB_STATE_SUCCEEDED, jobs_pb2.JOB_STATE_FAILED, jobs_pb2.JOB_STATE_CANCELLED)
KIND_NAMES = {"trial_run": "Trial run", "upload": "Upload", "undo": "Undo", "generate": "Generation",
              "resend_invitations": "Resending invitations"}
# What a job's done/total count (rows unless said here).
UNITS = {"generate": "guardians", "resend_invitations": "invitations"}


def kind_name(kind: str) -> str:
    return KIND_NAMES.get(kind, kind.replace("_", " ").capitalize() or "Job")


def progress_text(job: jobs_pb2.Job) -> str:
    name = kind_name(job.kind)
    if job.state == jobs_pb2.JOB_STATE_QUEUED:
        return f"{name} queued… (`{job.id}`)"
    if job.total > 0:
        percent = min(100, job.done * 100 // job.total)
        return f"{name} running… {job.done:,} of {job.total:,} {UNITS.get(job.kind, 'rows')} ({percent}%) (`{job.id}`)"
    return f"{name} running… (`{job.id}`)"


Update = Callable[[str], Awaitable[None]]


async def current_job(services: Services, service: str, job_id: str) -> jobs_pb2.Job:
    """A job as its service (imports or accounts) stands now."""
    if service == "accounts":
        return await services.accounts.GetJob(accounts_pb2.GetJobRequest(id=job_id))
    return (await services.imports.GetImportJob(imports_pb2.GetImportJobRequest(id=job_id))).job


async def watch_job(services: Services, actor: Actor, job_id: str, update: Update, stopping: asyncio.Event,
                    interval: float = 3.0, poll: float = 1.0, service: str = "imports") -> jobs_pb2.Job | None:
    """Update the progress message at most every `interval` seconds until the job ends (or the bot stops).
    Best effort: a failed poll or update is logged and the next one tried."""
    shown = ""
    last_update = 0.0
    while not stopping.is_set():
        try:
            async with calling(service, actor, seconds=10):
                job = await current_job(services, service, job_id)
        except ServiceProblem as exc:
            log.info("progress of %s unknown for now: %s", job_id, exc.message)
        else:
            if job.state in ENDED:
                return job
            text = progress_text(job)
            if text != shown and time.monotonic() - last_update >= interval:
                try:
                    await update(text)
                    shown, last_update = text, time.monotonic()
                except Exception as exc:
                    log.info("progress update of %s failed: %s", job_id, exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), poll)
    return None
