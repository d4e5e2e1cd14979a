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
from services.accounts.directory import Directory
from services.accounts.domain import Clock
from services.accounts.hashing import OWASP, HashParams, PasswordHashing
from services.accounts.jobs import AccountJobs
from services.accounts.models import accounts_outbox
from services.accounts.mutations import Mutations
from services.accounts.roster import Roster
from services.accounts.servicer import AccountsServicer
from services.accounts.setpassword import LinkSettings, SetPasswordLinks
from services.accounts.signin import SignIns
from services.accounts.store import AccountStore
from services.accounts.throttling import ThrottleRules

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
        servicer = AccountsServicer(
            Directory(runtime.db, store, mutations, hashing, links, chosen.clock, relay.poke),
            Roster(runtime.db, store, mutations),
            SignIns(runtime.db, store, mutations, hashing, chosen.clock, settings.web_secret, settings.school_name,
                    chosen.throttle),
            SetPasswordLinks(runtime.db, store, mutations, hashing, links, chosen.clock, relay.poke),
            jobs,
        )
        accounts_pb2_grpc.add_AccountsServiceServicer_to_server(servicer, runtime.server)

        # Job kinds are registered on `jobs` above by the capabilities that own them; then the runner starts.
        runner, alerts = jobs.build()

        async def run_jobs() -> None:
            await runner.run(runtime.stopping)

        async def relay_job_alerts() -> None:
            await alerts.run(runtime.stopping)

        runtime.background += [run_jobs, relay_job_alerts]

    return ServiceSpec(name="accounts", full_name="portal.accounts.v1.AccountsService", setup=setup)


SPEC = make_spec()
