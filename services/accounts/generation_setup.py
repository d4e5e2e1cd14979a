"""Wires generation, invitations and auto-generation into the accounts service: their job kinds, and their
background loops (auto-generation after roster changes, invitation reminders, expiry of old plans)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from plumbing.server import Runtime
from services.accounts.autogenerate import AutoGeneration
from services.accounts.domain import Clock
from services.accounts.generation import Generation
from services.accounts.generation_store import GenerationStore
from services.accounts.invitations import Invitations
from services.accounts.jobs import AccountJobs
from services.accounts.mutations import Mutations
from services.accounts.servicer_generation import GenerationParts
from services.accounts.setpassword import LinkSettings

log = logging.getLogger("portal.accounts.generation")
PLAN_EXPIRY_SECONDS = 3600.0


@dataclass(frozen=True)
class GenerationWiring:
    generation: Generation
    invitations: Invitations
    autogenerate: AutoGeneration

    @property
    def parts(self) -> GenerationParts:
        return self.generation, self.invitations


def wire_generation(runtime: Runtime, mutations: Mutations, jobs: AccountJobs, links: LinkSettings, clock: Clock,
                    emails_queued: Callable[[], None]) -> GenerationWiring:
    """Build the pieces and register their job kinds (before `jobs.build()`) and background loops."""
    settings, db = runtime.settings, runtime.db
    store = GenerationStore()
    generation = Generation(db, store, mutations, jobs, links, settings, clock, emails_queued)
    invitations = Invitations(db, store, mutations, jobs, links, settings, clock, emails_queued)
    auto = AutoGeneration(db, store, jobs, settings, clock)
    generation.register()
    invitations.register()

    async def autogenerate() -> None:
        await auto.run(runtime.stopping)

    async def reminders() -> None:
        await invitations.remind(runtime.stopping)

    async def expire_plans() -> None:
        while not runtime.stopping.is_set():
            try:
                gone = await db.run(generation.expire_plans)
                if gone:
                    log.info("deleted the files of %d expired generation plans", gone)
            except Exception:
                log.exception("expiring generation plans failed; trying again later")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(runtime.stopping.wait(), PLAN_EXPIRY_SECONDS)

    runtime.background += [autogenerate, reminders, expire_plans]
    return GenerationWiring(generation, invitations, auto)
