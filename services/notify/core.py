"""The notify service's operations, in domain terms: what the servicer calls after translating protobuf.

Checks requests with the rules, stores through the store, and wakes this process's delivery loops when new work
arrives (other replicas find it at their next poll).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from plumbing.config import Settings
from plumbing.db import Database, utcnow
from plumbing.errors import FieldViolation, InvalidArgument, NotFound
from services.notify import rules
from services.notify.store import (
    AlertRecord,
    MessageFilter,
    MessageRecord,
    NewAlert,
    NewAlertFile,
    NewMessage,
    NotifyStore,
)
from services.notify.templates import (
    BrandingCache,
    Rendered,
    TemplateDataError,
    branding_for,
    new_message_id,
    render,
    sample_data,
)

log = logging.getLogger("portal.notify")
MAX_ALERT_FILES = 10
MAX_ALERT_FILE_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class EmailInput:
    key: str
    template: str
    to: str
    data: Mapping[str, Any]
    job_id: str = ""
    school: str = ""


@dataclass(frozen=True)
class AlertInput:
    key: str
    user_id: str = ""
    channel: str = ""
    anchor_channel: str = ""
    anchor_user: str = ""
    thread_ts: str = ""
    message_ts: str = ""
    text: str = ""
    blocks_json: str = ""
    files: tuple[NewAlertFile, ...] = ()


class NotifyCore:
    """Operations of one notify process over its database."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.store = NotifyStore(db)
        self.branding = BrandingCache(settings)
        self.mail_wake = asyncio.Event()
        self.alert_wake = asyncio.Event()

    # Emails ------------------------------------------------------------------------------------------------------

    def _prepare(self, email: EmailInput) -> NewMessage:
        """A message to store. One that can never be sent (bad address, data that cannot fill the template) is
        stored as failed with the reason, so one bad row never holds back a batch handed over by a relay."""
        data = rules.clean_data(email.template, email.data)
        branding = self.branding(email.school)
        problem = rules.data_problem(email.template, data)
        try:
            recipient = rules.check_recipient(email.to)
            address, domain = recipient.address, recipient.domain
        except rules.BadAddress as exc:
            address, domain = email.to.strip()[:320], email.to.rpartition("@")[2].lower()[:255]
            problem = f"bad address: {exc}"
        return NewMessage(
            key=email.key, template=email.template, recipient=address, domain=domain, data=data,
            job_id=email.job_id[:64], school=email.school[:200], message_id=new_message_id(branding),
            state=rules.FAILED if problem else rules.QUEUED, last_error=problem or "",
        )

    async def enqueue_emails(self, emails: Sequence[EmailInput]) -> list[MessageRecord]:
        """Store each key once and return every key's current record, in request order."""
        if len(emails) > rules.MAX_EMAILS_PER_CALL:
            raise InvalidArgument(f"at most {rules.MAX_EMAILS_PER_CALL} emails per call",
                                  [FieldViolation("emails", f"{len(emails)} given")])
        violations = []
        for index, email in enumerate(emails):
            problem = rules.check_key(email.key)
            if problem:
                violations.append(FieldViolation(f"emails[{index}].idempotency_key", problem))
            if email.template not in rules.TEMPLATES:
                violations.append(FieldViolation(f"emails[{index}].template", "is required (a known template)"))
        if violations:
            raise InvalidArgument("some emails cannot be queued", violations)
        unique: dict[str, EmailInput] = {}
        for email in emails:
            unique.setdefault(email.key, email)
        prepared = [self._prepare(email) for email in unique.values()]
        stored, added = await self.db.run(self.store.add_messages, prepared, utcnow())
        if added:
            self.mail_wake.set()
        by_key = {record.key: record for record in stored}
        return [by_key[email.key] for email in emails]

    async def get_message(self, key: str) -> MessageRecord:
        record = await self.db.run(self.store.get_message, key)
        if record is None:
            raise NotFound(f"no email with idempotency key {key!r}")
        return record

    async def list_messages(self, filters: MessageFilter, size: int, token: str) -> tuple[list[MessageRecord], str]:
        if filters.state and filters.state not in rules.STATES:
            raise InvalidArgument("unknown state", [FieldViolation("state", filters.state)])
        fingerprint = {"prefix": filters.key_prefix, "to": filters.recipient, "job": filters.job_id,
                       "state": filters.state}
        try:
            after = rules.decode_page_token(token, fingerprint)
        except ValueError as exc:
            raise InvalidArgument(str(exc), [FieldViolation("page_token", str(exc))]) from None
        records, more = await self.db.run(self.store.list_messages, filters, after, rules.page_size(size))
        next_token = rules.encode_page_token(records[-1].id, fingerprint) if more and records else ""
        return records, next_token

    def preview(self, template: str, data: Mapping[str, Any], school: str) -> Rendered:
        """Render a template without sending anything: the given data over sample data."""
        if template not in rules.TEMPLATES:
            raise InvalidArgument("a known template is required", [FieldViolation("template", "is required")])
        branding = branding_for(self.settings, school)
        merged = {**sample_data(template, branding, utcnow()), **dict(data)}
        try:
            return render(template, merged, branding)
        except TemplateDataError as exc:
            raise InvalidArgument(str(exc), [FieldViolation("data", str(exc))]) from None

    # Alerts ------------------------------------------------------------------------------------------------------

    async def send_alert(self, alert: AlertInput) -> AlertRecord:
        """Store an alert once per key (a repeated key returns what is stored, posting nothing new)."""
        violations = []
        problem = rules.check_key(alert.key)
        if problem:
            violations.append(FieldViolation("idempotency_key", problem))
        try:
            rules.check_blocks(alert.blocks_json)
        except ValueError as exc:
            violations.append(FieldViolation("blocks_json", str(exc)))
        if not (alert.text.strip() or alert.blocks_json.strip() or alert.files):
            violations.append(FieldViolation("text", "give text, blocks or files"))
        if len(alert.files) > MAX_ALERT_FILES:
            violations.append(FieldViolation("files", f"at most {MAX_ALERT_FILES} files"))
        for index, file in enumerate(alert.files):
            if not file.filename.strip():
                violations.append(FieldViolation(f"files[{index}].filename", "is required"))
            if len(file.data) > MAX_ALERT_FILE_BYTES:
                violations.append(FieldViolation(f"files[{index}].data", "is larger than 50 MB"))
        if violations:
            raise InvalidArgument("the alert cannot be sent", violations)
        problem = ""
        try:
            target = rules.alert_target(alert.user_id, alert.channel, alert.anchor_channel, alert.anchor_user,
                                        alert.thread_ts, alert.message_ts, self.settings.alert_channel)
        except ValueError as exc:
            # Nowhere to post it in Slack: recorded as failed (never blocking the caller's relay) and logged.
            # The chat console (no Slack) takes every alert.
            target = rules.AlertTarget("", "")
            if self.settings.slack_bot_token is not None:
                problem = f"no destination: {exc}"
        record, created = await self.db.run(self.store.add_alert, NewAlert(
            key=alert.key, channel=target.channel, user_id=target.user_id, thread_ts=alert.thread_ts,
            update_ts=alert.message_ts, text=alert.text, blocks_json=alert.blocks_json, files=alert.files,
            failed=problem,
        ), utcnow())
        if created and problem:
            log.warning("alert %s cannot be delivered: %s", alert.key, problem)
        elif created:
            self.alert_wake.set()
        return record

    async def get_alert(self, key: str) -> AlertRecord:
        record = await self.db.run(self.store.get_alert, key)
        if record is None:
            raise NotFound(f"no alert with idempotency key {key!r}")
        return record
