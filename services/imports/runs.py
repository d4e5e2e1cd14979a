"""The imports service's domain calls: start trial runs, uploads and undos as jobs, and read them back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from plumbing.blobs import BlobStore
from plumbing.context import current_actor
from plumbing.db import utcnow
from plumbing.errors import FailedPrecondition, InvalidArgument, NotFound
from plumbing.jobs import ENDED, FAILED, SUCCEEDED, JobRecord, JobRunner, new_job_id
from portal.accounts.v1 import accounts_pb2
from services.imports.handlers import UNDO_DAYS, file_key, rows_key
from services.imports.reading import (
    FileRefused,
    Limits,
    ParsedFile,
    read_upload,
    row_count,
    table_to_json,
    template_workbook,
)
from services.imports.store import ImportsStore, Problem

TRIAL_RUN_DAYS = 7
FIRST_PROBLEMS = 20
ROSTER_PAGE = 1000


def describe_selector(selector: Any) -> str:
    """The selection in staff's words, e.g. "group 7A" (shown in the template's Read me sheet)."""
    which = selector.WhichOneof("kind")
    if which in (None, "all"):
        return "all students"
    if which == "usernames":
        return "accounts " + ", ".join(selector.usernames.usernames)
    value = getattr(selector, which)
    return {"school": "school", "group": "group", "grad_year": "graduation year",
            "last_name_prefix": "last name beginning with"}[which] + f" {value}"


@dataclass
class JobView:
    record: JobRecord
    first_problems: list[Problem] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


@dataclass
class ImportsDomain:
    store: ImportsStore
    blobs: BlobStore
    accounts: Any  # AccountsServiceStub
    limits: Limits
    runner: JobRunner | None = None
    # Hands a file just read to this process's job handlers (Handlers.keep_fresh), sparing them a second read.
    keep_fresh: Callable[[str, ParsedFile], None] | None = None

    # Reading --------------------------------------------------------------------------------------------------

    async def job_for_request(self, request_id: str) -> JobRecord | None:
        def find() -> JobRecord | None:
            from sqlalchemy import select

            from services.imports.models import import_jobs

            with self.store.db.read() as session:
                row = session.execute(select(import_jobs.c.id).where(import_jobs.c.request_id == request_id)).first()
                return self.store.jobs.get(session, row.id) if row else None
        return await self.store.db.run(find)

    async def _record(self, job_id: str) -> JobRecord:
        def get() -> JobRecord | None:
            with self.store.db.read() as session:
                return self.store.jobs.get(session, job_id)
        record = await self.store.db.run(get)
        if record is None:
            raise NotFound(f"There is no import job {job_id!r}. `/portal jobs` lists the recent ones.")
        return record

    async def job_view(self, job_id: str) -> JobView:
        record = await self._record(job_id)

        def problems() -> list[Problem]:
            with self.store.db.read() as session:
                return self.store.problems_page(session, job_id, 0, FIRST_PROBLEMS)
        return JobView(record, await self.store.db.run(problems), list(record.result.get("files", [])))

    async def recent_jobs(self, *, active_only: bool, limit: int, before: str | None) -> list[JobView]:
        def recent() -> list[JobRecord]:
            with self.store.db.read() as session:
                return self.store.jobs.recent(session, active_only=active_only, limit=limit, before=before)
        return [JobView(r, [], list(r.result.get("files", []))) for r in await self.store.db.run(recent)]

    async def problems(self, job_id: str, offset: int, limit: int) -> list[Problem]:
        await self._record(job_id)

        def page() -> list[Problem]:
            with self.store.db.read() as session:
                return self.store.problems_page(session, job_id, offset, limit)
        return await self.store.db.run(page)

    async def job_file(self, job_id: str, name: str) -> tuple[str, bytes]:
        record = await self._record(job_id)
        if name not in record.result.get("files", []):
            raise NotFound(f"Job {job_id} has no {name!r} workbook; it has: "
                           f"{', '.join(record.result.get('files', [])) or 'none'}.")
        data = await self.store.db.run(self.blobs.get, file_key(job_id, name))
        stem = record.payload.get("filename", "import").rsplit(".", 1)[0] or "import"
        return f"{stem}-{name}.xlsx", data

    async def template(self, selector: Any, school_name: str) -> tuple[str, bytes]:
        students: list[accounts_pb2.Student] = []
        token = ""
        while True:
            page = await self.accounts.SearchRoster(accounts_pb2.SearchRosterRequest(
                selector=selector, include_contacts=True, page_size=ROSTER_PAGE, page_token=token), timeout=120)
            students.extend(page.students)
            token = page.next_page_token
            if not token:
                break
        if not students:
            raise FailedPrecondition("No students match that selection. Check the name, or import the roster "
                                     "first (drop a roster file into the chat).")
        data = await asyncio.to_thread(template_workbook, students, describe_selector(selector), school_name)
        return f"parent-accounts-template-{utcnow().strftime('%Y%m%d')}.xlsx", data

    # Starting jobs --------------------------------------------------------------------------------------------

    def _poke(self) -> None:
        if self.runner is not None:
            self.runner.poke()

    async def start_trial_run(self, *, filename: str, data: bytes, anchor: dict[str, str], request_id: str | None,
                              previous_job_id: str) -> JobRecord:
        try:
            parsed = await read_upload(data, filename, self.limits)
        except FileRefused as refused:
            raise InvalidArgument(refused.message, reason=refused.code) from None
        job_id = new_job_id("imp")
        await self.store.db.run(self.blobs.put, rows_key(job_id), table_to_json(parsed.table))
        total = row_count(parsed)
        payload = {"filename": filename, "kind": str(parsed.kind), "previous_job_id": previous_job_id}

        def create() -> JobRecord:
            with self.store.db.transaction() as session:
                record, _new = self.store.jobs.create(session, "trial_run", payload, actor=current_actor(),
                                                      anchor=anchor, request_id=request_id, total=total,
                                                      job_id=job_id)
                return record
        if self.keep_fresh is not None:
            self.keep_fresh(job_id, parsed)  # before the job exists, so the runner finds it however soon it starts
        try:
            record = await self.store.db.run(create)
        except IntegrityError:
            # Another call with the same request id (a file shared twice) won the race: answer with its job.
            await self.store.db.run(self.blobs.delete, rows_key(job_id))
            existing = await self.job_for_request(request_id or "")
            if existing is None:
                raise
            return existing
        if record.id != job_id:
            await self.store.db.run(self.blobs.delete, rows_key(job_id))
        self._poke()
        return record

    async def start_upload(self, trial_id: str, request_id: str | None, anchor: dict[str, str]) -> JobRecord:
        trial = await self._record(trial_id)
        if trial.kind != "trial_run":
            raise FailedPrecondition(f"{trial_id} is an {trial.kind.replace('_', ' ')}, not a trial run: upload "
                                     "applies a trial run.")
        if trial.state not in ENDED:
            raise FailedPrecondition("The trial run is still running: wait for its results, then upload.")
        if trial.state != SUCCEEDED:
            raise FailedPrecondition("That trial run did not finish, so there is nothing to upload. Send the "
                                     "file again.")
        if utcnow() - trial.created_at > timedelta(days=TRIAL_RUN_DAYS):
            raise FailedPrecondition(f"That trial run is more than {TRIAL_RUN_DAYS} days old and has expired. "
                                     "Send the file again for a fresh trial run.")
        return await self._start_once("upload", trial, request_id, anchor)

    async def start_undo(self, upload_id: str, request_id: str | None, anchor: dict[str, str]) -> JobRecord:
        upload = await self._record(upload_id)
        if upload.kind != "upload":
            raise FailedPrecondition(f"{upload_id} is not an upload; only an upload can be undone.")
        if upload.state != SUCCEEDED or upload.ended_at is None:
            raise FailedPrecondition("That upload has not finished; undo applies to finished uploads.")
        if utcnow() - upload.ended_at > timedelta(days=UNDO_DAYS):
            raise FailedPrecondition(f"That upload finished more than {UNDO_DAYS} days ago; it can no longer be "
                                     "undone. Remove accounts one by one with `/portal delete`.")
        return await self._start_once("undo", upload, request_id, anchor)

    async def _start_once(self, kind: str, source: JobRecord, request_id: str | None,
                          anchor: dict[str, str]) -> JobRecord:
        """One live job of this kind per source: a double click or a retry gets the job already started."""
        def create() -> JobRecord:
            from sqlalchemy import select

            from services.imports.models import import_jobs

            with self.store.db.transaction() as session:
                existing = session.execute(
                    select(import_jobs.c.id).where(import_jobs.c.source_job_id == source.id,
                                                   import_jobs.c.kind == kind, import_jobs.c.state != FAILED)
                ).first()
                if existing is not None:
                    found = self.store.jobs.get(session, existing.id)
                    assert found is not None
                    return found
                record, _new = self.store.jobs.create(
                    session, kind, {"filename": source.payload.get("filename", ""),
                                    "kind": source.payload.get("kind", "")},
                    actor=current_actor(), anchor=anchor or source.anchor, request_id=request_id,
                    source_job_id=source.id, total=source.total)
                return record
        try:
            record = await self.store.db.run(create)
        except IntegrityError:
            existing = await self.job_for_request(request_id or "")
            if existing is None:
                raise
            return existing
        self._poke()
        return record
