"""`/portal jobs`: jobs running now and the most recent ones, with progress: the imports service's (trial runs,
uploads, undo) and the accounts service's (bulk resets, usage reports, generation)."""

from __future__ import annotations

from bot.core import BotCore, Request
from bot.formatting import enum_word, when
from bot.progress import kind_name
from bot.registry import REGISTRY
from bot.replies import Reply, Table, Text
from bot.services import ServiceProblem, calling
from portal.accounts.v1 import accounts_pb2
from portal.common.v1 import jobs_pb2
from portal.imports.v1 import imports_pb2

RECENT = 15


def _progress(job: jobs_pb2.Job) -> str:
    if job.total:
        return f"{job.done:,}/{job.total:,} ({min(100, job.done * 100 // job.total)}%)"
    return f"{job.done:,}" if job.done else "-"


async def _import_jobs(core: BotCore, request: Request) -> list[tuple[jobs_pb2.Job, str]]:
    async with calling("imports", request.actor):
        answer = await core.services.imports.ListImportJobs(imports_pb2.ListImportJobsRequest(page_size=RECENT))
    return [(item.job, item.filename or "-") for item in answer.jobs]


async def _account_jobs(core: BotCore, request: Request) -> list[tuple[jobs_pb2.Job, str]]:
    async with calling("accounts", request.actor):
        answer = await core.services.accounts.ListJobs(accounts_pb2.ListJobsRequest(page_size=RECENT))
    return [(job, "-") for job in answer.jobs]


@REGISTRY.command("jobs", "", "Jobs running now and the recent ones, with progress: imports, resets, usage reports.",
                  ("/portal jobs",))
async def jobs(core: BotCore, request: Request, _args: list[str]) -> Reply:
    found: list[tuple[jobs_pb2.Job, str]] = []
    problems: list[str] = []
    for fetch in (_import_jobs, _account_jobs):
        try:
            found += await fetch(core, request)
        except ServiceProblem as exc:
            problems.append(exc.message)
    if problems and not found:
        raise ServiceProblem("imports", " ".join(problems))
    found.sort(key=lambda pair: (pair[0].create_time.seconds, pair[0].create_time.nanos), reverse=True)
    found = found[:RECENT]
    zone = core.settings.zone
    rows = tuple(
        (job.id, kind_name(job.kind), enum_word(jobs_pb2.JobState.Name(job.state), "JOB_STATE_"), _progress(job),
         filename, job.summary or "-", when(job.create_time, zone), job.actor or "-")
        for job, filename in found
    )
    running = sum(1 for job, _ in found if job.state in (jobs_pb2.JOB_STATE_QUEUED, jobs_pb2.JOB_STATE_RUNNING))
    parts: list[Table | Text] = [
        Table(("job", "kind", "state", "progress", "file", "summary", "started", "by"), rows,
              empty="No jobs yet: drop a spreadsheet to start a trial run."),
    ]
    parts += [Text(f":warning: {problem}") for problem in problems]
    return Reply(f"Jobs: {running} running, {len(rows)} shown", parts=list(parts))
