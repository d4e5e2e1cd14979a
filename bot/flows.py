"""Jobs started from chat: a dropped spreadsheet's trial run, the Upload button, undo. The bot posts the progress
message, starts the job in the imports service with that anchor, and keeps the message current while it runs;
notify posts the final message into the same thread."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from bot.core import Anchor, BotCore, Request
from bot.progress import watch_job
from bot.replies import Reply
from bot.services import ServiceProblem, calling
from portal.common.v1 import jobs_pb2
from portal.imports.v1 import imports_pb2

log = logging.getLogger("portal.bot.flows")
CHUNK_BYTES = 256 * 1024


class FileProblem(Exception):
    """A file the bot will not pass on (a download that is not the file, a host it must not fetch from)."""


@dataclass
class FileSource:
    """A file to trial-run: its name and a way to open its bytes (checked before the first byte is sent)."""

    filename: str
    open: Callable[[], Awaitable[AsyncIterator[bytes]]]


def slack_anchor(anchor: Anchor) -> jobs_pb2.SlackAnchor:
    return jobs_pb2.SlackAnchor(channel=anchor.channel, thread_ts=anchor.thread_ts, message_ts=anchor.message_ts,
                                user_id=anchor.user_id)


async def _trial_requests(header: imports_pb2.TrialRunHeader,
                          chunks: AsyncIterator[bytes]) -> AsyncIterator[imports_pb2.CreateTrialRunRequest]:
    yield imports_pb2.CreateTrialRunRequest(header=header)
    async for chunk in chunks:
        for start in range(0, len(chunk), CHUNK_BYTES):
            yield imports_pb2.CreateTrialRunRequest(chunk=chunk[start:start + CHUNK_BYTES])


async def _watch(core: BotCore, request: Request, job: jobs_pb2.Job, anchor: Anchor, service: str = "imports") -> None:
    async def update(text: str) -> None:
        await request.surface.update_progress(anchor, text)

    await watch_job(core.services, request.actor, job.id, update, core.stopping,
                    core.progress_interval, core.progress_poll, service)


async def run_trial(core: BotCore, request: Request, source: FileSource, request_id: str,
                    thread_ts: str = "") -> jobs_pb2.Job | None:
    """Post "trial run running…", stream the file to CreateTrialRun with that anchor, then show progress.
    `request_id` (the Slack file id) makes the same file one trial run however often it is handed in."""
    previous = ""
    if request.channel and thread_ts:
        previous = await core.handled.thread_job(request.channel, thread_ts) or ""
    anchor = await request.surface.start_progress(f"Trial run running… reading *{source.filename}*", thread_ts)
    try:
        chunks = await source.open()
        header = imports_pb2.TrialRunHeader(filename=source.filename, anchor=slack_anchor(anchor),
                                            request_id=request_id, previous_job_id=previous)
        async with calling("imports", request.actor, seconds=300, request_id=request_id):
            job = await core.services.imports.CreateTrialRun(_trial_requests(header, chunks))
    except FileProblem as exc:
        await request.surface.update_progress(anchor, f":warning: {exc}")
        return None
    except ServiceProblem as exc:
        await request.surface.update_progress(anchor, f":warning: {exc.message}")
        return None
    log.info("trial run %s started for %s", job.id, source.filename,
             extra={"fields": {"job": job.id, "user": request.actor.id}})
    if anchor.channel and anchor.thread_ts:
        await core.handled.remember_thread_job(anchor.channel, anchor.thread_ts, job.id)
    await _watch(core, request, job, anchor)
    return job


async def run_upload(core: BotCore, request: Request, trial_job_id: str) -> Reply | None:
    """The Upload button: start the real upload of a trial run once, however often it is clicked."""
    return await _start_once(core, request, "upload", trial_job_id, "Upload running…")


async def run_undo(core: BotCore, request: Request, upload_job_id: str) -> Reply | None:
    return await _start_once(core, request, "undo", upload_job_id, "Undo running…")


async def _start_once(core: BotCore, request: Request, what: str, job_id: str, running: str) -> Reply | None:
    method = core.services.imports.StartUpload if what == "upload" else core.services.imports.UndoUpload
    message_type = imports_pb2.StartUploadRequest if what == "upload" else imports_pb2.UndoUploadRequest

    async def start(anchor: jobs_pb2.SlackAnchor) -> jobs_pb2.Job:
        return await method(message_type(job_id=job_id, request_id=f"{job_id}:{what}", anchor=anchor))

    return await start_job_once(core, request, f"{what}:{job_id}", what, job_id, running, start)


StartJob = Callable[[jobs_pb2.SlackAnchor], Awaitable[jobs_pb2.Job]]


async def start_job_once(core: BotCore, request: Request, key: str, what: str, source: str, running: str,
                         start: StartJob, service: str = "imports") -> Reply | None:
    """A button that starts a job: once per `key` however often it is clicked; a progress message in the thread
    kept current while the job runs (the service's alert posts the final message there)."""
    if not await core.handled.claim(key, what):
        return Reply(f"That {what} was already started (from `{source}`); its progress is in the thread.")
    anchor = await request.surface.start_progress(f"{running} (from `{source}`)", request.thread_ts)
    try:
        async with calling(service, request.actor, request_id=key):
            job = await start(slack_anchor(anchor))
    except ServiceProblem as exc:
        await core.handled.release(key)
        await request.surface.update_progress(anchor, f":warning: {exc.message}")
        return None
    log.info("%s %s started from %s", what, job.id, source, extra={"fields": {"job": job.id}})
    await _watch(core, request, job, anchor, service)
    return None
