"""`/portal link USERNAME STUDENT_ID` and `/portal unlink USERNAME STUDENT_ID`: the account, privately, after."""

from __future__ import annotations

import uuid

from bot.commands.account import account_card
from bot.core import BotCore, Request
from bot.registry import REGISTRY, UsageError
from bot.replies import Reply
from bot.services import calling
from portal.accounts.v1 import accounts_pb2


def _two(args: list[str], usage: str) -> tuple[str, list[str]]:
    if len(args) < 2:
        raise UsageError(f"Which account and which student? Usage: `{usage}`")
    students = [part for word in args[1:] for part in word.replace(",", " ").split()]
    return args[0], students


@REGISTRY.command("link", "USERNAME STUDENT_ID", "Link a student to an account (existing links stay).",
                  ("/portal link jsmith01 100234",))
async def link(core: BotCore, request: Request, args: list[str]) -> Reply:
    username, students = _two(args, "/portal link USERNAME STUDENT_ID")
    async with calling("accounts", request.actor):
        account = await core.services.accounts.LinkStudents(accounts_pb2.LinkStudentsRequest(
            username=username, student_ids=students, request_id=f"bot:link:{uuid.uuid4().hex}"))
    return account_card(core, account, f"Linked {', '.join(students)} to {account.username}.")


@REGISTRY.command("unlink", "USERNAME STUDENT_ID", "Remove a student from an account.",
                  ("/portal unlink jsmith01 100234",))
async def unlink(core: BotCore, request: Request, args: list[str]) -> Reply:
    username, students = _two(args, "/portal unlink USERNAME STUDENT_ID")
    async with calling("accounts", request.actor):
        account = await core.services.accounts.UnlinkStudents(accounts_pb2.UnlinkStudentsRequest(
            username=username, student_ids=students, request_id=f"bot:unlink:{uuid.uuid4().hex}"))
    return account_card(core, account, f"Unlinked {', '.join(students)} from {account.username}.")
