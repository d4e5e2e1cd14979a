"""`/portal invites [SELECTOR]`: where parents' invitations stand (pending, delivered, bounced, failed, expired,
accepted); `/portal resend-invites [SELECTOR]`: how many parents who never signed in would get a fresh link, a
preview of the email, and a Send button (confirmed)."""

from __future__ import annotations

import json

from bot.core import BotCore, Request
from bot.flows import start_job_once
from bot.formatting import enum_word, when
from bot.registry import REGISTRY
from bot.replies import Button, Confirm, Fields, Reply, Table, Text, plural
from bot.selectors import SELECTOR_WORDS, parse_selector
from bot.services import calling
from portal.accounts.v1 import accounts_pb2
from portal.common.v1 import jobs_pb2

A = accounts_pb2
SEND = "invites_resend"
SHOWN = 15


def _state(value: int) -> str:
    return enum_word(A.InvitationState.Name(value), "INVITATION_STATE_")


def _counts(counts: list[A.InvitationStateCount]) -> Fields:
    return Fields(tuple((_state(c.state).capitalize(), f"{c.count:,}") for c in counts if c.count))


@REGISTRY.command("invites", "[SELECTOR]",
                  "Where parents' invitations stand: pending, delivered, bounced, failed, expired, accepted.",
                  ("/portal invites", "/portal invites grad 2031"))
async def invites(core: BotCore, request: Request, args: list[str]) -> Reply:
    selector, described = parse_selector(args or ["all"], f"/portal invites [{SELECTOR_WORDS}]")
    async with calling("accounts", request.actor, seconds=60):
        answer = await core.services.accounts.ListInvitations(A.ListInvitationsRequest(selector=selector,
                                                                                      page_size=SHOWN))
    zone = core.settings.zone
    rows = tuple((i.username, i.email, _state(i.state), when(i.issue_time, zone, "-"), when(i.expire_time, zone, "-"),
                  i.delivery_error) for i in answer.invitations)
    return Reply(f"Invitations of parents ({described}): {plural(answer.total_size, 'account')}",
                 parts=[_counts(list(answer.counts)),
                        Table(("username", "email", "state", "sent", "expires", "delivery error"), rows,
                              empty="No parent accounts in this selection.")])


@REGISTRY.command("resend-invites", "[SELECTOR]",
                  "Send a fresh invitation link to parents who never signed in (the old link stops working).",
                  ("/portal resend-invites", "/portal resend-invites group 7B"))
async def resend(core: BotCore, request: Request, args: list[str]) -> Reply:
    selector, described = parse_selector(args or ["all"], f"/portal resend-invites [{SELECTOR_WORDS}]")
    async with calling("accounts", request.actor, seconds=60):
        answer = await core.services.accounts.PreviewResendInvitations(A.PreviewResendInvitationsRequest(
            selector=selector, sample_size=SHOWN))
    headline = (f"{plural(answer.count, 'parent')} who never signed in ({described}) would get a fresh invitation "
                "link; their older links stop working.")
    if not answer.count:
        return Reply(f"No parent to invite again ({described}): everyone has signed in, or has no email address.")
    zone = core.settings.zone
    sample = tuple((i.username, i.email, _state(i.state), when(i.issue_time, zone, "never")) for i in answer.sample)
    preview = "\n".join(answer.text.strip().splitlines()[:12])
    return Reply(headline, parts=[
        _counts(list(answer.counts)),
        Table(("username", "email", "invitation", "last sent"), sample),
        Text(f"*The email:* {answer.subject}\n```{preview}```"),
    ], buttons=[Button(f"Send {answer.count:,} invitations"[:75], SEND, json.dumps({"words": args}), "primary",
                       Confirm("Send the invitations?", f"{headline} Each gets an email with a new link.", "Send"))])


@REGISTRY.action(SEND)
async def send_clicked(core: BotCore, request: Request, _action: str, value: str) -> Reply | None:
    words = json.loads(value).get("words") or ["all"]
    selector, described = parse_selector(words, f"/portal resend-invites [{SELECTOR_WORDS}]")
    key = f"resend:{request.key}"

    async def start(anchor: jobs_pb2.SlackAnchor) -> jobs_pb2.Job:
        return await core.services.accounts.StartResendInvitations(A.StartResendInvitationsRequest(
            selector=selector, anchor=anchor, request_id=key))

    return await start_job_once(core, request, key, "resend", described, "Sending invitations…", start,
                                service="accounts")
