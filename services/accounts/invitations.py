"""Invitations and their lifecycle: pending, delivered, bounced, failed, expired, accepted (or never sent).

A guardian's state comes from their latest invitation link (accounts: issued, used, expired; the outbox: handed to
notify or not) and from notify, which says what became of its email. Only the few emails not plainly delivered are
asked of notify (failed, queued or sending, by the invitation key prefix): every other email it holds was sent.
"Bounced" is a permanent SMTP failure at delivery (a 5xx reply or a refused address); "failed" is notify giving up
after retrying.

Resend (seed 003) issues a fresh link to every guardian in the selection who never signed in (the old link stops
working), as a job with progress; an optional reminder a few days before a link expires is off by default
(PORTAL_INVITE_REMINDER_DAYS).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import grpc
from google.protobuf import struct_pb2
from sqlalchemy.orm import Session

from plumbing.clients import open_channel
from plumbing.errors import FailedPrecondition, FieldViolation, InvalidArgument
from plumbing.jobs import FAILED, SUCCEEDED, AlertContent, JobContext, JobRecord
from portal.notify.v1 import notify_pb2, notify_pb2_grpc
from services.accounts import generation_rules as gr
from services.accounts import paging
from services.accounts.domain import Call, StudentSelector, TokenPurpose
from services.accounts.generation import Operations, check_selector, describe
from services.accounts.generation_store import INVITATION_KEY_PREFIX, InvitationRow
from services.accounts.mutations import Audit, account_target
from services.accounts.setpassword import LinkTarget, issue_links

log = logging.getLogger("portal.accounts.invitations")
RESEND_KIND = "resend_invitations"
CHUNK = 500
LIST_PAGE = 500
REMINDER_EVERY_SECONDS = 3600.0
# Notify's delivery states worth asking about (every other message it holds was sent).
_ASKED = {notify_pb2.DELIVERY_STATE_FAILED: "failed", notify_pb2.DELIVERY_STATE_QUEUED: "queued",
          notify_pb2.DELIVERY_STATE_SENDING: "sending"}


@dataclass(frozen=True)
class Invitation:
    row: InvitationRow
    state: str
    error: str = ""


@dataclass(frozen=True)
class InvitationPage:
    items: tuple[Invitation, ...]
    counts: dict[str, int]
    next_token: str
    total: int


@dataclass(frozen=True)
class ResendPreview:
    count: int
    counts: dict[str, int]
    sample: tuple[Invitation, ...]
    subject: str
    text: str


class Invitations(Operations):
    def register(self) -> None:
        self.jobs.register(RESEND_KIND, self.run_resend, self.compose_resend)

    # What notify says ---------------------------------------------------------------------------------------------

    async def _notify(self, call: Callable[[Any], Any]) -> Any:
        try:
            async with open_channel(self.settings, "notify") as channel:
                return await call(notify_pb2_grpc.NotifyServiceStub(channel))
        except grpc.RpcError as exc:
            # Not UNAVAILABLE: the accounts service answers; staff should read which service is missing.
            raise FailedPrecondition("The notify service is not answering, so where invitations stand is unknown: "
                                     "try again in a minute.", reason="NOTIFY_UNAVAILABLE") from exc

    async def deliveries(self) -> dict[str, tuple[str, str]]:
        """Invitation emails notify has not (yet) plainly delivered: key -> (state, last error)."""
        async def ask(stub: Any) -> dict[str, tuple[str, str]]:
            found: dict[str, tuple[str, str]] = {}
            for state, word in _ASKED.items():
                token = ""
                while True:
                    answer = await stub.ListMessages(notify_pb2.ListMessagesRequest(
                        idempotency_key_prefix=INVITATION_KEY_PREFIX, state=state, page_size=LIST_PAGE,
                        page_token=token), timeout=30)
                    found.update({m.idempotency_key: (word, m.last_error) for m in answer.messages})
                    token = answer.next_page_token
                    if not token:
                        break
            return found
        result: dict[str, tuple[str, str]] = await self._notify(ask)
        return result

    def _classified(self, rows: Sequence[InvitationRow], deliveries: dict[str, tuple[str, str]]) -> list[Invitation]:
        now = self.clock()
        found = []
        for row in rows:
            delivery, error = deliveries.get(row.email_key, ("sent" if row.handed_over else "", ""))
            state = gr.invitation_state(
                signed_in=row.signed_in, token_used=row.used, emailed=row.emailed,
                expired=row.expires_at is not None and row.expires_at <= now, handed_over=row.handed_over,
                delivery=delivery, last_error=error)
            found.append(Invitation(row, state, error if state in (gr.BOUNCED, gr.FAILED) else ""))
        return found

    async def _states(self, selector: StudentSelector | None, unaccepted_only: bool) -> list[Invitation]:
        if selector is not None:
            check_selector(selector)

        def read() -> list[InvitationRow]:
            with self.db.read() as session:
                return self.store.invitation_rows(session, selector, unaccepted_only)
        rows = await self.db.run(read)
        return self._classified(rows, await self.deliveries() if rows else {})

    # The lifecycle ----------------------------------------------------------------------------------------------

    async def lifecycle(self, selector: StudentSelector | None, state: str, page_size: int,
                        page_token: str) -> InvitationPage:
        if state and state not in gr.INVITATION_STATES:
            raise InvalidArgument(f"Unknown invitation state {state!r}.", [FieldViolation("state", "unknown")])
        size = paging.page_size(page_size)
        kind = paging.list_kind("invitations", (selector, state))
        position = paging.decode(kind, page_token)
        everyone = await self._states(selector, False)
        counts = dict(Counter(item.state for item in everyone))
        chosen = [item for item in everyone if not state or item.state == state]
        if position:
            chosen = [item for item in chosen if item.row.username.lower() > position[0]]
        page = chosen[:size]
        token = paging.encode(kind, page[-1].row.username.lower()) if len(chosen) > size else ""
        return InvitationPage(tuple(page), {s: counts.get(s, 0) for s in gr.INVITATION_STATES}, token,
                              sum(1 for item in everyone if not state or item.state == state))

    # Resend -----------------------------------------------------------------------------------------------------

    async def resend_preview(self, selector: StudentSelector | None, sample: int) -> ResendPreview:
        targets = await self._states(selector, True)
        counts = dict(Counter(item.state for item in targets))
        shown = tuple(targets[:max(0, min(sample or 10, 100))])
        first = shown[0].row if shown else None
        data = struct_pb2.Struct()
        data.update({"username": first.username if first else "jsmith01",
                     "first_name": first.first_name if first else "Jane",
                     "link": f"{self.links.public_url}/set-password?token=PREVIEW",
                     "expire_time": (self.clock() + self.links.lifetimes[TokenPurpose.INVITATION]).isoformat(),
                     "school_name": self.links.school_name})

        async def preview(stub: Any) -> Any:
            return await stub.PreviewTemplate(notify_pb2.PreviewTemplateRequest(
                template=notify_pb2.TEMPLATE_INVITATION, data=data, school=first.school if first else ""),
                timeout=30)
        rendered = await self._notify(preview)
        return ResendPreview(len(targets), counts, shown, rendered.subject, rendered.text)

    async def start_resend(self, selector: StudentSelector | None, anchor: dict[str, str],
                           request_id: str) -> JobRecord:
        if selector is not None:
            check_selector(selector)

        def count() -> int:
            with self.db.read() as session:
                return len(self.store.invitation_rows(session, selector, True))
        total = await self.db.run(count)
        payload = {"selector": None if selector is None else
                   {"kind": selector.kind, "value": selector.value, "usernames": list(selector.usernames)},
                   "title": describe(selector) if selector is not None else "all students"}
        return await self.jobs.start(RESEND_KIND, payload, anchor=anchor, request_id=request_id or None,
                                     total=total)

    def _resend_chunk(self, context: JobContext, selector: StudentSelector | None, after: str,
                      sent: int, total: int) -> tuple[str, int, bool]:
        """Fresh links for the next chunk of guardians (in username order after `after`)."""
        job = context.job
        call = Call(job.actor.id, job.actor.name, "", job.id)

        def work(session: Session, audit: Audit) -> tuple[str, int, bool]:
            rows = self.store.invitation_rows(session, selector, True, after, CHUNK + 1)
            chunk = rows[:CHUNK]
            targets = [LinkTarget(r.account_id, r.username, r.first_name, r.email, r.school) for r in chunk]
            if targets:
                issue_links(self.store, session, self.links, targets, TokenPurpose.INVITATION, audit.now, True,
                            job_id=job.id)
            for row in chunk:
                audit.record("invitation.resend", account_target(row.username), job_id=job.id)
            last = chunk[-1].username.lower() if chunk else after
            done = sent + len(chunk)
            context.store.progress(session, job.id, context.owner, done=done, total=max(total, done),
                                   checkpoint={"after": last, "sent": done})
            return last, done, len(rows) > len(chunk)

        result: tuple[str, int, bool] = self.mutations.run(call, "ResendInvitations", tuple, work)
        return result

    async def run_resend(self, context: JobContext) -> None:
        job = context.job
        chosen = job.payload.get("selector")
        selector = None if chosen is None else StudentSelector(chosen["kind"], chosen.get("value", ""),
                                                               tuple(chosen.get("usernames", ())))
        after, sent = str(job.checkpoint.get("after", "")), int(job.checkpoint.get("sent", 0))
        more = True
        while more:
            if context.should_stop():
                return
            after, sent, more = await self.db.run(self._resend_chunk, context, selector, after, sent, job.total)
            self.emails_queued()
        summary = (f"{sent:,} invitation{'s' if sent != 1 else ''} sent again with fresh links (the older links "
                   "stop working)")

        def finish() -> None:
            with self.db.transaction() as session:
                context.store.finish(session, job.id, context.owner, state=SUCCEEDED, summary=summary,
                                     result={"counts": {"sent": sent}}, attributes={"sent": str(sent)})
        await self.db.run(finish)
        self.jobs.poke_alerts()

    async def compose_resend(self, job: JobRecord) -> AlertContent:
        title = job.payload.get("title", "the selection")
        if job.state == FAILED:
            text = f"Resending invitations for {title} failed: {job.error_message or job.summary}"
            return AlertContent(text, [{"type": "section", "text": {"type": "mrkdwn", "text": f":x: {text}"}}])
        text = f"Invitations for {title}: {job.summary}."
        return AlertContent(text, [{"type": "section", "text": {"type": "mrkdwn", "text": (
            f":envelope: *Invitations resent* for {title} (`{job.id}`)\n{job.summary}.")[:2900]}}])

    # Reminders before links expire ------------------------------------------------------------------------------

    def send_reminders(self) -> int:
        """Queue one reminder per invitation link that expires within PORTAL_INVITE_REMINDER_DAYS (never twice:
        the outbox key is the link's). Returns how many were queued."""
        days = self.settings.invite_reminder_days
        if days <= 0:
            return 0
        now = self.clock()
        with self.db.transaction() as session:
            due = self.store.expiring_invitations(session, now, now + timedelta(days=days))
            emails = [self._reminder(item.token_id, item.username, item.first_name, item.email, item.school,
                                     item.issued_at, item.expires_at) for item in due]
            return self.store.enqueue_emails(session, emails)

    def _reminder(self, token_id: str, username: str, first_name: str, email: str, school: str, issued: datetime,
                  expires: datetime) -> dict[str, Any]:
        zone = self.settings.zone
        school_name = self.links.school_name
        body = (f"Hello {first_name or 'there'},\n\n"
                f"{school_name} created a parent portal account for you (username: {username}). The link to "
                f"choose your password, in our email of {issued.astimezone(zone):%d %B %Y}, expires on "
                f"{expires.astimezone(zone):%d %B %Y at %H:%M}.\n\n"
                "Use that link before then. If you cannot find the email, ask the school office to send a new "
                "invitation.")
        return {"key": f"accounts-reminder-{token_id}", "template": "notice", "to": email, "school": school,
                "job_id": "", "data": {"subject": f"Reminder: your {school_name} parent portal invitation expires "
                                                  "soon", "body": body, "school_name": school_name}}

    async def remind(self, stopping: asyncio.Event) -> None:
        """Background: look for invitations to remind about, hourly (only when reminders are on)."""
        if self.settings.invite_reminder_days <= 0:
            return
        while not stopping.is_set():
            try:
                if await self.db.run(self.send_reminders):
                    self.emails_queued()
            except Exception:
                log.exception("invitation reminders failed; trying again later")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), REMINDER_EVERY_SECONDS)
