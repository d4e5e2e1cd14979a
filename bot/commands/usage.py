"""`/portal usage FROM TO [SELECTOR]`: the portal-usage report for a date range (inclusive, in the school's time
zone) as a job; the workbook arrives by direct message when it is ready, and `/portal jobs` lists it meanwhile."""

from __future__ import annotations

from datetime import date

from bot.core import BotCore, Request
from bot.registry import REGISTRY, UsageError
from bot.replies import Reply
from bot.selectors import SELECTOR_WORDS, parse_selector
from bot.services import calling
from portal.accounts.v1 import accounts_pb2
from portal.common.v1 import jobs_pb2

A = accounts_pb2
USAGE = f"/portal usage FROM TO [{SELECTOR_WORDS}]"


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"`{text}` is not a date: write dates as YYYY-MM-DD. Usage: `{USAGE}`") from None


@REGISTRY.command("usage", f"FROM TO [{SELECTOR_WORDS}]",
                  "Portal usage report (Excel) for a date range: a summary and a sheet per parent, sent to you by "
                  "DM when ready.",
                  ("/portal usage 2026-09-01 2026-09-30", "/portal usage 2026-09-01 2026-12-18 grad 2031"))
async def usage(core: BotCore, request: Request, args: list[str]) -> Reply:
    if len(args) < 2:
        raise UsageError(f"Which dates? Usage: `{USAGE}`")
    start, end = _day(args[0]), _day(args[1])
    if end < start:
        raise UsageError(f"The report ends ({end}) before it starts ({start}). Usage: `{USAGE}`")
    selector, described = (parse_selector(args[2:], USAGE) if len(args) > 2
                           else (jobs_pb2.Selector(all=True), "all students"))
    request_id = f"bot:usage:{request.key}" if request.key else ""
    async with calling("accounts", request.actor, request_id=request_id):
        job = await core.services.accounts.StartUsageReport(A.StartUsageReportRequest(
            start_date=start.isoformat(), end_date=end.isoformat(), selector=selector, request_id=request_id,
            anchor=jobs_pb2.SlackAnchor(user_id=request.actor.id)))
    who = "all parents" if described == "all students" else f"parents of {described}"
    return Reply(f"Portal usage report for {start} to {end} ({who}) is being prepared (`{job.id}`): the workbook "
                 "will arrive in a direct message. `/portal jobs` shows its progress.")
