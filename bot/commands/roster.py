"""`/portal roster [SELECTOR]`: the data dashboard (seed 003): what in the roster keeps guardians from getting
accounts, with a button per list to download it."""

from __future__ import annotations

import json

from bot.core import BotCore, Request
from bot.registry import REGISTRY
from bot.replies import Button, Fields, OutFile, Reply, Text
from bot.selectors import SELECTOR_WORDS, parse_selector
from bot.services import calling
from portal.accounts.v1 import accounts_pb2

A = accounts_pb2
USAGE = f"/portal roster [{SELECTOR_WORDS}]"
DOWNLOAD = "roster_list"


@REGISTRY.command("roster", "[SELECTOR]",
                  "The data dashboard: students no guardian account will reach, contacts missing an email, shared "
                  "emails, possible duplicates; each list downloadable.",
                  ("/portal roster", "/portal roster school Hillside"))
async def roster(core: BotCore, request: Request, args: list[str]) -> Reply:
    selector, _described = parse_selector(args or ["all"], USAGE)
    async with calling("accounts", request.actor, seconds=120):
        board = await core.services.accounts.GetRosterDashboard(A.GetRosterDashboardRequest(selector=selector))
    buttons = [Button(f"Download: {item.title}"[:75], DOWNLOAD, json.dumps({"list": item.name, "words": args}))
               for item in board.lists if item.count]
    parts: list[Fields | Text] = [Fields(tuple((item.title, f"{item.count:,}") for item in board.lists))]
    if not buttons:
        parts.append(Text("Nothing to fix: every selected student has a guardian who will get an account."))
    return Reply(f"Roster dashboard for {board.selection}: {board.students:,} students", parts=parts,
                 buttons=buttons)


@REGISTRY.action(DOWNLOAD)
async def download(core: BotCore, request: Request, _action: str, value: str) -> Reply:
    chosen = json.loads(value)
    selector, described = parse_selector(chosen.get("words") or ["all"], USAGE)
    filename, data = f"roster-{chosen['list']}.xlsx", bytearray()
    async with calling("accounts", request.actor, seconds=120):
        async for chunk in core.services.accounts.DownloadRosterList(A.DownloadRosterListRequest(
                selector=selector, name=chosen["list"])):
            filename = chunk.filename or filename
            data += chunk.data
    return Reply(f"The list for {described}: fix these in the school's information system, then generate again.",
                 files=[OutFile(filename, bytes(data), filename)])
