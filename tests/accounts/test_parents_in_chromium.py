"""A parent's first visit, in headless Chromium with JavaScript off: the invitation email (read off the test SMTP
server, sent by the real notify service) leads to the set-password page; the password is typed and submitted with
the keyboard; the parent signs in; the next usage report shows that sign-in."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from portal.accounts.v1 import accounts_pb2 as pb
from portal.common.v1 import jobs_pb2
from tests.accounts.conftest import STAFF_CALL
from tests.accounts.job_support import finished, rows, workbook
from tests.support.chromium import Chromium, chromium_path
from tests.support.net import free_port
from tests.support.services import make_settings
from tests.support.smtp import SmtpServer
from tests.support.stack import eventually, running_stack

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(chromium_path() is None, reason="Chromium is not installed: apt-get install chromium")]
PASSWORD = "Quiet-Harbour7"


async def _now(value: Any) -> Any:
    return value


async def test_invitation_email_set_password_sign_in_and_the_usage_report(tmp_path: Path, database_url: str) -> None:
    smtp = SmtpServer().start()
    web_port = free_port()
    settings = make_settings(tmp_path / "data", database_url, web_port=web_port, hash_workers=1,
                             public_url=f"http://127.0.0.1:{web_port}", school_name="Hillside Academy",
                             **smtp.settings_overrides())
    try:
        async with running_stack(settings, ("accounts", "notify")) as stack:
            await stack.accounts.BatchUpsertRoster(pb.BatchUpsertRosterRequest(students=[pb.Student(
                id="100234", first_name="Sam", last_name="Smith", grad_year=2031, group="7B")]), metadata=STAFF_CALL)
            await stack.accounts.CreateAccount(pb.CreateAccountRequest(
                account=pb.Account(username="jsmith01", first_name="Jane", last_name="Smith",
                                   email="jane.smith@example.org", student_ids=["100234"]),
                send_invitation=True), metadata=STAFF_CALL)
            received = await eventually(lambda: _now(smtp.messages), bool, what="the invitation email")
            assert received[0].rcpt_tos == ("jane.smith@example.org",)
            found = re.search(r"http://\S+/set-password\?token=\S+", received[0].part("text/plain"))
            assert found, received[0].part("text/plain")

            async with Chromium.launch() as browser:
                page = await browser.new_page(javascript=False)
                await page.goto(found.group(0))
                shown = await page.text()
                assert "Hillside Academy" in shown and "jsmith01" in shown and "at least 8 characters" in shown
                assert await page.evaluate("document.scripts.length") == 0
                # The keyboard alone: the first field has focus, Tab moves to the next, Enter submits.
                assert await page.focused() == "password"
                await page.type(PASSWORD)
                await page.key("Tab")
                assert await page.focused() == "confirm"
                await page.type(PASSWORD)
                await page.submit()
                assert "Your password is set" in await page.text()

                await page.follow("Sign in")
                assert urlsplit(await page.url()).path == "/login"
                assert await page.evaluate("document.getElementById('username').value") == "jsmith01"
                assert await page.evaluate("document.querySelector('label[for=password]').textContent") == "Password"
                assert await page.focused() == "password"
                await page.type(PASSWORD)
                await page.submit()
                assert urlsplit(await page.url()).path == "/account"
                assert "You are signed in as jsmith01" in await page.text()

            today = datetime.now(UTC).date().isoformat()
            job = await stack.accounts.StartUsageReport(pb.StartUsageReportRequest(
                start_date=today, end_date=today, anchor=jobs_pb2.SlackAnchor(user_id="U0OFFICE")),
                metadata=STAFF_CALL)
            done = await finished(stack.accounts, job.id)
            assert done.attributes["sign_ins"] == "1"
            _name, book = await workbook(stack.accounts, job.id)
            assert book.sheetnames == ["Summary", "Jane Smith (jsmith01)"]
            summary = rows(book, "Summary")
            assert summary[1][:5] == ("jsmith01", "Jane Smith", "jane.smith@example.org", "Sam Smith (100234)", 1)
            sheet = rows(book, "Jane Smith (jsmith01)")
            assert len(sheet) == 2 and sheet[1][3].date().isoformat() == today
    finally:
        smtp.stop()
