"""The portal-usage report as a job (kind "usage_report"): the workbook is written in a worker thread from one
consistent read of the database, stored as the job's "report" file, and posted to the requester (by DM) by the
task alert. A worker that dies mid-way leaves the job to another, which writes the report again from the start
(nothing in the database changes until the job ends)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any

from plumbing.config import Settings
from plumbing.db import Database
from plumbing.jobs import FAILED, SUCCEEDED, AlertContent, AlertFile, JobContext, JobRecord
from plumbing.sheets import saved
from services.accounts.domain import AccountFilter
from services.accounts.jobs import AccountJobs, job_file_key
from services.accounts.reset_job import section
from services.accounts.reset_rules import ResetSpec
from services.accounts.store import AccountStore
from services.accounts.usage_rules import check_range, parse_day, utc_bounds
from services.accounts.usage_store import Parent, UsageStore
from services.accounts.usage_workbook import UsageSource, UsageTally, write_usage

log = logging.getLogger("portal.accounts.usage")
KIND = "usage_report"
PAGE = 1000


class Stopped(Exception):
    """The service is stopping: leave the job for another worker."""


class UsageReportJob:
    def __init__(self, db: Database, store: AccountStore, jobs: AccountJobs, settings: Settings) -> None:
        self.db = db
        self.usage_store = UsageStore(store)
        self.jobs = jobs
        self.settings = settings

    def register(self) -> None:
        self.jobs.register(KIND, self.run, self.compose)

    async def start(self, start_date: str, end_date: str, where: AccountFilter, anchor: dict[str, str],
                    request_id: str) -> JobRecord:
        start, end = parse_day(start_date, "start_date"), parse_day(end_date, "end_date")
        check_range(start, end)
        payload = {"start": start.isoformat(), "end": end.isoformat(), "where": ResetSpec(where).to_json()}
        return await self.jobs.start(KIND, payload, anchor=anchor, request_id=request_id or None)

    # The work ---------------------------------------------------------------------------------------------------

    def build(self, where: AccountFilter, start: date, end: date, progress: Any = None) -> tuple[bytes, UsageTally]:
        """The workbook (bytes) and its counts, from one read transaction."""
        from openpyxl import Workbook

        low, high = utc_bounds(start, end, self.settings.zone)
        store = self.usage_store
        with self.db.read() as session:
            per_parent = store.count(session, where) <= self.settings.usage_sheet_limit

            def pages() -> Iterator[Sequence[Parent]]:
                after: str | None = None
                while True:
                    page = store.parents(session, where, after, PAGE)
                    if page:
                        yield page
                    if len(page) < PAGE:
                        return
                    after = page[-1].username_key

            source = UsageSource(pages(), lambda ids: store.usage(session, ids, low, high),
                                 lambda ids: store.learners(session, ids), store.sign_ins(session, where, low, high))
            workbook = Workbook(write_only=True)
            workbook.properties.title = f"Parent portal usage {start.isoformat()} to {end.isoformat()}"
            tally = write_usage(workbook, source, self.settings.zone, per_parent, progress)
        return saved(workbook), tally

    async def run(self, context: JobContext) -> None:
        job = context.job
        where = ResetSpec.from_json(job.payload["where"]).where
        start, end = date.fromisoformat(job.payload["start"]), date.fromisoformat(job.payload["end"])

        def progress(done: int) -> None:
            if context.should_stop():
                raise Stopped
            with self.db.transaction() as session:
                context.store.progress(session, job.id, context.owner, done=done)

        try:
            data, tally = await asyncio.to_thread(self.build, where, start, end, progress)
        except Stopped:
            return
        await self.db.run(self.jobs.blobs.put, job_file_key(job.id, "report"), data)
        counts = {"parents": tally.parents, "never": tally.never, "sign_ins": tally.sign_ins,
                  "per_parent_sheets": int(tally.per_parent_sheets)}
        summary = (f"{tally.parents:,} parents, {tally.sign_ins:,} sign-ins, {tally.never:,} never signed in "
                   f"between {start.isoformat()} and {end.isoformat()}")

        def finish() -> None:
            with self.db.transaction() as session:
                context.store.progress(session, job.id, context.owner, done=tally.sign_ins, total=tally.sign_ins)
                context.store.finish(session, job.id, context.owner, state=SUCCEEDED, summary=summary,
                                     result={"files": ["report"], "counts": counts},
                                     attributes={k: str(v) for k, v in counts.items()})
        await self.db.run(finish)
        self.jobs.poke_alerts()

    # The final message ------------------------------------------------------------------------------------------

    async def compose(self, job: JobRecord) -> AlertContent:
        period = f"{job.payload.get('start', '?')} to {job.payload.get('end', '?')}"
        if job.state == FAILED:
            text = f"The portal usage report for {period} failed: {job.error_message or job.summary}"
            return AlertContent(text, [section(f":x: {text}")])
        counts = job.result.get("counts", {})
        text = f"Portal usage report for {period} is ready: {job.summary}."
        lines = [f":bar_chart: *Portal usage, {period}* (`{job.id}`)",
                 f"{counts.get('parents', 0):,} parents, {counts.get('sign_ins', 0):,} sign-ins; "
                 f"{counts.get('never', 0):,} parents did not sign in. Times are in {self.settings.timezone}."]
        if counts.get("per_parent_sheets", 1):
            lines.append("The workbook has a Summary sheet and one sheet per parent.")
        else:
            lines.append(f"Over {self.settings.usage_sheet_limit:,} parents, so instead of a sheet per parent the "
                         "workbook has one *Sign-ins* sheet (a row per sign-in, with a filter) after the Summary.")
        files: tuple[AlertFile, ...] = ()
        try:
            data = await self.db.run(self.jobs.blobs.get, job_file_key(job.id, "report"))
            files = (AlertFile(f"portal-usage-{job.payload.get('start')}-to-{job.payload.get('end')}.xlsx", data,
                               f"Portal usage {period}"),)
        except KeyError:
            lines.append("(The workbook is no longer available.)")
        return AlertContent(text, [section("\n".join(lines))], files)
