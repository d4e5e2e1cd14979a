"""Account care from Slack, end to end through the Slack wire protocol: the real services (on SQLite, and on
PostgreSQL when PORTAL_TEST_DATABASE_URL is set), the bot in HTTP mode, notify delivering to a test SMTP server, and
the parents' /login page: edit and rename, staff-set passwords, policies, permissions, contact drift, contact
cards, staff clashes and the logons export; and bad input answered with the fix."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from openpyxl import load_workbook

from portal.accounts.v1 import accounts_pb2
from tests.accounts.test_web_pages import _answers
from tests.accounts.web_client import WebClient
from tests.bot.conftest import ADMIN, STAFF_CHANNEL, Bot, _start
from tests.bot.wire import ephemeral_to, eventually
from tests.imports.flows import all_problems, trial_run, upload
from tests.support.slack_api import SlackApiStandIn
from tests.support.smtp import SmtpServer
from tests.support.workbooks import ROSTER_HEADER, xlsx_bytes

A = accounts_pb2
PASSWORD = "Correct1Horse"
_clicks = iter(range(1, 10_000))


@pytest.fixture
def mail() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
async def care(tmp_path: Path, database_url: str, slack: SlackApiStandIn, mail: SmtpServer) -> AsyncIterator[Bot]:
    async for bot in _start(tmp_path, database_url, slack, ("accounts", "imports", "notify"),
                            **mail.settings_overrides()):
        yield bot


async def say(bot: Bot, command: str) -> str:
    """The next private answer to a command."""
    before = len(ephemeral_to(bot.slack, ADMIN))
    assert (await bot.wire.command(command, ADMIN)).status == 200
    return str((await eventually(lambda: ephemeral_to(bot.slack, ADMIN)[before:], f"the answer to {command}"))[0])


def buttons(bot: Bot) -> dict[str, dict[str, Any]]:
    """The buttons of the last private answer, by action id."""
    card = bot.slack.calls_to("chat.postEphemeral", ok_only=True)[-1].params
    return {e["action_id"]: e for b in card.get("blocks") or [] if b["type"] == "actions" for e in b["elements"]}


async def click(bot: Bot, action_id: str, value: str | None = None, ts: str = "") -> str:
    """Click a button of the last answer (its confirm dialog accepted) and return the private answer. The same
    `ts` is the same click delivered again."""
    button = buttons(bot)[action_id] if value is None else {"value": value}
    assert value is not None or button.get("confirm") or action_id.startswith(("account_edit", "account_password",
                                                                                 "account_permissions"))
    before = len(ephemeral_to(bot.slack, ADMIN))
    answer = await bot.wire.click(action_id, value if value is not None else button["value"], ADMIN, STAFF_CHANNEL,
                                  {"ts": ts or f"1700000000.{next(_clicks):06d}"}, ephemeral=True)
    assert answer.status == 200
    if action_id.startswith(("account_edit", "account_password", "account_permissions")):
        return ""
    return str((await eventually(lambda: ephemeral_to(bot.slack, ADMIN)[before:], f"the answer to {action_id}"))[0])


async def opened_form(bot: Bot, count: int) -> dict[str, Any]:
    """The `count`th modal the bot opened."""
    opened = await eventually(lambda: bot.slack.calls_to("views.open", ok_only=True)[count - 1:], "views.open")
    return {**opened[0].params["view"], "id": f"V0CARE{count:04d}"}


async def roster(bot: Bot) -> None:
    await bot.services.accounts.BatchUpsertRoster(A.BatchUpsertRosterRequest(students=[
        A.Student(id=sid, first_name=first, last_name="Smith", grad_year=year, group="7B", school=school)
        for sid, first, year, school in (("N1", "Sam", 2031, "North High"), ("N2", "Sally", 2033, "North High"),
                                         ("H1", "Hal", 2030, "Hillside"))]), timeout=30)


async def parent(bot: Bot, username: str, email: str, students: tuple[str, ...] = ("N1",), **extra: Any) -> None:
    names = {"first_name": "Pat", "last_name": "Smith", **extra}
    await bot.services.accounts.CreateAccount(A.CreateAccountRequest(
        account=A.Account(username=username, email=email, student_ids=list(students), **names), password=PASSWORD),
        timeout=30)


async def web_login(bot: Bot, username: str, password: str) -> str:
    """Sign in on the parents' /login page: the path it sends the parent to."""
    client = WebClient(bot.settings.web_port)
    try:
        await eventually(lambda: _answers(client), "the parents' pages")
        await client.get("/login")
        return urlsplit((await client.post("/login", {"username": username, "password": password})).url).path
    finally:
        await client.close()


async def test_edit_and_rename_keep_sign_ins_email_the_parent_and_refuse_a_clash(care: Bot, mail: SmtpServer) -> None:
    bot = care
    await roster(bot)
    await parent(bot, "jsmith01", "jane@old.example")
    await bot.services.accounts.CreateAccount(A.CreateAccountRequest(account=A.Account(
        username="staff001", first_name="Sid", last_name="Staff", email="sid@district.example",
        type=A.ACCOUNT_TYPE_STAFF, schools=["Central Office"]), password=PASSWORD), timeout=30)
    assert (await bot.services.accounts.Authenticate(A.AuthenticateRequest(username="jsmith01", password=PASSWORD),
                                                     timeout=30)).outcome == A.AUTHENTICATE_OUTCOME_OK

    asked = await say(bot, "rename jsmith01 jane.smith")
    assert "Rename jsmith01 to jane.smith?" in asked and buttons(bot)["account_rename"]["confirm"]
    done = await click(bot, "account_rename")
    assert "jsmith01 is now jane.smith" in done
    history = await bot.services.accounts.ListSignIns(A.ListSignInsRequest(username="jane.smith"), timeout=30)
    assert [s.success for s in history.sign_ins] == [True]
    told = await eventually(lambda: mail.to("jane@old.example"), "the rename notice", timeout=60)
    assert "your username is now jane.smith (it was jsmith01)" in told[0].part("text/plain")

    await say(bot, "rename jane.smith STAFF001")
    refused = await click(bot, "account_rename")
    assert "already taken by the staff account 'staff001' at Central Office" in refused

    # The Edit button: the form opens filled in; a taken username is shown on its field; a new email is saved
    # and told at both addresses.
    await say(bot, "account jane.smith")
    await click(bot, "account_edit")
    view = await opened_form(bot, 1)
    initial = {b["block_id"]: b["element"].get("initial_value") or (b["element"].get("initial_option") or {})
               .get("value") for b in view["blocks"]}
    assert initial == {"first_name": "Pat", "last_name": "Smith", "email": "jane@old.example",
                       "username": "jane.smith", "type": "guardian", "status": "enabled"}
    values = {**initial, "username": "staff001"}
    answer = await bot.wire.submit_view(view, values, ADMIN)
    assert answer.json()["response_action"] == "errors"
    assert "staff001" in answer.json()["errors"]["username"]
    answer = await bot.wire.submit_view(view, {**initial, "email": "jane@new.example", "last_name": "Jones"}, ADMIN)
    assert answer.status == 200 and not answer.text
    saved = await eventually(lambda: [t for t in ephemeral_to(bot.slack, ADMIN) if "jane.smith saved" in t], "saved")
    assert "both told" in saved[0]
    account = await bot.services.accounts.GetAccount(A.GetAccountRequest(username_or_email="jane.smith"), timeout=30)
    assert (account.email, account.last_name) == ("jane@new.example", "Jones")
    await eventually(lambda: mail.to("jane@new.example") and len(mail.to("jane@old.example")) == 2,
                     "the email-change notices at both addresses", timeout=60)
    assert "its email address is now jane@new.example" in mail.to("jane@new.example")[0].part("text/plain")

    disabled = await bot.services.accounts.UpdateAccount(A.UpdateAccountRequest(
        account=A.Account(username="jane.smith", status=A.ACCOUNT_STATUS_DISABLED),
        update_mask={"paths": ["status"]}), timeout=30)
    assert disabled.status == A.ACCOUNT_STATUS_DISABLED
    assert "jane.smith is enabled" in await say(bot, "enable jane.smith")


async def test_a_staff_set_password_forces_a_change_at_login_only_when_ticked(care: Bot) -> None:
    bot = care
    await roster(bot)
    await parent(bot, "parent01", "pat@example.org")
    await say(bot, "account parent01")
    await click(bot, "account_password")
    view = await opened_form(bot, 1)
    box = next(b for b in view["blocks"] if b["block_id"] == "must_change")
    assert [o["value"] for o in box["element"]["initial_options"]] == ["must_change"]  # the policy's default
    assert "At least 8 characters" in next(b for b in view["blocks"] if b["block_id"] == "password")["hint"]["text"]
    weak = await bot.wire.submit_view(view, {"password": "short", "must_change": ["must_change"]}, ADMIN)
    assert "at least 8 characters" in weak.json()["errors"]["password"]
    done = await bot.wire.submit_view(view, {"password": "Chosen-Staff9", "must_change": ["must_change"]}, ADMIN)
    assert done.status == 200 and not done.text
    assert await web_login(bot, "parent01", "Chosen-Staff9") == "/change-password"
    for text in ephemeral_to(bot.slack, ADMIN):
        assert "Chosen-Staff9" not in text  # typed in the form only, never in a message

    assert (await bot.wire.command("password parent01", ADMIN)).status == 200
    view = await opened_form(bot, 2)
    done = await bot.wire.submit_view(view, {"password": "Kept-By-Parent8", "must_change": []}, ADMIN)
    assert done.status == 200 and not done.text
    assert await web_login(bot, "parent01", "Kept-By-Parent8") == "/account"
    answer = await bot.services.accounts.Authenticate(A.AuthenticateRequest(
        username="parent01", password="Kept-By-Parent8"), timeout=30)
    assert answer.outcome == A.AUTHENTICATE_OUTCOME_OK and not answer.must_change_password


async def test_a_school_policy_requiring_two_factor_sends_the_parent_to_enrolment(care: Bot) -> None:
    bot = care
    await roster(bot)
    await parent(bot, "parent01", "pat@example.org", ("N1",))
    await parent(bot, "parent02", "hal@example.org", ("H1",))
    bad = await say(bot, "policy set school North High min_password_length 5")
    assert "min_password_length must be from 8 to 64 characters; 5 is out of range" in bad
    unknown = await say(bot, "policy set school Nowhere High two_factor required")
    assert "No student or account belongs to a school called 'Nowhere High'" in unknown
    asked = await say(bot, "policy set school north high two_factor required")
    assert "Set two_factor of school North High to required?" in asked
    saved = await click(bot, "policy_set")
    assert "Policy of school North High saved: two_factor required" in saved
    assert await web_login(bot, "parent01", PASSWORD) == "/two-factor"
    answer = await bot.services.accounts.Authenticate(A.AuthenticateRequest(username="parent01", password=PASSWORD),
                                                      timeout=30)
    assert answer.must_enroll_two_factor
    assert await web_login(bot, "parent02", PASSWORD) == "/account"
    shown = await say(bot, "account parent01")
    assert "two-factor: required (North High)" in shown
    listed = await say(bot, "policy show")
    assert "North High: two_factor required" in listed.replace("*", "")
    events = await bot.services.accounts.ListAuditEvents(A.ListAuditEventsRequest(
        target="policy:school:north high"), timeout=30)
    assert events.events[0].actor_name == "Ada Admin"


async def test_permissions_from_chat_survive_adding_a_sibling(care: Bot) -> None:
    bot = care
    await roster(bot)
    await parent(bot, "parent01", "pat@example.org", ("N1",))
    changed = await say(bot, "permissions parent01 N1 -messages -reports")
    assert "parent01 may now see of N1: grades, attendance." in changed
    assert "N2" in await say(bot, "link parent01 N2")
    account = await bot.services.accounts.GetAccount(A.GetAccountRequest(username_or_email="parent01"), timeout=30)
    assert {link.student_id: list(link.permissions) for link in account.links} == {
        "N1": ["grades", "attendance"], "N2": ["grades", "attendance", "reports", "messages"]}
    # The account view's button opens a form with a box per permission, ticked as the link stands.
    await say(bot, "account parent01")
    permission_buttons = [v for k, v in buttons(bot).items() if k == "account_permissions"]
    assert permission_buttons
    await click(bot, "account_permissions", '{"username":"parent01","student_id":"N2"}')
    view = await opened_form(bot, 1)
    ticked = [o["value"] for o in view["blocks"][0]["element"]["initial_options"]]
    assert ticked == ["grades", "attendance", "reports", "messages"]
    done = await bot.wire.submit_view(view, {"permissions": ["grades"]}, ADMIN)
    assert done.status == 200 and not done.text
    account = await bot.services.accounts.GetAccount(A.GetAccountRequest(username_or_email="parent01"), timeout=30)
    assert {link.student_id: list(link.permissions) for link in account.links} == {
        "N1": ["grades", "attendance"], "N2": ["grades"]}
    access = await bot.services.accounts.CheckStudentAccess(A.CheckStudentAccessRequest(
        username="parent01", student_id="N2", permission="attendance"), timeout=30)
    assert (access.allowed, access.reason) == (False, "PERMISSION_OFF")


async def test_bad_input_gets_a_clear_reply_naming_the_fix(care: Bot) -> None:
    bot = care
    await roster(bot)
    await parent(bot, "parent01", "pat@example.org")
    assert "No account has the username or email address 'nobody99'" in await say(bot, "account nobody99")
    assert "No account has the username 'nobody99'" in await say(bot, "enable nobody99")
    assert ("'gradez' is not a permission: use grades, attendance, reports or messages"
            in await say(bot, "permissions parent01 N1 +gradez"))
    assert "Put + or - before each permission" in await say(bot, "permissions parent01 N1 grades")
    assert "not linked to student N9" in await say(bot, "permissions parent01 N9 +grades")
    assert "invite_expiry_days must be from 1 to 60 days; 90 is out of range" in await say(
        bot, "policy set district invite_expiry_days 90")
    assert "two_factor is off, optional or required" in await say(bot, "policy set district two_factor sometimes")
    assert "Usage: `/portal rename OLD NEW`" in await say(bot, "rename parent01")
    assert "No roster contact has the id or email address 'C404'" in await say(bot, "contact C404")


ROSTER = [ROSTER_HEADER,
          ["N1", "Sam", "Smith", 2031, "7B", "North High", "C1", "Jane", "Smith", "jane@old.example", "Mother", "Y",
           "Y", ""]]


async def test_a_roster_change_of_email_is_reported_then_applied_from_the_drift_workbook(care: Bot,
                                                                                       mail: SmtpServer) -> None:
    bot = care
    trial = await trial_run(bot.services, "roster.xlsx", xlsx_bytes(ROSTER))  # type: ignore[arg-type]
    await upload(bot.services, trial.job.id)  # type: ignore[arg-type]
    await parent(bot, "jane@old.example", "jane@old.example", contact_id="C1", first_name="Jane")
    assert "Every parent account matches its roster contact" in await say(bot, "drift")

    changed = [ROSTER[0], [*ROSTER[1][:9], "jane@new.example", *ROSTER[1][10:]]]
    trial = await trial_run(bot.services, "roster-2.xlsx", xlsx_bytes(changed))  # type: ignore[arg-type]
    warned = [p for p in await all_problems(bot.services, trial.job.id)  # type: ignore[arg-type]
              if p.code == "W_ACCOUNT_DRIFT"]
    assert warned and warned[0].column == "CONTACT_EMAIL" and "/portal drift" in warned[0].message
    await upload(bot.services, trial.job.id)  # type: ignore[arg-type]

    listed = await say(bot, "drift")
    assert "1 parent account no longer match their roster contact" in listed
    assert "email jane@old.example → jane@new.example" in listed
    posted = await eventually(lambda: [f for f in bot.slack.files if f.filename.startswith("contact-drift-")],
                              "the drift workbook")
    sheet = load_workbook(io.BytesIO(posted[0].data))["Contact drift"]
    assert [row[:5] for row in sheet.iter_rows(min_row=2, values_only=True)] == [
        ("jane@old.example", "C1", "email", "jane@old.example", "jane@new.example"),
        ("jane@old.example", "C1", "username", "jane@old.example", "jane@new.example")]
    button = buttons(bot)["drift_apply_all"]
    assert button["confirm"]["title"]["text"] == "Apply all?"
    applied = await click(bot, "drift_apply_all", ts="1700000001.000001")
    assert "1 account updated to match the roster" in applied
    account = await bot.services.accounts.GetAccount(A.GetAccountRequest(username_or_email="jane@new.example"),
                                                     timeout=30)
    assert account.email == "jane@new.example"
    await eventually(lambda: mail.to("jane@new.example") and mail.to("jane@old.example"),
                     "the notice at both addresses", timeout=60)
    for address in ("jane@new.example", "jane@old.example"):
        text = mail.to(address)[0].part("text/plain")
        assert "its email address is now jane@new.example (it was jane@old.example)" in text
        assert "your username is now jane@new.example" in text
    # The same click delivered again: the first answer, nothing applied or emailed twice.
    assert "1 account updated" in await click(bot, "drift_apply_all", button["value"], ts="1700000001.000001")
    assert len(mail.to("jane@new.example")) == 1 and len(mail.to("jane@old.example")) == 1


async def test_contact_card_clashes_and_the_logons_export_from_chat(care: Bot) -> None:
    bot = care
    await roster(bot)
    await bot.services.accounts.BatchUpsertRoster(A.BatchUpsertRosterRequest(
        contacts=[A.Contact(id="C1", first_name="Tess", last_name="Teacher", email="tess@district.example"),
                  A.Contact(id="C2", first_name="Jane", last_name="Smith", email="jane@example.org")],
        relationships=[A.RosterRelationship(student_id="N1", contact_id="C1", relationship="mother",
                                            parental_responsibility=True),
                       A.RosterRelationship(student_id="N2", contact_id="C2", relationship="mother",
                                            parental_responsibility=True)]), timeout=30)
    await bot.services.accounts.CreateAccount(A.CreateAccountRequest(account=A.Account(
        username="tess@district.example", first_name="Tess", last_name="Teacher", email="tess@district.example",
        type=A.ACCOUNT_TYPE_STAFF, schools=["Central Office"]), password=PASSWORD), timeout=30)
    await parent(bot, "jsmith01", "jane@example.org", ("N2", "H1"), contact_id="C2")

    card = await say(bot, "contact C1")
    assert "Tess Teacher (C1)" in card and "S_STAFF_EMAIL" in card and "mother" in card
    card = await say(bot, "contact jane@example.org")
    assert "jsmith01" in card and "N2" in card
    clashes = await say(bot, "clashes")
    assert "tess@district.example" in clashes and "Central Office" in clashes and "North High" in clashes

    answer = await say(bot, "logons school north high")
    assert "1 parent logon (school north high)" in answer
    posted = await eventually(lambda: [f for f in bot.slack.files if f.filename.startswith("parent-logons-")],
                              "the logons workbook")
    rows = list(load_workbook(io.BytesIO(posted[0].data))["Parent logons"].iter_rows(values_only=True))
    account = await bot.services.accounts.GetAccount(A.GetAccountRequest(username_or_email="jsmith01"), timeout=30)
    assert [r[:5] for r in rows[1:]] == [(account.username, account.first_name, account.last_name, account.email,
                                          "invited")]
    assert rows[1][5] == ("H1 Hal Smith (Hillside): grades, attendance, reports, messages; "
                          "N2 Sally Smith (North High): grades, attendance, reports, messages")
