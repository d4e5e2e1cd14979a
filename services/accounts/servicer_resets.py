"""The gRPC face of resets and usage reports (part of AccountsServicer): protobuf in, domain calls, protobuf out."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import grpc

from plumbing.errors import FieldViolation, InvalidArgument
from plumbing.jobs import job_to_proto
from portal.accounts.v1 import accounts_pb2 as pb
from portal.common.v1 import jobs_pb2
from services.accounts.domain import AccountFilter, AccountType
from services.accounts.reset_job import BulkResetJob
from services.accounts.reset_rules import Outcome, ResetSpec, selection
from services.accounts.resets import Resets
from services.accounts.usage_job import UsageReportJob

Context = grpc.aio.ServicerContext
SELECTOR_VALUES = ("school", "group", "grad_year", "last_name_prefix")


def selected(message: jobs_pb2.Selector | None, field: str) -> tuple[AccountFilter, tuple[str, ...]]:
    """The accounts a Selector means (nothing set: every parent account) and the usernames it names."""
    if message is None:
        return selection("all"), ()
    kind = message.WhichOneof("kind") or "all"
    if kind == "usernames":
        names = tuple(u.strip() for u in message.usernames.usernames if u.strip())
        if not names:
            raise InvalidArgument("Give at least one username.", [FieldViolation(f"{field}.usernames", "empty")])
        return selection("usernames", usernames=names, never_signed_in=message.never_signed_in), names
    value = str(getattr(message, kind)) if kind in SELECTOR_VALUES else ""
    if kind in SELECTOR_VALUES and not value.strip():
        raise InvalidArgument(f"Say which {kind.replace('_', ' ')}.", [FieldViolation(f"{field}.{kind}", "empty")])
    return selection(kind, value, never_signed_in=message.never_signed_in), ()


def _spec(message: pb.BulkResetSpec) -> ResetSpec:
    where, names = selected(message.selector if message.HasField("selector") else None, "spec.selector")
    return ResetSpec(where, message.enable_two_factor, message.delivery == pb.RESET_DELIVERY_PASSWORD, names)


def _anchor(message: jobs_pb2.SlackAnchor) -> dict[str, str]:
    return {k: v for k, v in (("channel", message.channel), ("thread_ts", message.thread_ts),
                              ("message_ts", message.message_ts), ("user_id", message.user_id)) if v}


# What the mixin needs: the resets, the bulk reset job and the usage report job.
ResetsAndReports = tuple[Resets, BulkResetJob, UsageReportJob]


class ResetsServicer:
    """Mixed into AccountsServicer, which sets `resets`, `bulk_reset` and `usage_report`."""

    resets: Resets
    bulk_reset: BulkResetJob
    usage_report: UsageReportJob

    async def PreviewBulkReset(self, request: pb.PreviewBulkResetRequest,
                               context: Context) -> pb.PreviewBulkResetResponse:
        found = await self.resets.preview(_spec(request.spec), request.sample_size)
        return pb.PreviewBulkResetResponse(
            reset_count=found.reset_count, sample_usernames=found.sample, skipped_count=found.skipped_count,
            skipped=[pb.SkippedAccount(username=d.candidate.username, reason=d.reason, message=d.message)
                     for d in found.skipped],
            invitation_count=found.invitation_count, two_factor_count=found.two_factor_count)

    async def StartBulkReset(self, request: pb.StartBulkResetRequest, context: Context) -> jobs_pb2.Job:
        job = await self.bulk_reset.start(_spec(request.spec), _anchor(request.anchor), request.request_id.strip(),
                                          request.previewed_count)
        return job_to_proto(job)

    async def ResetAccountPassword(self, request: pb.ResetAccountPasswordRequest,
                                   context: Context) -> pb.ResetAccountPasswordResponse:
        # The shared conversions live in the servicer module, which imports this one.
        from services.accounts.servicer import _call, _timestamp, account_pb

        done = await self.resets.reset_one(_call(request.request_id), request.username, request.enable_two_factor,
                                           request.delivery == pb.RESET_DELIVERY_PASSWORD)
        answer: Any = pb.ResetAccountPasswordResponse(
            account=account_pb(done.account), email=done.email,
            delivery=pb.RESET_DELIVERY_PASSWORD if done.outcome == Outcome.PASSWORD else pb.RESET_DELIVERY_LINK,
            two_factor_enabled=done.two_factor_enabled, invitation=done.outcome == Outcome.INVITATION)
        if done.expire_time is not None:
            answer.expire_time.CopyFrom(_timestamp(done.expire_time))
        return answer  # type: ignore[no-any-return]

    async def StartUsageReport(self, request: pb.StartUsageReportRequest, context: Context) -> jobs_pb2.Job:
        where, _names = selected(request.selector if request.HasField("selector") else None, "selector")
        if where.type is None:
            where = replace(where, type=AccountType.GUARDIAN)
        job = await self.usage_report.start(request.start_date, request.end_date, where, _anchor(request.anchor),
                                            request.request_id.strip())
        return job_to_proto(job)
