"""Wires the imports service into the shared server bootstrap: servicer, job runner, alert relay, expiry sweep."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from plumbing.blobs import open_blob_store
from plumbing.clients import open_channel
from plumbing.db import utcnow
from plumbing.jobs import JobAlertRelay, JobRunner
from plumbing.server import Runtime, ServiceSpec
from plumbing.waiting import wait_for_either
from portal.accounts.v1 import accounts_pb2_grpc
from portal.imports.v1 import imports_pb2_grpc
from services.imports.alerts import compose
from services.imports.files.worker import prepare_workers
from services.imports.handlers import Handlers, rows_key
from services.imports.reading import limits_from_settings
from services.imports.runs import TRIAL_RUN_DAYS, ImportsDomain
from services.imports.servicer import ImportsServicer
from services.imports.store import ImportsStore

log = logging.getLogger("portal.imports")
SWEEP_SECONDS = 3600.0


async def setup(runtime: Runtime) -> None:
    settings = runtime.settings
    store = ImportsStore(runtime.db, settings.job_lease_seconds)
    blobs = open_blob_store(settings.data_dir, settings.blob_url)
    channel = open_channel(settings, "accounts")
    accounts = accounts_pb2_grpc.AccountsServiceStub(channel)
    alerts = JobAlertRelay(store.jobs, settings, compose(store, blobs))
    handlers = Handlers(store, blobs, accounts, alerts, batch_rows=settings.import_batch_rows)
    runner = JobRunner(store.jobs, {"trial_run": handlers.trial_run, "upload": handlers.upload,
                                    "undo": handlers.undo})
    limits = limits_from_settings(settings)
    domain = ImportsDomain(store, blobs, accounts, limits, runner, handlers.keep_fresh)
    # The file readers' fork server starts with the service, not with the first file.
    await asyncio.to_thread(prepare_workers, limits)
    imports_pb2_grpc.add_ImportsServiceServicer_to_server(ImportsServicer(domain, settings.school_name), runtime.server)

    async def run_jobs() -> None:
        await runner.run(runtime.stopping)

    async def relay_alerts() -> None:
        await alerts.run(runtime.stopping)

    async def sweep_expired() -> None:
        """Trial-run rows may hold passwords: they are deleted once a trial run is 7 days old."""
        wake = asyncio.Event()
        while not runtime.stopping.is_set():
            def expired() -> list[str]:
                with store.db.read() as session:
                    return store.expired_trial_runs(session, utcnow() - timedelta(days=TRIAL_RUN_DAYS))
            for job_id in await store.db.run(expired):
                await store.db.run(blobs.delete, rows_key(job_id))
            await wait_for_either(runtime.stopping, wake, SWEEP_SECONDS)

    async def close_channel() -> None:
        await channel.close()

    runtime.background += [run_jobs, relay_alerts, sweep_expired]
    runtime.on_stop.append(close_channel)


SPEC = ServiceSpec(name="imports", full_name="portal.imports.v1.ImportsService", setup=setup)
