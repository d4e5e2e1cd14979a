"""`/portal reset ...`: a bulk password reset. The preview (how many, a sample, who is skipped and why) comes first,
privately, with a confirm button; the click starts the job, whose result (counts and a workbook of who was reset
and whose email failed) reaches the requester by direct message."""

from __future__ import annotations

import json
import secrets

from google.protobuf import json_format

from bot.core import BotCore, Request
from bot.registry import REGISTRY, UsageError
from bot.replies import Button, Confirm, Reply, Text, plural
from bot.selectors import parse_selector
from bot.services import calling
from portal.accounts.v1 import accounts_pb2
from portal.common.v1 import jobs_pb2

A = accounts_pb2
ARGUMENTS = ("USERNAME... | group NAME | grad YEAR | school NAME | lastname PREFIX | never-signed-in | all "
             "[2fa] [send-password]")
USAGE = f"/portal reset {ARGUMENTS}"
SELECTOR_FIRST_WORDS = ("all", "school", "group", "grad", "lastname")
START_ACTION = "bulk_reset_start"
# Slack keeps at most 2,000 characters in a button's value.
MAX_VALUE = 2000


def parse_reset(args: list[str]) -> tuple[A.BulkResetSpec, str]:
    """The reset staff asked for, and a few words describing the selection."""
    words = [w for w in args if w.lower() not in ("2fa", "send-password", "never-signed-in")]
    flags = {w.lower() for w in args} - {w.lower() for w in words}
    never = "never-signed-in" in flags
    if not words and not never:
        raise UsageError(f"Whose passwords? Usage: `{USAGE}`")
    if not words:
        selector, described = jobs_pb2.Selector(all=True), "all parents"
    elif words[0].lower() in SELECTOR_FIRST_WORDS:
        selector, described = parse_selector(words, USAGE)
        described = described.replace("students", "parents") if words[0].lower() == "all" else \
            f"parents of {described}"
    else:
        selector = jobs_pb2.Selector(usernames=jobs_pb2.UsernameList(usernames=words))
        described = ", ".join(words) if len(words) <= 5 else f"{len(words)} usernames"
    selector.never_signed_in = never
    if never:
        described += " who never signed in"
    spec = A.BulkResetSpec(selector=selector, enable_two_factor="2fa" in flags,
                           delivery=A.RESET_DELIVERY_PASSWORD if "send-password" in flags else A.RESET_DELIVERY_LINK)
    return spec, described


def _what_is_sent(spec: A.BulkResetSpec, preview: A.PreviewBulkResetResponse) -> str:
    if spec.delivery == A.RESET_DELIVERY_PASSWORD:
        sent = "a new password by email (they must change it when they sign in)"
    elif preview.invitation_count:
        sent = (f"a link to set a new password by email ({plural(preview.invitation_count, 'invitation link')} for "
                "those who never set one)")
    else:
        sent = "a link to set a new password by email"
    if spec.enable_two_factor:
        sent += f"; two-factor sign-in is turned on for {plural(preview.two_factor_count, 'account')}"
    return sent


@REGISTRY.command("reset", ARGUMENTS,
                  "Reset passwords in bulk (optionally turning two-factor on): a preview first, then you confirm. "
                  "The result and a workbook arrive by DM.",
                  ("/portal reset jsmith01 pjones02", "/portal reset group 7B 2fa", "/portal reset never-signed-in",
                   "/portal reset grad 2031 send-password"))
async def reset(core: BotCore, request: Request, args: list[str]) -> Reply:
    spec, described = parse_reset(args)
    async with calling("accounts", request.actor, seconds=120):
        preview = await core.services.accounts.PreviewBulkReset(A.PreviewBulkResetRequest(spec=spec,
                                                                                          sample_size=10))
    parts = []
    if preview.sample_usernames:
        more = preview.reset_count - len(preview.sample_usernames)
        parts.append(Text("*Will be reset:* " + ", ".join(preview.sample_usernames)
                          + (f" and {more:,} more" if more > 0 else "")))
    if preview.skipped_count:
        shown = "\n".join(f"• {s.username}: {s.message}" for s in preview.skipped)
        more = preview.skipped_count - len(preview.skipped)
        parts.append(Text(f"*Skipped ({preview.skipped_count:,}):*\n{shown}" + (f"\n…and {more:,} more" if more > 0
                                                                                else "")))
    if not preview.reset_count:
        return Reply(f"Nobody to reset for {described}.", parts=parts)
    headline = (f"Reset {plural(preview.reset_count, 'account')} ({described})? Each gets "
                f"{_what_is_sent(spec, preview)}.")
    value = json.dumps({"n": secrets.token_hex(8), "c": preview.reset_count,
                        "s": json_format.MessageToDict(spec, preserving_proto_field_name=True)}, separators=(",", ":"))
    if len(value) > MAX_VALUE:
        raise UsageError("That is too many usernames for one command: reset them in smaller groups, or choose them "
                         "by group or grad year.")
    label = f"Reset {plural(preview.reset_count, 'account')}"
    button = Button(label, START_ACTION, value, "danger",
                    Confirm("Reset passwords?", f"{headline} Their current reset links stop working.", label,
                            "Cancel"))
    return Reply(headline, parts=parts, buttons=[button])


@REGISTRY.action(START_ACTION)
async def start(core: BotCore, request: Request, _action: str, value: str) -> Reply:
    chosen = json.loads(value)
    spec = json_format.ParseDict(chosen["s"], A.BulkResetSpec())
    async with calling("accounts", request.actor, request_id=f"bot:reset:{chosen['n']}"):
        job = await core.services.accounts.StartBulkReset(A.StartBulkResetRequest(
            spec=spec, previewed_count=int(chosen.get("c", 0)), request_id=f"bot:reset:{chosen['n']}",
            anchor=jobs_pb2.SlackAnchor(user_id=request.actor.id)))
    return Reply(f"Bulk reset started (`{job.id}`): the result and a workbook of who was reset will arrive in a "
                 "direct message. `/portal jobs` shows its progress.")
