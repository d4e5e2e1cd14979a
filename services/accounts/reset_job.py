"""The bulk reset as a job (kind "bulk_reset"). The selection is walked in username order, a chunk at a time: each
chunk's resets (`Resets.apply`), its record rows and the job's progress commit in one transaction, so a worker that
dies mid-way is followed by another from the next chunk, and no account is reset twice. Then the job waits (up to
PORTAL_RESET_DELIVERY_WAIT_SECONDS) for notify to deliver the emails, and ends with a workbook of who was reset and
whose email failed, which the task alert carries to the requester."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta
from typing import Any

import grpc

from plumbing.clients import open_channel
from plumbing.config import Settings
from plumbing.db import utcnow
from plumbing.jobs import FAILED, SUCCEEDED, AlertContent, AlertFile, JobContext, JobRecord
from portal.notify.v1 import notify_pb2, notify_pb2_grpc
from services.accounts.domain import Call
from services.accounts.jobs import AccountJobs, job_file_key
from services.accounts.mutations import Audit
from services.accounts.reset_rules import Decision, Outcome, ResetSpec
from services.accounts.reset_workbook import Delivery, reset_workbook
from services.accounts.resets import Resets, check_spec

log = logging.getLogger("portal.accounts.resets")
KIND = "bulk_reset"
CHUNK = 500
DELIVERY_POLL_SECONDS = 2.0
LIST_PAGE = 500
_STATES = {notify_pb2.DELIVERY_STATE_SENT: "sent", notify_pb2.DELIVERY_STATE_FAILED: "failed"}


def _sentence(counts: dict[str, int], password: bool) -> str:
    reset = sum(counts.get(k, 0) for k in ("invitation", "reset", "password"))
    what = "new passwords emailed" if password else "links emailed"
    parts = [f"{reset:,} account{'s' if reset != 1 else ''} reset ({what})"]
    if counts.get("two_factor"):
        parts.append(f"two-factor turned on for {counts['two_factor']:,}")
    parts.append(f"{counts.get('skipped', 0):,} skipped")
    if counts.get("failed"):
        parts.append(f"{counts['failed']:,} email{'s' if counts['failed'] != 1 else ''} failed")
    if counts.get("pending"):
        parts.append(f"{counts['pending']:,} not delivered yet")
    return ", ".join(parts)


class BulkResetJob:
    def __init__(self, resets: Resets, jobs: AccountJobs, settings: Settings) -> None:
        self.resets = resets
        self.jobs = jobs
        self.settings = settings
        self.db = resets.db

    def register(self) -> None:
        self.jobs.register(KIND, self.run, self.compose)

    async def start(self, spec: ResetSpec, anchor: dict[str, str], request_id: str, previewed: int) -> JobRecord:
        check_spec(spec)
        return await self.jobs.start(KIND, {"spec": spec.to_json(), "previewed": previewed}, anchor=anchor,
                                     request_id=request_id or None)

    # The work ---------------------------------------------------------------------------------------------------

    def _total(self, spec: ResetSpec) -> int:
        with self.db.read() as session:
            return self.resets.reset_store.count(session, spec.where) + len(self.resets.missing(session, spec))

    async def run(self, context: JobContext) -> None:
        job = context.job
        spec = ResetSpec.from_json(job.payload["spec"])
        checkpoint = dict(job.checkpoint)
        if checkpoint.get("phase", "reset") == "reset":
            if not await self._reset(context, spec, checkpoint):
                return
            checkpoint = {"phase": "delivery", "since": utcnow().isoformat(), "done": checkpoint.get("done", 0)}

            def enter_delivery() -> None:
                with self.db.transaction() as session:
                    context.store.progress(session, job.id, context.owner, done=checkpoint["done"],
                                           checkpoint=checkpoint, summary="Emails queued; waiting for delivery")
            await self.db.run(enter_delivery)
        deliveries = await self._wait_for_delivery(context, datetime.fromisoformat(checkpoint["since"]))
        if deliveries is None:
            return
        await self._finish(context, spec, deliveries)

    def _read_chunk(self, spec: ResetSpec, after: str | None, first: bool) -> tuple[list[Decision], int | None]:
        """The next chunk of decisions (the first also has the usernames that match no account, and the total)."""
        with self.db.read() as session:
            page = self.resets.decisions(session, spec, after, CHUNK)
            if first:
                return self.resets.missing(session, spec) + page, self._total(spec)
            return page, None

    def _write_chunk(self, context: JobContext, decisions: list[Decision], passwords: dict[str, tuple[str, str]],
                     total: int | None, checkpoint: dict[str, Any]) -> None:
        """One chunk's resets, its record rows, its audit events and the job's progress: one transaction."""
        job = context.job
        with self.db.transaction() as session:
            audit = Audit(Call(job.actor.id, job.actor.name, job.id), self.resets.clock())
            applied = self.resets.apply(session, audit, decisions, job.id, passwords)
            self.resets.reset_store.add_items(session, applied.items)
            self.resets.store.add_audit(session, audit.events)
            context.store.progress(session, job.id, context.owner, done=checkpoint["done"], total=total,
                                   checkpoint=checkpoint)

    async def _reset(self, context: JobContext, spec: ResetSpec, checkpoint: dict[str, Any]) -> bool:
        """Reset chunk after chunk from the checkpoint; False when told to stop before the end."""
        while not context.should_stop():
            after = checkpoint.get("after")
            decisions, total = await self.db.run(self._read_chunk, spec, after, "after" not in checkpoint)
            passwords = await self.resets.passwords_for(decisions)
            selected = [d for d in decisions if d.candidate.id]
            done = {"phase": "reset", "after": selected[-1].candidate.key if selected else after,
                    "done": checkpoint.get("done", 0) + len(decisions)}
            await self.db.run(self._write_chunk, context, decisions, passwords, total, done)
            if any(d.outcome != Outcome.SKIPPED for d in decisions):
                self.resets.emails_queued()
            checkpoint.update(done)
            if len(selected) < CHUNK:
                return True
        return False

    async def _wait_for_delivery(self, context: JobContext, since: datetime) -> dict[str, Delivery] | None:
        """What notify says of the job's emails once none is waiting, or when the wait is over (None: stop)."""
        job_id = context.job.id
        deadline = since + timedelta(seconds=self.settings.reset_delivery_wait_seconds)

        def expected() -> set[str]:
            with self.db.read() as session:
                return self.resets.reset_store.email_keys(session, job_id)

        keys = await self.db.run(expected)
        deliveries: dict[str, Delivery] = {}
        async with open_channel(self.settings, "notify") as channel:
            stub = notify_pb2_grpc.NotifyServiceStub(channel)
            while True:
                try:
                    deliveries = await _deliveries(stub, job_id)
                except grpc.RpcError as exc:
                    log.info("bulk reset %s: notify not answering (%s); waiting", job_id, exc.code().name)
                waiting = [k for k in keys if deliveries.get(k, Delivery("queued")).state == "queued"]
                if not waiting or utcnow() >= deadline:
                    return deliveries
                if context.should_stop():
                    return None
                await _pause(context.stopping, DELIVERY_POLL_SECONDS)

    async def _finish(self, context: JobContext, spec: ResetSpec, deliveries: dict[str, Delivery]) -> None:
        job = context.job

        def build() -> tuple[bytes, dict[str, int]]:
            with self.db.read() as session:
                counts = self.resets.reset_store.counts(session, job.id)
                items = _all_items(self.resets, session, job.id)
                data, tally = reset_workbook(items, deliveries)
            return data, {**counts, "failed": tally.failed, "pending": tally.pending}

        data, counts = await self.db.run(build)
        await self.db.run(self.jobs.blobs.put, job_file_key(job.id, "report"), data)
        summary = _sentence(counts, spec.send_password)

        def finish() -> None:
            with self.db.transaction() as session:
                context.store.finish(session, job.id, context.owner, state=SUCCEEDED, summary=summary,
                                     result={"files": ["report"], "counts": counts,
                                             "previewed": job.payload.get("previewed", 0)},
                                     attributes={k: str(v) for k, v in counts.items()})
        await self.db.run(finish)
        self.jobs.poke_alerts()

    # The final message ------------------------------------------------------------------------------------------

    async def compose(self, job: JobRecord) -> AlertContent:
        if job.state == FAILED:
            text = f"The bulk reset `{job.id}` failed: {job.error_message or job.summary}"
            return AlertContent(text, [section(f":x: {text}")])
        counts = job.result.get("counts", {})
        reset = sum(counts.get(k, 0) for k in ("invitation", "reset", "password"))
        text = f"Bulk reset finished: {job.summary}."
        lines = [f":white_check_mark: *Bulk reset finished* (`{job.id}`)", f"{job.summary}."]
        previewed = job.result.get("previewed", 0)
        if previewed and previewed != reset:
            lines.append(f"The preview showed {previewed:,} accounts; {reset:,} were reset (accounts changed in "
                         "between).")
        if counts.get("failed"):
            lines.append("The workbook lists whose email failed: check those addresses and reset them again.")
        files: tuple[AlertFile, ...] = ()
        try:
            data = await self.db.run(self.jobs.blobs.get, job_file_key(job.id, "report"))
            files = (AlertFile(f"bulk-reset-{job.id}.xlsx", data, "Bulk reset: who was reset"),)
        except KeyError:
            lines.append("(The workbook is no longer available.)")
        return AlertContent(text, [section("\n".join(lines))], files)


def section(text: str) -> dict[str, Any]:
    """A Block Kit section of Markdown text (cut to what Slack takes)."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}}


def _all_items(resets: Resets, session: Any, job_id: str) -> Any:
    after: str | None = None
    while True:
        page = resets.reset_store.items(session, job_id, after, 2000)
        yield from page
        if len(page) < 2000:
            return
        after = page[-1].username_key


async def _deliveries(stub: Any, job_id: str) -> dict[str, Delivery]:
    found: dict[str, Delivery] = {}
    token = ""
    while True:
        answer = await stub.ListMessages(notify_pb2.ListMessagesRequest(job_id=job_id, page_size=LIST_PAGE,
                                                                        page_token=token), timeout=10)
        for message in answer.messages:
            found[message.idempotency_key] = Delivery(_STATES.get(message.state, "queued"), message.last_error)
        token = answer.next_page_token
        if not token:
            return found


async def _pause(stopping: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
