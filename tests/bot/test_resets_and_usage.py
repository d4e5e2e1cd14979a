"""Resets and usage reports from Slack, end to end through the Slack wire protocol: the real services, the bot in
HTTP mode, notify delivering to a test SMTP server and posting alerts to the Slack stand-in."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from portal.accounts.v1 import accounts_pb2
from tests.bot.conftest import ADMIN, STAFF_CHANNEL, Bot, _start
from tests.bot.test_portal import answer_to, roster
from tests.bot.wire import ephemeral_to, eventually
from tests.support.slack_api import SlackApiStandIn
from tests.support.smtp import SmtpServer

A = accounts_pb2
PASSWORD = "Correct1Horse"
DM = "D" + ADMIN


@pytest.fixture
def mail() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
async def staffed(tmp_path: Path, database_url: str, slack: SlackApiStandIn, mail: SmtpServer) -> AsyncIterator[Bot]:
    async for bot in _start(tmp_path, database_url, slack, ("accounts", "imports", "notify"),
                            reset_delivery_wait_seconds=60, **mail.settings_overrides()):
        yield bot


async def parent(bot: Bot, username: str, email: str, students: tuple[str, ...] = ("100234",)) -> None:
    await bot.services.accounts.CreateAccount(A.CreateAccountRequest(
        account=A.Account(username=username, first_name="Pat", last_name=username.title(), email=email,
                          student_ids=list(students)), password=PASSWORD), timeout=30)


def last_buttons(bot: Bot) -> dict[str, dict[str, Any]]:
    card = bot.slack.calls_to("chat.postEphemeral", ok_only=True)[-1].params
    return {e["action_id"]: e for b in card.get("blocks") or [] if b["type"] == "actions" for e in b["elements"]}


def dm_files(bot: Bot, prefix: str) -> list[Any]:
    return [f for f in bot.slack.files if f.channel_id == DM and f.filename.startswith(prefix)]


async def test_reset_previews_then_one_confirmed_job_reports_by_dm(staffed: Bot, mail: SmtpServer) -> None:
    bot = staffed
    await roster(bot)
    await parent(bot, "parent01", "pat.one@example.org")
    await parent(bot, "parent02", "bounce@example.org", ("100235",))
    await parent(bot, "parent03", "", ("100235",))
    mail.reject_recipient("bounce@example.org")

    preview = await answer_to(bot, "reset group 7B 2fa")
    assert "Reset 2 accounts (parents of group 7B)?" in preview and "two-factor sign-in is turned on for 2" in preview
    assert "parent03: the account has no email address" in preview
    button = last_buttons(bot)["bulk_reset_start"]
    assert button["confirm"] and button["style"] == "danger"
    for ts in ("1700000000.000101", "1700000000.000102"):
        answer = await bot.wire.click("bulk_reset_start", button["value"], ADMIN, STAFF_CHANNEL, {"ts": ts},
                                      ephemeral=True)
        assert answer.status == 200
    started = await eventually(lambda: ephemeral_to(bot.slack, ADMIN)[1:], "the started answers", timeout=60)
    assert "Bulk reset started" in started[0]

    files = await eventually(lambda: dm_files(bot, "bulk-reset-"), "the reset workbook by DM", timeout=120)
    jobs = await bot.services.accounts.ListJobs(A.ListJobsRequest(), timeout=10)
    assert [j.kind for j in jobs.jobs].count("bulk_reset") == 1
    book = load_workbook(io.BytesIO(files[0].data))
    reset = {row[0]: row for row in book["Reset"].iter_rows(min_row=2, values_only=True)}
    assert set(reset) == {"parent01", "parent02"}
    assert reset["parent01"][5] == "sent" and reset["parent02"][5] == "FAILED" and "550" in reset["parent02"][6]
    assert [row[0] for row in book["Skipped"].iter_rows(min_row=2, values_only=True)] == ["parent03"]
    alert = [m for m in bot.slack.messages if m.channel == DM and "Bulk reset finished" in m.text]
    assert alert and "1 email failed" in alert[0].text
    account = await bot.services.accounts.GetAccount(A.GetAccountRequest(username_or_email="parent01"))
    assert account.two_factor == A.TWO_FACTOR_STATE_REQUIRED
    assert any("set-password?token=" in m.part("text/plain") for m in mail.to("pat.one@example.org"))


async def test_usage_sends_the_workbook_by_dm_and_jobs_lists_it(staffed: Bot) -> None:
    bot = staffed
    await roster(bot)
    await parent(bot, "parent01", "pat.one@example.org")
    signed = await bot.services.accounts.Authenticate(A.AuthenticateRequest(username="parent01", password=PASSWORD),
                                                      timeout=30)
    assert signed.outcome == A.AUTHENTICATE_OUTCOME_OK
    today = datetime.now(UTC).date().isoformat()
    answer = await answer_to(bot, f"usage {today} {today}")
    assert "is being prepared" in answer and "direct message" in answer
    files = await eventually(lambda: dm_files(bot, "portal-usage-"), "the usage workbook by DM", timeout=120)
    book = load_workbook(io.BytesIO(files[0].data))
    assert book.sheetnames == ["Summary", "Pat Parent01 (parent01)"]
    assert [row[4] for row in book["Summary"].iter_rows(min_row=2, values_only=True)] == [1]
    jobs = await answer_to(bot, "jobs", nth=1)
    assert "Usage report" in jobs and "succeeded" in jobs
    bad = await answer_to(bot, "usage 2026-13-01 2026-12-31", nth=2)
    assert "YYYY-MM-DD" in bad


async def test_send_login_details_from_the_account_view(staffed: Bot, mail: SmtpServer) -> None:
    bot = staffed
    await roster(bot)
    await parent(bot, "parent01", "pat.one@example.org")
    await answer_to(bot, "account parent01")
    assert "account_send_login" in last_buttons(bot)
    await bot.wire.click("account_send_login", "parent01", ADMIN, STAFF_CHANNEL, {"ts": "1700000000.000201"},
                         ephemeral=True)
    answer = await eventually(lambda: ephemeral_to(bot.slack, ADMIN)[1:], "the login details answer")
    assert "Login details" in answer[0] and "pat.one@example.org" in answer[0]
    emails = await eventually(lambda: mail.to("pat.one@example.org"), "the login details email", timeout=60)
    assert "Password:" in emails[0].part("text/plain")
    old = await bot.services.accounts.Authenticate(A.AuthenticateRequest(username="parent01", password=PASSWORD),
                                                   timeout=30)
    assert old.outcome == A.AUTHENTICATE_OUTCOME_INVALID_CREDENTIALS
