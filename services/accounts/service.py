"""Wires the accounts service into the shared server bootstrap: the store, the password-hashing process pool, the
operations, the servicer, and the outbox relay that hands invitation and reset emails to notify."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from plumbing.blobs import open_blob_store
from plumbing.db import Database, utcnow
from plumbing.outbox import OutboxRelay
from plumbing.server import Runtime, ServiceSpec
from portal.accounts.v1 import accounts_pb2_grpc
from services.accounts.care_setup import wire_care
from services.accounts.directory import Directory
from services.accounts.domain import Clock
from services.accounts.generation_setup import wire_generation
from services.accounts.hashing import OWASP, HashParams, PasswordHashing
from services.accounts.jobs import AccountJobs
from services.accounts.models import accounts_outbox
from services.accounts.mutations import Mutations
from services.accounts.plan_workers import PlanWorkers
from services.accounts.reset_job import BulkResetJob
from services.accounts.resets import Resets
from services.accounts.roster import Roster
from services.accounts.self_service import SelfService
from services.accounts.servicer import AccountsServicer
from services.accounts.setpassword import LinkSettings, SetPasswordLinks
from services.accounts.signin import SignIns
from services.accounts.store import AccountStore
from services.accounts.throttling import ThrottleRules
from services.accounts.usage_job import UsageReportJob
from services.accounts.web.server import make_app as make_web_app
from services.accounts.web.server import serve as serve_web

# Retried calls arrive within minutes (an import may retry an upload days later); counters matter for minutes.
REPLIES_KEPT = timedelta(days=30)
COUNTERS_KEPT = timedelta(days=1)
HOUSEKEEPING_SECONDS = 3600.0
log = logging.getLogger("portal.accounts")


@dataclass(frozen=True)
class AccountsOptions:
    """What a deployment or a test may choose. Hash workers: the argument, else PORTAL_HASH_WORKERS, else the
    number of CPUs (PasswordHashing's default)."""

    hash_workers: int | None = None
    hash_params: HashParams = OWASP
    clock: Clock = utcnow
    throttle: ThrottleRules = field(default_factory=ThrottleRules)


def housekeeping(db: Database, store: AccountStore, clock: Clock) -> int:
    """One pass: forget old answers to request ids and idle throttle counters."""
    now = clock()
    with db.transaction() as session:
        return store.prune(session, now - REPLIES_KEPT, now, now - COUNTERS_KEPT)


def make_spec(options: AccountsOptions | None = None) -> ServiceSpec:
    chosen = options or AccountsOptions()

    async def setup(runtime: Runtime) -> None:
        settings = runtime.settings
        store = AccountStore()
        hashing = PasswordHashing(chosen.hash_workers or settings.hash_workers, chosen.hash_params)

        async def stop_pool() -> None:
            await asyncio.to_thread(hashing.shutdown)

        runtime.on_stop.append(stop_pool)
        await hashing.start()

        relay = OutboxRelay(runtime.db, accounts_outbox, settings)

        async def outbox_relay() -> None:
            await relay.run(runtime.stopping)

        runtime.background.append(outbox_relay)

        async def keep_tables_small() -> None:
            while not runtime.stopping.is_set():
                try:
                    gone = await runtime.db.run(housekeeping, runtime.db, store, chosen.clock)
                    if gone:
                        log.info("housekeeping removed %d old idempotency records and throttle counters", gone)
                except Exception:
                    log.exception("housekeeping failed; trying again later")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(runtime.stopping.wait(), HOUSEKEEPING_SECONDS)

        runtime.background.append(keep_tables_small)
        mutations = Mutations(runtime.db, store, chosen.clock)
        jobs = AccountJobs(runtime.db, open_blob_store(settings.data_dir, settings.blob_url), settings)
        links = LinkSettings(settings.public_url, settings.school_name, settings.web_secret)
        directory = Directory(runtime.db, store, mutations, hashing, links, chosen.clock, relay.poke)
        sign_ins = SignIns(runtime.db, store, mutations, hashing, chosen.clock, settings.web_secret,
                           settings.school_name, chosen.throttle)
        set_password = SetPasswordLinks(runtime.db, store, mutations, hashing, links, chosen.clock, relay.poke)
        # Resets (one account or a bulk job) and usage reports; their job kinds are registered here.
        resets = Resets(runtime.db, store, mutations, hashing, links, chosen.clock, relay.poke)
        bulk_reset = BulkResetJob(resets, jobs, settings)
        usage_report = UsageReportJob(runtime.db, store, jobs, settings)
        bulk_reset.register()
        usage_report.register()
        # Generation from the roster, invitations and auto-generation; their job kinds and loops are registered here.
        generation = wire_generation(runtime, mutations, jobs, links, chosen.clock, relay.poke)
        # Account care: policies, permissions, contact drift (also told of roster changes), clashes, contacts, logons.
        care = wire_care(runtime, store, mutations, chosen.clock, relay.poke)
        roster = Roster(runtime.db, store, mutations, after_save=generation.autogenerate.note, drift=care.drift)
        servicer = AccountsServicer(directory, roster, sign_ins, set_password, jobs,
                                    (resets, bulk_reset, usage_report), generation.parts, care,
                                    PlanWorkers(hashing, runtime.db.url))
        accounts_pb2_grpc.add_AccountsServiceServicer_to_server(servicer, runtime.server)

        # The parents' web pages on PORTAL_WEB_PORT, over the same operations; they stop with the service.
        self_service = SelfService(runtime.db, set_password, sign_ins, directory, chosen.clock,
                                   timedelta(minutes=settings.web_session_minutes))
        web_app = make_web_app(self_service, set_password, settings)

        async def parents_pages() -> None:
            await serve_web(web_app, self_service, settings.web_port, runtime.stopping)

        runtime.background.append(parents_pages)

        # Job kinds are registered on `jobs` above by the capabilities that own them; then the runner starts.
        runner, alerts = jobs.build()

        async def run_jobs() -> None:
            await runner.run(runtime.stopping)

        async def relay_job_alerts() -> None:
            await alerts.run(runtime.stopping)

        runtime.background += [run_jobs, relay_job_alerts]

    return ServiceSpec(name="accounts", full_name="portal.accounts.v1.AccountsService", setup=setup)


SPEC = make_spec()
