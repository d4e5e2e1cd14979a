"""Long work of the accounts service (bulk resets, usage reports, generation) as jobs (plumbing.jobs).

Each capability registers its job kinds here: a handler that does the work and commits its progress, and a
composer of the final message staff get in Slack. `start` creates a job from a gRPC call; the runner claims it
(several replicas share the work) and the alert relay hands its final message to notify once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from plumbing.blobs import BlobStore
from plumbing.config import Settings
from plumbing.context import current_actor
from plumbing.db import Database
from plumbing.errors import NotFound
from plumbing.jobs import AlertContent, ComposeAlert, Handler, JobAlertRelay, JobRecord, JobRunner, JobStore
from services.accounts.models import accounts_jobs


def job_file_key(job_id: str, name: str) -> str:
    return f"accounts/{job_id}/{name}.xlsx"


@dataclass
class AccountJobs:
    db: Database
    blobs: BlobStore
    settings: Settings
    store: JobStore = field(init=False)
    handlers: dict[str, Handler] = field(default_factory=dict)
    composers: dict[str, ComposeAlert] = field(default_factory=dict)
    runner: JobRunner | None = None
    alerts: JobAlertRelay | None = None

    def __post_init__(self) -> None:
        self.store = JobStore(self.db, accounts_jobs, "acc", self.settings.job_lease_seconds)

    def register(self, kind: str, handler: Handler, compose: ComposeAlert) -> None:
        if kind in self.handlers:
            raise ValueError(f"job kind {kind!r} registered twice")
        self.handlers[kind] = handler
        self.composers[kind] = compose

    def build(self) -> tuple[JobRunner, JobAlertRelay]:
        """The runner and the alert relay, once every kind is registered."""
        self.runner = JobRunner(self.store, dict(self.handlers))
        self.alerts = JobAlertRelay(self.store, self.settings, self._compose)
        return self.runner, self.alerts

    async def _compose(self, job: JobRecord) -> AlertContent | None:
        compose = self.composers.get(job.kind)
        return await compose(job) if compose is not None else None

    async def start(self, kind: str, payload: Mapping[str, Any], *, anchor: Mapping[str, str] | None = None,
                    request_id: str | None = None, total: int = 0) -> JobRecord:
        """Create a job for the acting staff member (a retried request id returns the job already created)."""
        def create() -> JobRecord:
            with self.db.transaction() as session:
                record, _new = self.store.create(session, kind, payload, actor=current_actor(), anchor=anchor,
                                                 request_id=request_id, total=total)
                return record
        record = await self.db.run(create)
        if self.runner is not None:
            self.runner.poke()
        return record

    def poke_alerts(self) -> None:
        if self.alerts is not None:
            self.alerts.poke()

    async def get(self, job_id: str) -> JobRecord:
        def read() -> JobRecord | None:
            with self.db.read() as session:
                return self.store.get(session, job_id)
        record = await self.db.run(read)
        if record is None:
            raise NotFound(f"There is no accounts job {job_id!r}. `/portal jobs` lists the recent ones.")
        return record

    async def recent(self, *, active_only: bool, limit: int, before: str | None) -> list[JobRecord]:
        def read() -> list[JobRecord]:
            with self.db.read() as session:
                return self.store.recent(session, active_only=active_only, limit=limit, before=before)
        return await self.db.run(read)

    async def file(self, job_id: str, name: str) -> tuple[str, bytes]:
        record = await self.get(job_id)
        files = record.result.get("files", [])
        if name not in files:
            raise NotFound(f"Job {job_id} has no {name!r} file; it has: {', '.join(files) or 'none'}.")
        data = await self.db.run(self.blobs.get, job_file_key(job_id, name))
        return f"{record.kind.replace('_', '-')}-{job_id}-{name}.xlsx", data
