"""Staff using the portal from Slack, end to end: the real services, the bot in HTTP mode, the Slack stand-in.

These need the accounts and imports services (and notify for the final messages) as implemented by their issues.
"""

from __future__ import annotations

from typing import Any

from portal.accounts.v1 import accounts_pb2
from portal.imports.v1 import imports_pb2
from tests.bot.conftest import ADMIN, STAFF_CHANNEL, Bot
from tests.bot.wire import ephemeral_to, eventually, message_text, thread

A = accounts_pb2
STUDENTS = [("100234", "Sam", "Smith"), ("100235", "Sally", "Smith")]


async def roster(bot: Bot) -> None:
    await bot.services.accounts.BatchUpsertRoster(A.BatchUpsertRosterRequest(
        students=[A.Student(id=sid, first_name=first, last_name=last, grad_year=2031, group="7B",
                            school="North High") for sid, first, last in STUDENTS],
        request_id="test-roster"), timeout=30)


async def make_account(bot: Bot, username: str = "jsmith01", students: tuple[str, ...] = ("100234",)) -> None:
    await roster(bot)
    await bot.services.accounts.CreateAccount(A.CreateAccountRequest(
        account=A.Account(username=username, first_name="Jane", last_name="Smith", email="jane.smith@example.org",
                          type=A.ACCOUNT_TYPE_GUARDIAN, student_ids=list(students)),
        password="Correct1Horse", request_id=f"test-create-{username}"), timeout=30)


async def answer_to(bot: Bot, command: str, nth: int = 0) -> str:
    assert (await bot.wire.command(command, ADMIN)).status == 200
    return (await eventually(lambda: ephemeral_to(bot.slack, ADMIN)[nth:], f"the answer to /portal {command}"))[0]


async def test_account_lookup_answers_the_requester_only(accounts_portal: Bot) -> None:
    await make_account(accounts_portal)
    text = await answer_to(accounts_portal, "account jsmith01")
    for shown in ("jsmith01", "Jane Smith", "jane.smith@example.org", "100234", "Last sign-in", "never",
                  "Two-factor", "Reset password", "Delete"):
        assert shown in text
    assert not accounts_portal.slack.calls_to("chat.postMessage")
    call = accounts_portal.slack.calls_to("chat.postEphemeral")[-1]
    assert call.params["user"] == ADMIN and call.params["channel"] == STAFF_CHANNEL


async def test_link_then_the_account_shows_both_students(accounts_portal: Bot) -> None:
    await make_account(accounts_portal)
    linked = await answer_to(accounts_portal, "link jsmith01 100235")
    assert "100234" in linked and "100235" in linked
    text = await answer_to(accounts_portal, "account JSMITH01", nth=1)
    assert "100234, 100235" in text
    unlinked = await answer_to(accounts_portal, "unlink jsmith01 100234", nth=2)
    assert "100234" not in unlinked.split("Students", 1)[1].split("\n")[1]


async def test_create_opens_a_modal_and_a_short_username_gets_field_errors(accounts_portal: Bot) -> None:
    await roster(accounts_portal)
    assert (await accounts_portal.wire.command("create", ADMIN)).status == 200
    opened = await eventually(lambda: accounts_portal.slack.calls_to("views.open", ok_only=True), "views.open")
    view = opened[0].params["view"]
    assert view["callback_id"] == "account_create"
    assert {b["block_id"] for b in view["blocks"]} >= {"username", "first_name", "last_name", "email", "type",
                                                       "password", "invite", "students"}
    view = {**view, "id": "V0CREATE01"}
    values: dict[str, Any] = {"username": "abc", "first_name": "Jo", "last_name": "Ng", "email": "jo@example.org",
                              "type": "guardian", "invite": ["invite"], "students": "100234"}
    refused = await accounts_portal.wire.submit_view(view, values, ADMIN)
    assert refused.status == 200
    assert refused.json()["response_action"] == "errors"
    assert "username" in refused.json()["errors"]
    accepted = await accounts_portal.wire.submit_view(view, {**values, "username": "jong0001"}, ADMIN)
    assert accepted.status == 200 and not accepted.text
    account = await accounts_portal.services.accounts.GetAccount(A.GetAccountRequest(username_or_email="jong0001"))
    assert list(account.student_ids) == ["100234"]
    created = await eventually(lambda: ephemeral_to(accounts_portal.slack, ADMIN), "the confirmation")
    assert "jong0001 created" in created[0]


def parents_csv(rows: list[tuple[str, ...]]) -> bytes:
    lines = ["LOGONID,FIRST_NAME,LAST_NAME,EMAIL,STUDENT_IDS"] + [",".join(row) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def file_events(bot: Bot, name: str, data: bytes) -> tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]:
    ts = bot.slack.add_message(STAFF_CHANNEL, "")
    file = bot.slack.add_user_file(name, data, user=ADMIN, channel=STAFF_CHANNEL, ts=ts)
    message = {"type": "message", "subtype": "file_share", "text": "", "user": ADMIN, "channel": STAFF_CHANNEL,
               "channel_type": "group", "ts": ts, "event_ts": ts, "files": [file]}
    shared = {"type": "file_shared", "file_id": file["id"], "user_id": ADMIN, "channel_id": STAFF_CHANNEL,
              "event_ts": ts, "file": {"id": file["id"]}}
    return ts, file, message, shared


async def import_jobs(bot: Bot) -> list[imports_pb2.ImportJob]:
    answer = await bot.services.imports.ListImportJobs(imports_pb2.ListImportJobsRequest(page_size=50), timeout=10)
    return list(answer.jobs)


def button(messages: list[Any], action_id: str) -> tuple[Any, dict[str, Any]] | None:
    for message in messages:
        for block in message.blocks or []:
            for element in block.get("elements", []) if block.get("type") == "actions" else []:
                if element.get("action_id") == action_id:
                    return message, element
    return None


async def test_a_dropped_file_is_one_trial_run_whatever_events_and_retries_arrive(portal: Bot) -> None:
    await roster(portal)
    ts, file, message, shared = file_events(portal, "parents.csv",
                                            parents_csv([("parent01", "Pat", "Smith", "pat@example.org", "100234")]))
    assert (await portal.wire.event(message, event_id="Ev0MESSAGE1")).status == 200
    assert (await portal.wire.event(shared, event_id="Ev0SHARED01")).status == 200
    assert (await portal.wire.event(message, event_id="Ev0MESSAGE1", retry=1)).status == 200
    assert (await portal.wire.event(shared, event_id="Ev0SHARED01", retry=2)).status == 200
    jobs = await eventually(lambda: import_jobs(portal), "the trial run")
    final = await eventually(lambda: [m for m in thread(portal.slack, STAFF_CHANNEL, ts)
                                      if "Trial run of parents.csv" in message_text({"text": m.text})],
                             "the trial run's final message", timeout=60)
    assert len(await import_jobs(portal)) == 1 == len(jobs)
    assert jobs[0].job.anchor.channel == STAFF_CHANNEL and jobs[0].job.anchor.thread_ts == ts
    assert jobs[0].job.actor.startswith("Ada Admin")
    progress = [m for m in thread(portal.slack, STAFF_CHANNEL, ts) if m.ts != ts]
    assert len([m for m in progress if any("Trial run" in t for t in (m.text, *m.edits))]) == 1
    assert final[0].ts == jobs[0].job.anchor.message_ts  # notify updated the bot's progress message
    assert portal.slack.downloads == [file["id"]]
    workbooks = await eventually(lambda: [f for f in portal.slack.files if f.thread_ts == ts], "the annotated workbook")
    assert workbooks[0].channel_id == STAFF_CHANNEL and workbooks[0].data[:2] == b"PK"


async def test_upload_button_starts_one_upload_however_often_it_is_clicked(portal: Bot) -> None:
    await roster(portal)
    ts, _file, message, _shared = file_events(
        portal, "parents.csv", parents_csv([("parent01", "Pat", "Smith", "pat@example.org", "100234"),
                                            ("parent02", "Lee", "Smith", "lee@example.org", "100235")]))
    await portal.wire.event(message)
    found = await eventually(lambda: button(thread(portal.slack, STAFF_CHANNEL, ts), "imports_upload"),
                             "the Upload button", timeout=60)
    result, element = found
    assert element["confirm"]
    clicked = {"ts": result.ts, "thread_ts": ts, "text": result.text, "blocks": result.blocks}
    assert (await portal.wire.click("imports_upload", element["value"], ADMIN, STAFF_CHANNEL, clicked)).status == 200
    assert (await portal.wire.click("imports_upload", element["value"], ADMIN, STAFF_CHANNEL, clicked)).status == 200

    def uploads() -> Any:
        return [m for m in thread(portal.slack, STAFF_CHANNEL, ts) if "Upload of parents.csv finished" in m.text]

    await eventually(uploads, "the upload's final message", timeout=90)
    kinds = [job.job.kind for job in await import_jobs(portal)]
    assert kinds.count("upload") == 1 and kinds.count("trial_run") == 1
    started = [m for m in thread(portal.slack, STAFF_CHANNEL, ts) if any("Upload running" in t
                                                                          for t in (m.text, *m.edits))]
    assert len(started) == 1
    account = await portal.services.accounts.GetAccount(A.GetAccountRequest(username_or_email="parent02"))
    assert list(account.student_ids) == ["100235"]


async def test_template_codes_and_jobs(portal: Bot) -> None:
    await roster(portal)
    await answer_to(portal, "template grad 2031")
    shared = await eventually(lambda: portal.slack.files, "the template upload")
    assert shared[0].channel_id == STAFF_CHANNEL and shared[0].filename.endswith(".xlsx")
    assert shared[0].data[:2] == b"PK"
    codes = await answer_to(portal, "codes", nth=1)
    assert "E_USERNAME_SHORT" in codes
    jobs = await answer_to(portal, "jobs", nth=2)
    assert "Jobs:" in jobs
    usage = await answer_to(portal, "template someday", nth=3)
    assert "all | school NAME" in usage


async def test_account_buttons_act_once_and_answer_privately(accounts_portal: Bot) -> None:
    bot = accounts_portal
    await make_account(bot)
    await answer_to(bot, "account jsmith01")
    card = bot.slack.calls_to("chat.postEphemeral", ok_only=True)[-1].params
    buttons = {e["action_id"]: e for b in card["blocks"] if b["type"] == "actions" for e in b["elements"]}
    assert set(buttons) >= {"account_reset", "account_send_login", "account_2fa_on", "account_disable",
                            "account_delete"}
    # Every button that changes something asks first; those that open a form do not (submitting it is the ask).
    forms = {"account_edit", "account_password", "account_permissions"}
    assert all(button["confirm"] for action, button in buttons.items() if action not in forms)
    ephemeral = {"ts": "1700000000.000999"}
    assert (await bot.wire.click("account_2fa_on", "jsmith01", ADMIN, STAFF_CHANNEL, ephemeral,
                                 ephemeral=True)).status == 200
    turned = await eventually(lambda: ephemeral_to(bot.slack, ADMIN)[1:], "the two-factor answer")
    assert "Two-factor sign-in is now required for jsmith01" in turned[0]
    await bot.wire.click("account_reset", "jsmith01", ADMIN, STAFF_CHANNEL, ephemeral, ephemeral=True)
    reset = await eventually(lambda: ephemeral_to(bot.slack, ADMIN)[2:], "the reset answer")
    assert "reset link is on its way" in reset[0]
    asked = await answer_to(bot, "delete jsmith01", nth=3)
    assert "Delete account jsmith01?" in asked
    await bot.wire.click("account_delete", "jsmith01", ADMIN, STAFF_CHANNEL, {"ts": "1700000000.000998"},
                         ephemeral=True)
    deleted = await eventually(lambda: ephemeral_to(bot.slack, ADMIN)[4:], "the delete answer")
    assert "Account jsmith01 deleted." in deleted[0]
    gone = await answer_to(bot, "account jsmith01", nth=5)
    assert "jsmith01" in gone and "Reset password" not in gone
