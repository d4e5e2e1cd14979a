"""`/portal jobs`: import jobs running now and the most recent ones, with progress."""

from __future__ import annotations

from bot.core import BotCore, Request
from bot.formatting import enum_word, when
from bot.progress import kind_name
from bot.registry import REGISTRY
from bot.replies import Reply, Table
from bot.services import calling
from portal.common.v1 import jobs_pb2
from portal.imports.v1 import imports_pb2

RECENT = 15


def _progress(job: jobs_pb2.Job) -> str:
    if job.total:
        return f"{job.done:,}/{job.total:,} ({min(100, job.done * 100 // job.total)}%)"
    return f"{job.done:,}" if job.done else "-"


@REGISTRY.command("jobs", "", "Import jobs running now and the recent ones, with progress.", ("/portal jobs",))
async def jobs(core: BotCore, request: Request, _args: list[str]) -> Reply:
    async with calling("imports", request.actor):
        answer = await core.services.imports.ListImportJobs(imports_pb2.ListImportJobsRequest(page_size=RECENT))
    zone = core.settings.zone
    rows = tuple(
        (item.job.id, kind_name(item.job.kind), enum_word(jobs_pb2.JobState.Name(item.job.state), "JOB_STATE_"),
         _progress(item.job), item.filename or "-", item.job.summary or "-", when(item.job.create_time, zone),
         item.job.actor or "-")
        for item in answer.jobs
    )
    running = sum(1 for item in answer.jobs if item.job.state in (jobs_pb2.JOB_STATE_QUEUED,
                                                                   jobs_pb2.JOB_STATE_RUNNING))
    return Reply(f"Import jobs: {running} running, {len(rows)} shown", parts=[
        Table(("job", "kind", "state", "progress", "file", "summary", "started", "by"), rows,
              empty="No import jobs yet: drop a spreadsheet to start a trial run."),
    ])
