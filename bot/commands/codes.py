"""`/portal codes`: the status-code catalogue of trial runs (code, meaning, fix)."""

from __future__ import annotations

from bot.core import BotCore, Request
from bot.registry import REGISTRY
from bot.replies import Reply, Table
from bot.services import calling
from portal.imports.v1 import imports_pb2


@REGISTRY.command("codes", "", "The status codes a trial run can mark a row with, and how to fix each.",
                  ("/portal codes",))
async def codes(core: BotCore, request: Request, _args: list[str]) -> Reply:
    async with calling("imports", request.actor):
        answer = await core.services.imports.ListStatusCodes(imports_pb2.ListStatusCodesRequest())
    rows = tuple((c.code, "warning" if c.warning else "error", c.meaning, c.fix) for c in answer.codes)
    return Reply(f"{len(rows)} status codes", parts=[Table(("code", "kind", "meaning", "fix"), rows)])
