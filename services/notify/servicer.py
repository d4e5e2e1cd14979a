"""The gRPC face of the notify service: protobuf in, domain calls, protobuf out. Nothing else lives here."""

from __future__ import annotations

from datetime import datetime

import grpc
from google.protobuf import json_format, timestamp_pb2

from portal.notify.v1 import notify_pb2, notify_pb2_grpc
from services.notify import rules
from services.notify.core import AlertInput, EmailInput, NotifyCore
from services.notify.store import AlertRecord, MessageFilter, MessageRecord, NewAlertFile

_STATE_TO_PB = {
    rules.QUEUED: notify_pb2.DELIVERY_STATE_QUEUED,
    rules.SENDING: notify_pb2.DELIVERY_STATE_SENDING,
    rules.SENT: notify_pb2.DELIVERY_STATE_SENT,
    rules.FAILED: notify_pb2.DELIVERY_STATE_FAILED,
}
_STATE_FROM_PB = {value: key for key, value in _STATE_TO_PB.items()}


def template_name(value: int) -> str:
    """TEMPLATE_PASSWORD_RESET -> "password_reset"; "" for UNSPECIFIED or unknown numbers."""
    if value == notify_pb2.TEMPLATE_UNSPECIFIED:
        return ""
    try:
        return notify_pb2.Template.Name(value).removeprefix("TEMPLATE_").lower()
    except ValueError:
        return ""


def template_value(name: str) -> int:
    return notify_pb2.Template.Value(f"TEMPLATE_{name.upper()}")


def _timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def message_pb(record: MessageRecord) -> notify_pb2.Message:
    return notify_pb2.Message(
        idempotency_key=record.key, to=record.recipient, template=template_value(record.template),
        state=_STATE_TO_PB[record.state], attempts=record.attempts, last_error=record.last_error,
        job_id=record.job_id, create_time=_timestamp(record.created_at), sent_time=_timestamp(record.sent_at),
        message_id=record.message_id,
        next_attempt_time=_timestamp(record.due_at) if record.state == rules.QUEUED else None,
    )


def alert_pb(record: AlertRecord) -> notify_pb2.Alert:
    return notify_pb2.Alert(
        idempotency_key=record.key, state=_STATE_TO_PB[record.state], attempts=record.attempts,
        last_error=record.last_error, channel=record.posted_channel, ts=record.posted_ts,
        create_time=_timestamp(record.created_at), sent_time=_timestamp(record.sent_at),
        next_attempt_time=_timestamp(record.due_at) if record.state == rules.QUEUED else None,
    )


class NotifyServicer(notify_pb2_grpc.NotifyServiceServicer):
    """Translates protobuf to NotifyCore calls; errors are ServiceErrors, mapped to statuses by the interceptor."""

    def __init__(self, core: NotifyCore) -> None:
        self.core = core

    async def EnqueueEmails(self, request: notify_pb2.EnqueueEmailsRequest,
                            context: grpc.aio.ServicerContext) -> notify_pb2.EnqueueEmailsResponse:
        emails = [EmailInput(
            key=email.idempotency_key, template=template_name(email.template), to=email.to,
            data=json_format.MessageToDict(email.data), job_id=email.job_id, school=email.school,
        ) for email in request.emails]
        records = await self.core.enqueue_emails(emails)
        return notify_pb2.EnqueueEmailsResponse(messages=[message_pb(record) for record in records])

    async def GetMessage(self, request: notify_pb2.GetMessageRequest,
                         context: grpc.aio.ServicerContext) -> notify_pb2.Message:
        return message_pb(await self.core.get_message(request.idempotency_key))

    async def ListMessages(self, request: notify_pb2.ListMessagesRequest,
                           context: grpc.aio.ServicerContext) -> notify_pb2.ListMessagesResponse:
        filters = MessageFilter(key_prefix=request.idempotency_key_prefix, recipient=request.to,
                                job_id=request.job_id, state=_STATE_FROM_PB.get(request.state, ""))
        records, token = await self.core.list_messages(filters, request.page_size, request.page_token)
        return notify_pb2.ListMessagesResponse(messages=[message_pb(r) for r in records], next_page_token=token)

    async def PreviewTemplate(self, request: notify_pb2.PreviewTemplateRequest,
                              context: grpc.aio.ServicerContext) -> notify_pb2.PreviewTemplateResponse:
        rendered = self.core.preview(template_name(request.template), json_format.MessageToDict(request.data),
                                     request.school)
        return notify_pb2.PreviewTemplateResponse(subject=rendered.subject, text=rendered.text, html=rendered.html)

    async def SendAlert(self, request: notify_pb2.SendAlertRequest,
                        context: grpc.aio.ServicerContext) -> notify_pb2.Alert:
        anchor = request.anchor
        record = await self.core.send_alert(AlertInput(
            key=request.idempotency_key, user_id=request.user_id, channel=request.channel,
            anchor_channel=anchor.channel, anchor_user=anchor.user_id, thread_ts=anchor.thread_ts,
            message_ts=anchor.message_ts, text=request.text, blocks_json=request.blocks_json,
            files=tuple(NewAlertFile(f.filename, f.title, f.data) for f in request.files),
        ))
        return alert_pb(record)

    async def GetAlert(self, request: notify_pb2.GetAlertRequest,
                       context: grpc.aio.ServicerContext) -> notify_pb2.Alert:
        return alert_pb(await self.core.get_alert(request.idempotency_key))
