"""Auto-generation on roster sync (seed 003; PORTAL_AUTOGENERATE=all|primary, off by default).

Every roster change that may give a guardian an account (a new or changed relationship, a changed contact) is noted
in the same transaction as the change. An import arrives in many batches, so once the roster has been quiet for
PORTAL_AUTOGENERATE_QUIET_SECONDS, one `generate` job claims everything noted and generates for those guardians by
the same rules as a plan run from Slack (invitations included). Its alert goes to PORTAL_ALERT_CHANNEL with the
counts (it has no Slack thread), and only when it did something.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from plumbing.config import Settings
from plumbing.context import Actor
from plumbing.db import Database
from plumbing.jobs import JobRecord, new_job_id
from services.accounts.domain import Clock, Contact, Relationship
from services.accounts.generation import RUN_KIND
from services.accounts.generation_store import GenerationStore
from services.accounts.jobs import AccountJobs

log = logging.getLogger("portal.accounts.autogenerate")
AUTOGENERATE_ACTOR = Actor("portal-autogenerate", "auto-generation")
POLL_SECONDS = 1.0


class AutoGeneration:
    def __init__(self, db: Database, store: GenerationStore, jobs: AccountJobs, settings: Settings,
                 clock: Clock) -> None:
        self.db = db
        self.store = store
        self.jobs = jobs
        self.settings = settings
        self.clock = clock

    @property
    def on(self) -> bool:
        return self.settings.autogenerate != "off"

    def note(self, session: Session, now: datetime, contacts: tuple[Sequence[Contact], Sequence[Contact]],
             relationships: tuple[Sequence[Relationship], Sequence[Relationship]]) -> None:
        """Called by the roster upsert in its transaction with its (new, changed) contacts and relationships."""
        if not self.on:
            return
        _new_contacts, changed_contacts = contacts
        new_links, changed_links = relationships
        pairs = [(r.student_id, r.contact_id) for r in (*new_links, *changed_links)]
        pairs += [("", c.id) for c in changed_contacts]
        if pairs:
            self.store.note_pending(session, pairs, now)

    def start_if_quiet(self) -> JobRecord | None:
        """One job for everything noted, once the roster has been quiet long enough (replicas race safely: the
        claim takes only unclaimed notes, and a claim of nothing starts nothing)."""
        quiet_since = self.clock() - timedelta(seconds=self.settings.autogenerate_quiet_seconds)
        with self.db.transaction() as session:
            up_to = self.store.pending_ready(session, quiet_since)
            if up_to is None:
                return None
            job_id = new_job_id(self.jobs.store.id_prefix)
            if not self.store.claim_pending(session, up_to, job_id):
                return None
            payload = {"autogenerate": True, "who": self.settings.autogenerate,
                       "scheme": self.settings.username_scheme, "send_invitations": True,
                       "title": "guardians new to the roster"}
            record, _new = self.jobs.store.create(session, RUN_KIND, payload, actor=AUTOGENERATE_ACTOR,
                                                  job_id=job_id)
            return record

    async def run(self, stopping: asyncio.Event) -> None:
        if not self.on:
            return
        poll = min(POLL_SECONDS, max(self.settings.autogenerate_quiet_seconds / 4, 0.1))
        while not stopping.is_set():
            try:
                started = await self.db.run(self.start_if_quiet)
                if started is not None:
                    log.info("auto-generation %s started after roster changes", started.id)
                    if self.jobs.runner is not None:
                        self.jobs.runner.poke()
            except Exception:
                log.exception("auto-generation could not start; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), poll)
