"""The import jobs: trial run, upload and undo. Each plans through the same functions (services.imports.planning);
the upload applies batch by batch with idempotency keys and commits its progress with each batch's outcomes, so a
service killed mid-upload resumes at the next batch and no row is applied twice."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from plumbing.blobs import BlobStore
from plumbing.context import set_call_context
from plumbing.db import utcnow
from plumbing.gcpause import paused_gc
from plumbing.jobs import FAILED, SUCCEEDED, JobAlertRelay, JobContext
from portal.accounts.v1 import accounts_pb2
from services.imports import roster
from services.imports.planning import RowPlan, account_columns, answers, batches, count, merge, summary_sentence
from services.imports.reading import (
    ParsedFile,
    SheetRow,
    annotated_workbook,
    log_workbook,
    parsed_from_json,
    sheet_rows,
    without_cells,
    without_table,
)
from services.imports.store import ImportsStore, Problem, outcome_rows

log = logging.getLogger("portal.imports")
OnBatch = Callable[[int], Awaitable[None]]
# Batches a trial run and an upload keep in flight to the accounts service, and how often they record progress.
IN_FLIGHT = 3
UPLOAD_IN_FLIGHT = 2
PROGRESS_SECONDS = 0.5
ROSTER_KINDS = ("roster", "oneroster")
UNDO_DAYS = 14
FRESH_FILES = 2
# How long a trial run's file stays in memory for the upload that usually follows it within minutes.
KEPT_FOR_UPLOAD_SECONDS = 15 * 60


def rows_key(job_id: str) -> str:
    return f"imports/{job_id}/rows.json"


def file_key(job_id: str, name: str) -> str:
    return f"imports/{job_id}/{name}.xlsx"


@dataclass
class Handlers:
    store: ImportsStore
    blobs: BlobStore
    accounts: Any  # AccountsServiceStub
    alerts: JobAlertRelay | None = None
    batch_rows: int = 2000
    # Files this process has just read, by trial-run job id, so the trial run does not read its stored rows back,
    # nor its upload soon after (keep_for_upload); a job that another replica runs (or a restart) reads the stored
    # rows instead. A few at most, each taken once.
    fresh: OrderedDict[str, ParsedFile] = field(default_factory=OrderedDict)

    def keep_fresh(self, job_id: str, parsed: ParsedFile) -> None:
        self.fresh[job_id] = parsed
        while len(self.fresh) > FRESH_FILES:
            self.fresh.popitem(last=False)

    def keep_for_upload(self, job_id: str, parsed: ParsedFile) -> None:
        """After a trial run, its file without the cells (its typed rows) stays in memory for a while, so that its
        upload starts sending batches at once instead of reading the stored rows and checking them again."""
        kept = without_table(parsed)
        self.keep_fresh(job_id, kept)

        def forget() -> None:
            if self.fresh.get(job_id) is kept:
                del self.fresh[job_id]
        asyncio.get_running_loop().call_later(KEPT_FOR_UPLOAD_SECONDS, forget)

    def _act_as(self, context: JobContext) -> None:
        set_call_context(context.job.actor, context.job.id, None)

    # Planning -------------------------------------------------------------------------------------------------

    async def _plan_accounts(self, kind: str, groups: Sequence[Sequence[SheetRow]], *, validate_only: bool,
                             job_id: str, first_batch: int = 0, on_batch: OnBatch | None = None
                             ) -> list[list[RowPlan]]:
        semaphore = asyncio.Semaphore(IN_FLIGHT)

        async def one(number: int, group: Sequence[SheetRow]) -> list[RowPlan]:
            async with semaphore:  # a batch's request is built when its turn comes, not all of them up front
                with paused_gc():  # thousands of small objects each way, no cycles among them
                    request = accounts_pb2.BatchApplyAccountRowsRequest(
                        columns=account_columns(group, kind), validate_only=validate_only,
                        send_invitations=not validate_only, job_id=job_id, links_only=kind == "student_links",
                        request_id="" if validate_only else f"{job_id}:batch:{number}")
                response = await self.accounts.BatchApplyAccountRows(request, timeout=300)
                del request
            with paused_gc():
                by_row = answers(response.columns)
                plans = [merge(row, by_row.get(row.row_number)) for row in group]
            if on_batch is not None:
                await on_batch(len(group))
            return plans

        return list(await asyncio.gather(*(one(first_batch + i, g) for i, g in enumerate(groups))))

    async def _plan_roster(self, kind: str, groups: Sequence[Sequence[SheetRow]], *, validate_only: bool,
                           job_id: str, first_batch: int = 0, on_batch: OnBatch | None = None
                           ) -> list[list[RowPlan]]:
        plans = []
        for number, group in enumerate(groups, start=first_batch):
            request = roster.upsert_request(group)
            request.validate_only = validate_only
            if not validate_only:
                request.request_id = f"{job_id}:batch:{number}"
            response = await self.accounts.BatchUpsertRoster(request, timeout=300)
            plans.append(roster.row_plans(group, response))
            if on_batch is not None:
                await on_batch(len(group))
        return plans

    def _groups(self, kind: str, rows: Sequence[SheetRow]) -> tuple[list[list[SheetRow]], list[RowPlan]]:
        """Batches of rows to send, and the plans of rows that are not sent (skipped, or broken in the file)."""
        sendable = [row for row in rows if not row.held]
        held = [merge(row, None) for row in rows if row.held]
        if kind in ROSTER_KINDS:
            size = self.batch_rows
            return [sendable[i:i + size] for i in range(0, len(sendable), size)], held
        return batches(sendable, self.batch_rows), held

    async def _plan(self, kind: str, groups: Sequence[Sequence[SheetRow]], **kw: Any) -> list[list[RowPlan]]:
        if kind in ROSTER_KINDS:
            return await self._plan_roster(kind, groups, **kw)
        return await self._plan_accounts(kind, groups, **kw)

    async def _load(self, job_id: str) -> ParsedFile:
        fresh = self.fresh.pop(job_id, None)
        if fresh is not None:
            return fresh
        data = await self.store.db.run(self.blobs.get, rows_key(job_id))
        return await asyncio.to_thread(parsed_from_json, data)

    # Trial run ------------------------------------------------------------------------------------------------

    async def trial_run(self, context: JobContext) -> None:
        self._act_as(context)
        job = context.job
        store = self.store
        parsed = await self._load(job.id)
        kind = str(parsed.kind)
        rows = sheet_rows(parsed)
        total = len(rows)
        groups, held = self._groups(kind, rows)
        plans: list[RowPlan] = list(held)
        done = len(held)
        reported = time.monotonic()

        async def progress(rows_done: int) -> None:
            nonlocal done, reported
            done += rows_done
            if time.monotonic() - reported < PROGRESS_SECONDS:
                return
            reported = time.monotonic()

            def save(done: int = done) -> None:
                with store.db.transaction() as session:
                    store.jobs.progress(session, job.id, context.owner, done=done, total=total)
            await store.db.run(save)

        for batch in await self._plan(kind, groups, validate_only=True, job_id=job.id, on_batch=progress):
            plans.extend(batch)
        del rows, groups  # the workbook is written from the file and the plans: memory goes to it
        plans.sort(key=lambda p: p.row_number)
        counts = count(plans, total)
        summary = summary_sentence(counts, applied=False, kind=kind)
        problems = [Problem(p.row_number, column, code, message, warning)
                    for p in plans for code, column, message, warning in p.problems]

        def planned() -> None:
            # The counts and problems are visible (GetImportJob, ListRowProblems) while the workbook is written.
            with store.db.transaction() as session:
                store.replace_problems(session, job.id, problems)
                store.jobs.progress(session, job.id, context.owner, done=total, total=total,
                                    summary=summary, checkpoint={"planned": True})
                store.jobs.set_attributes(session, job.id, {k: str(v) for k, v in counts.items()})
        await store.db.run(planned)
        problems.clear()  # stored: the memory goes to the workbook
        lines = [f"{counts['invitations']} row(s) without a password: those parents will be emailed an "
                 "invitation link."] if counts["invitations"] else []
        workbook = await asyncio.to_thread(annotated_workbook, parsed, plans, lines)
        await store.db.run(self.blobs.put, file_key(job.id, "annotated"), workbook)

        def finish() -> None:
            with store.db.transaction() as session:
                store.jobs.finish(session, job.id, context.owner, state=SUCCEEDED, summary=summary,
                                  result={"counts": counts, "file_warnings": _file_warnings(parsed),
                                          "files": ["annotated"]},
                                  attributes={k: str(v) for k, v in counts.items()})
        self.keep_for_upload(job.id, parsed)  # before the job ends: its upload may be started the moment it does
        await store.db.run(finish)
        if self.alerts:
            self.alerts.poke()

    # Upload ---------------------------------------------------------------------------------------------------

    async def upload(self, context: JobContext) -> None:
        self._act_as(context)
        job = context.job
        store = self.store
        try:
            parsed = await self._load(job.source_job_id)
        except KeyError:
            await self._fail(context, "The trial run's rows are no longer kept (trial runs expire after 7 days, "
                                      "and a file is applied only once). Send the file again for a new trial run.")
            return
        kind = str(parsed.kind)
        rows = sheet_rows(parsed)
        parsed = without_cells(parsed)
        groups, held = self._groups(kind, rows)
        first = int(job.checkpoint.get("batch", 0))
        if first == 0 and held:
            def record_held() -> None:
                rows_held = outcome_rows(job.id, held)
                with store.db.transaction() as session:
                    store.add_outcomes(session, rows_held)
                    store.jobs.progress(session, job.id, context.owner, done=len(held), total=len(rows),
                                        checkpoint={"batch": 0, "held": True})
            if not job.checkpoint.get("held"):
                await store.db.run(record_held)
        done = len(held) + sum(len(g) for g in groups[:first])
        # A run that starts from the beginning has every row's plan in hand at the end; a resumed one reads back
        # what the earlier run recorded.
        kept: list[RowPlan] | None = list(held) if first == 0 and not job.checkpoint.get("held") else None

        def apply(number: int) -> asyncio.Task[list[list[RowPlan]]]:
            return asyncio.ensure_future(self._plan(kind, [groups[number]], validate_only=False, job_id=job.id,
                                                    first_batch=number))

        # Two batches in flight: the accounts service has the next batch in hand the moment it commits one, while
        # this job records the last ones. Outcomes and the checkpoint are recorded in batch order: the first
        # batch's at once, then every PROGRESS_SECONDS or so (on SQLite each record is a write that the accounts
        # service's writes queue behind). A restart resumes after the last batch recorded: a batch the accounts
        # service applied but this job had not recorded is sent again with the same request id and answered from
        # the accounts service's record, never applied twice.
        window: deque[asyncio.Task[list[list[RowPlan]]]] = deque()
        following = first

        def fill() -> None:
            nonlocal following
            while len(window) < UPLOAD_IN_FLIGHT and following < len(groups) and not context.should_stop():
                window.append(apply(following))
                following += 1

        fill()
        unrecorded: list[RowPlan] = []
        recorded: float | None = None  # the first batch is recorded at once, so progress shows straight away
        try:
            for number in range(first, len(groups)):
                if not window:
                    return  # stopping: the lease is released and the job resumes after the last batch recorded
                [plans] = await window.popleft()
                fill()
                done += len(groups[number])
                unrecorded += plans
                if kept is not None:
                    kept += plans
                if window and recorded is not None and time.monotonic() - recorded < PROGRESS_SECONDS:
                    continue

                def commit(plans: list[RowPlan] = unrecorded, number: int = number, done: int = done) -> None:
                    stored = outcome_rows(job.id, plans)
                    with store.db.transaction() as session:
                        store.add_outcomes(session, stored)
                        store.jobs.progress(session, job.id, context.owner, done=done, total=len(rows),
                                            checkpoint={"batch": number + 1, "held": True})
                await store.db.run(commit)
                unrecorded, recorded = [], time.monotonic()
        finally:
            for task in window:  # only when something failed or stopped: nothing may be left running
                task.cancel()
            for task in window:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        groups.clear()  # only the rows are needed from here on: the memory goes to the log workbook
        await self._finish_upload(context, parsed, rows, kept)

    async def _finish_upload(self, context: JobContext, parsed: ParsedFile, rows: Sequence[SheetRow],
                             plans: list[RowPlan] | None) -> None:
        job = context.job
        total = len(rows)
        store = self.store
        if plans is None:
            plans = await store.db.run(self._recorded_plans, job.id)
        plans.sort(key=lambda p: p.row_number)
        counts = count(plans, total)
        summary = summary_sentence(counts, applied=True, kind=str(parsed.kind))
        problems = [Problem(p.row_number, column, code, message, warning)
                    for p in plans for code, column, message, warning in p.problems]

        def applied() -> None:
            # Every row is applied: the counts and problems are visible (GetImportJob, ListRowProblems) while the
            # log workbook is written; the job ends, and staff are alerted, with the workbook.
            with store.db.transaction() as session:
                store.replace_problems(session, job.id, problems)
                store.jobs.progress(session, job.id, context.owner, done=total, total=total, summary=summary)
                store.jobs.set_attributes(session, job.id, {k: str(v) for k, v in counts.items()})
        await store.db.run(applied)
        problems.clear()
        workbook = await asyncio.to_thread(log_workbook, rows, plans, [summary])
        await store.db.run(self.blobs.put, file_key(job.id, "log"), workbook)

        def finish() -> None:
            with store.db.transaction() as session:
                store.jobs.finish(session, job.id, context.owner, state=SUCCEEDED,
                                  summary=summary,
                                  result={"counts": counts, "file_warnings": _file_warnings(parsed),
                                          "files": ["log"]},
                                  attributes={k: str(v) for k, v in counts.items()})
        await store.db.run(finish)
        # The rows may hold passwords: they go as soon as the upload has committed.
        await store.db.run(self.blobs.delete, rows_key(job.source_job_id))
        if self.alerts:
            self.alerts.poke()

    def _recorded_plans(self, job_id: str) -> list[RowPlan]:
        with self.store.db.read() as session:
            return [RowPlan(o.row_number, o.action, o.username,
                            [(c, col, m, not c.startswith("E_")) for c, col, m in o.problems],
                            list(o.new_student_ids), o.invitation_queued)
                    for o in self.store.outcomes(session, job_id)]

    # Undo -----------------------------------------------------------------------------------------------------

    async def undo(self, context: JobContext) -> None:
        self._act_as(context)
        job = context.job
        store = self.store

        def load() -> list[Any]:
            with store.db.read() as session:
                return store.outcomes(session, job.source_job_id)
        outcomes = await store.db.run(load)
        todo = [o for o in outcomes if not o.undone and o.action in ("create", "update", "link")]
        created = {o.username.lower(): o for o in todo if o.action == "create"}
        linked = [o for o in todo if o.action != "create" and o.new_student_ids]
        request = accounts_pb2.RevertAccountChangesRequest(
            created_usernames=[o.username for o in created.values()],
            added_links=[accounts_pb2.AccountLinks(username=o.username, student_ids=list(o.new_student_ids))
                         for o in linked],
            request_id=f"{job.id}:revert")
        answer = await self.accounts.RevertAccountChanges(request, timeout=300)
        removed = list(answer.removed_usernames)
        unlinked = answer.links_removed
        kept = [(created[k.username.lower()].row_number if k.username.lower() in created else 0, k.username,
                 k.reason) for k in answer.kept]
        kept_names = {k.username.lower() for k in answer.kept}
        done_ids = [o.id for o in todo if o.username.lower() not in kept_names]
        summary = (f"{len(removed)} account{'s' if len(removed) != 1 else ''} removed, "
                   f"{unlinked} student link{'s' if unlinked != 1 else ''} removed")
        if kept:
            summary += f", {len(kept)} account{'s' if len(kept) != 1 else ''} kept"

        def finish() -> None:
            with store.db.transaction() as session:
                store.mark_undone(session, done_ids, utcnow())
                store.replace_problems(session, job.id, [
                    Problem(row, "LOGONID", "W_NOT_UNDONE", f"{username}: {reason}", True)
                    for row, username, reason in kept])
                store.jobs.finish(session, job.id, context.owner, state=SUCCEEDED, summary=summary,
                                  result={"removed": removed, "unlinked": unlinked,
                                          "kept": [list(k) for k in kept]},
                                  attributes={"removed": str(len(removed)), "unlinked": str(unlinked),
                                              "kept": str(len(kept))})
        await store.db.run(finish)
        if self.alerts:
            self.alerts.poke()

    async def _fail(self, context: JobContext, message: str) -> None:
        def fail() -> None:
            with self.store.db.transaction() as session:
                self.store.jobs.finish(session, context.job.id, context.owner, state=FAILED, summary=message,
                                       error_code=9, error_message=message)
        await self.store.db.run(fail)
        if self.alerts:
            self.alerts.poke()


def _file_warnings(parsed: ParsedFile) -> list[str]:
    return [w.message for w in parsed.file_warnings] + list(parsed.notes)


def undo_deadline_passed(ended_at: Any) -> bool:
    return ended_at is None or utcnow() - ended_at > timedelta(days=UNDO_DAYS)
