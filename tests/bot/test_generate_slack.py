"""Generation from Slack, end to end: signed requests to the bot, the real services, the Slack stand-in. The plan
with its workbook and Run buttons, one run however often Run is clicked, progress, and the report posted by
notify's alert into the run's thread; the roster dashboard and resending invitations."""

from __future__ import annotations

import json
from typing import Any

from portal.accounts.v1 import accounts_pb2 as pb
from tests.bot.conftest import ADMIN, STAFF_CHANNEL, Bot
from tests.bot.wire import ephemeral_to, eventually, message_text, thread


async def roster(bot: Bot) -> None:
    await bot.services.accounts.BatchUpsertRoster(pb.BatchUpsertRosterRequest(
        students=[pb.Student(id=sid, first_name=first, last_name="Smith", grad_year=2031, group="7B",
                             school="North High") for sid, first in (("S1", "Sam"), ("S2", "Sally"))],
        contacts=[pb.Contact(id="C1", first_name="Jane", last_name="Smith", email="jane@example.org"),
                  pb.Contact(id="C2", first_name="Nomail", last_name="Smith")],
        relationships=[pb.RosterRelationship(student_id=s, contact_id=c, parental_responsibility=True, primary=True)
                       for s, c in (("S1", "C1"), ("S2", "C1"), ("S2", "C2"))]), timeout=30)


def ephemeral_button(bot: Bot, action_id: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The newest ephemeral message to ADMIN with this button, and the button."""
    for call in reversed(bot.slack.calls_to("chat.postEphemeral", ok_only=True)):
        blocks = call.params.get("blocks")
        blocks = json.loads(blocks) if isinstance(blocks, str) else blocks or []
        for block in blocks:
            for element in block.get("elements", []) if block.get("type") == "actions" else []:
                if element.get("action_id") == action_id:
                    return call.params, element
    return None


async def test_generate_posts_the_plan_and_run_reports_into_the_thread(portal: Bot) -> None:
    await roster(portal)
    assert (await portal.wire.command("generate grad 2031", ADMIN)).status == 200
    shown, run = await eventually(lambda: ephemeral_button(portal, "generate_run"), "the plan with its Run button",
                                  timeout=60)
    text = message_text(shown)
    assert "1 account will be created, 0 existing accounts gain a student, 1 contact skipped" in text
    assert "S_NO_EMAIL" in text and "jane@example.org" in text
    assert run["confirm"] and ephemeral_button(portal, "generate_run_quiet") is not None
    plans = await eventually(lambda: [f for f in portal.slack.files if f.filename.startswith("generation-plan")],
                             "the plan workbook")
    assert plans[0].data[:2] == b"PK" and plans[0].channel_id == STAFF_CHANNEL

    clicked = {"ts": "1700000000.000100"}
    for _twice in range(2):
        answer = await portal.wire.click("generate_run", run["value"], ADMIN, STAFF_CHANNEL, clicked, ephemeral=True)
        assert answer.status == 200

    def progress() -> list[Any]:
        return [m for m in portal.slack.messages if m.channel == STAFF_CHANNEL
                and any("Generation running" in t for t in (m.text, *m.edits))]

    started = await eventually(progress, "the progress message", timeout=60)
    anchor = started[0].ts

    def report() -> list[Any]:
        return [m for m in thread(portal.slack, STAFF_CHANNEL, anchor) if "finished" in m.text]

    final = await eventually(report, "the report in the thread", timeout=90)
    assert "Generation for graduation year 2031 finished: 1 account created" in final[0].text
    assert final[0].ts == anchor  # notify updated the bot's progress message
    files = await eventually(lambda: [f for f in portal.slack.files if f.thread_ts == anchor], "the report workbook")
    assert files[0].filename.startswith("generation-report-") and files[0].data[:2] == b"PK"
    assert len(progress()) == 1  # the second click started nothing
    told = await eventually(lambda: [t for t in ephemeral_to(portal.slack, ADMIN) if "already started" in t],
                            "the second click's answer")
    assert told
    jane = await portal.services.accounts.GetAccount(pb.GetAccountRequest(username_or_email="jane@example.org"))
    assert sorted(jane.student_ids) == ["S1", "S2"]
    jobs = await portal.services.accounts.ListJobs(pb.ListJobsRequest(page_size=10))
    assert [j.kind for j in jobs.jobs].count("generate") == 1


async def test_roster_dashboard_and_resend_invites(portal: Bot) -> None:
    await roster(portal)
    assert (await portal.wire.command("roster", ADMIN)).status == 200
    shown, download = await eventually(lambda: ephemeral_button(portal, "roster_list"), "the dashboard", timeout=60)
    assert "Contacts missing an email" in message_text(shown)
    await portal.wire.click("roster_list", download["value"], ADMIN, STAFF_CHANNEL, {"ts": "1700000000.000200"},
                            ephemeral=True)
    await eventually(lambda: [f for f in portal.slack.files if f.filename.startswith("roster-")], "the list")

    assert (await portal.wire.command("generate", ADMIN)).status == 200
    _plan, run = await eventually(lambda: ephemeral_button(portal, "generate_run_quiet"), "the plan", timeout=60)
    await portal.wire.click("generate_run_quiet", run["value"], ADMIN, STAFF_CHANNEL, {"ts": "1700000000.000300"},
                            ephemeral=True)
    await eventually(lambda: [m for m in portal.slack.messages if "finished" in m.text], "the run", timeout=90)

    assert (await portal.wire.command("resend-invites", ADMIN)).status == 200
    preview, send = await eventually(lambda: ephemeral_button(portal, "invites_resend"), "the preview", timeout=60)
    assert "1 parent who never signed in" in message_text(preview) and send["confirm"]
    await portal.wire.click("invites_resend", send["value"], ADMIN, STAFF_CHANNEL, {"ts": "1700000000.000400"},
                            ephemeral=True)
    await eventually(lambda: [m for m in portal.slack.messages if "Invitations resent" in m.text
                              or "invitation sent again" in m.text], "the resend's alert", timeout=90)
    assert (await portal.wire.command("invites", ADMIN)).status == 200
    states = await eventually(lambda: [t for t in ephemeral_to(portal.slack, ADMIN) if "Invitations of parents" in t],
                              "the invitations")
    assert "jane@example.org" in states[0]
