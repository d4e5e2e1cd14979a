"""Password resets through gRPC: the preview equals the run, old links stop working, two-factor turned on by a reset
is required at the next sign-in, the emailed link sets the password once, and "send login details" emails a
password that must be changed. (Notify is not running here: the emails stay in the accounts outbox, where the
test reads them.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import grpc
import pytest
from sqlalchemy import select

from plumbing.config import Settings
from plumbing.db import Database
from portal.accounts.v1 import accounts_pb2 as pb
from portal.common.v1 import jobs_pb2
from services.accounts.models import accounts_outbox
from tests.accounts.conftest import STAFF_CALL, add_students, create_account, details, failure
from tests.accounts.job_support import finished, rows, workbook
from tests.support.services import make_settings

PASSWORD = "Correct1Horse"
NEW_PASSWORD = "Quiet-Harbour7"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    # Notify is not running: the job writes its workbook at once instead of waiting for deliveries.
    return make_settings(tmp_path / "data", database_url, reset_delivery_wait_seconds=0)


def outbox(database: Database, template: str = "") -> list[dict[str, Any]]:
    with database.read() as session:
        found = [dict(r._mapping) for r in session.execute(select(accounts_outbox).order_by(accounts_outbox.c.id))]
    return [{**r, "data": json.loads(r["data"])} for r in found if not template or r["template"] == template]


def token_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]


def spec(selector: jobs_pb2.Selector, two_factor: bool = False, password: bool = False) -> pb.BulkResetSpec:
    return pb.BulkResetSpec(selector=selector, enable_two_factor=two_factor,
                            delivery=pb.RESET_DELIVERY_PASSWORD if password else pb.RESET_DELIVERY_LINK)


async def group_of_parents(stub: Any) -> None:
    """Group 7B: three parents who can be reset (one never set a password), one disabled, one without email; a
    staff account and a parent of 8C that no group-7B reset touches."""
    await add_students(stub, "s1", "s2", "s3", group="7B")
    await add_students(stub, "s9", group="8C")
    await create_account(stub, "parent01", PASSWORD, student_ids=["s1"])
    await create_account(stub, "parent02", PASSWORD, student_ids=["s2"], two_factor=pb.TWO_FACTOR_STATE_OFF)
    await create_account(stub, "invited03", student_ids=["s3"])
    await create_account(stub, "disabled04", PASSWORD, student_ids=["s1"], status=pb.ACCOUNT_STATUS_DISABLED)
    await create_account(stub, "noemail05", PASSWORD, student_ids=["s2"], email="")
    await create_account(stub, "teacher06", PASSWORD, type=pb.ACCOUNT_TYPE_STAFF, student_ids=["s1"])
    await create_account(stub, "other07", PASSWORD, student_ids=["s9"])


async def test_the_preview_equals_the_run(accounts) -> None:
    await group_of_parents(accounts)
    chosen = spec(jobs_pb2.Selector(group="7b"), two_factor=True)
    preview = await accounts.PreviewBulkReset(pb.PreviewBulkResetRequest(spec=chosen, sample_size=50),
                                              metadata=STAFF_CALL)
    assert preview.reset_count == 3 and preview.invitation_count == 1 and preview.two_factor_count == 3
    assert list(preview.sample_usernames) == ["invited03", "parent01", "parent02"]
    assert [(s.username, s.reason) for s in preview.skipped] == [("disabled04", "ACCOUNT_DISABLED"),
                                                                ("noemail05", "NO_EMAIL")]
    assert preview.skipped_count == 2

    job = await accounts.StartBulkReset(pb.StartBulkResetRequest(
        spec=chosen, request_id="reset-7b", previewed_count=preview.reset_count,
        anchor=jobs_pb2.SlackAnchor(user_id="U0OFFICE")), metadata=STAFF_CALL)
    again = await accounts.StartBulkReset(pb.StartBulkResetRequest(spec=chosen, request_id="reset-7b"),
                                          metadata=STAFF_CALL)
    assert again.id == job.id and job.kind == "bulk_reset"
    done = await finished(accounts, job.id)
    assert done.attributes["invitation"] == "1" and done.attributes["reset"] == "2"
    assert done.attributes["skipped"] == "2" and done.attributes["two_factor"] == "3"
    assert done.done == done.total == 5
    assert "3 accounts reset" in done.summary and "2 skipped" in done.summary

    filename, book = await workbook(accounts, job.id)
    assert filename.endswith(".xlsx") and book.sheetnames == ["Reset", "Skipped"]
    reset = rows(book, "Reset")
    assert reset[0][:4] == ("Username", "Name", "Email", "Sent")
    assert [r[0] for r in reset[1:]] == list(preview.sample_usernames)
    assert {r[0]: r[3] for r in reset[1:]} == {"invited03": "invitation link", "parent01": "reset link",
                                               "parent02": "reset link"}
    assert all(r[4] == "yes" and r[5] == "not delivered yet" for r in reset[1:])
    assert [r[0] for r in rows(book, "Skipped")[1:]] == [s.username for s in preview.skipped]

    for name in ("teacher06", "other07", "disabled04"):
        untouched = await accounts.GetAccount(pb.GetAccountRequest(username_or_email=name))
        assert untouched.two_factor == pb.TWO_FACTOR_STATE_OFF


async def test_old_links_stop_working_and_the_new_link_sets_the_password_once(accounts, database) -> None:
    await create_account(accounts, "jsmith01", PASSWORD)
    old = await accounts.IssueSetPasswordToken(pb.IssueSetPasswordTokenRequest(
        username="jsmith01", purpose=pb.TOKEN_PURPOSE_RESET), metadata=STAFF_CALL)
    chosen = spec(jobs_pb2.Selector(usernames=jobs_pb2.UsernameList(usernames=["JSMITH01", "nobody99"])))
    preview = await accounts.PreviewBulkReset(pb.PreviewBulkResetRequest(spec=chosen), metadata=STAFF_CALL)
    assert preview.reset_count == 1
    assert [(s.username, s.reason) for s in preview.skipped] == [("nobody99", "ACCOUNT_NOT_FOUND")]
    job = await accounts.StartBulkReset(pb.StartBulkResetRequest(spec=chosen), metadata=STAFF_CALL)
    done = await finished(accounts, job.id)
    assert done.attributes["reset"] == "1" and done.attributes["skipped"] == "1"

    inspected = await accounts.InspectSetPasswordToken(pb.InspectSetPasswordTokenRequest(token=old.token))
    assert inspected.state == pb.TOKEN_STATE_REVOKED
    emails = outbox(database, "password_reset")
    assert [(e["recipient"], e["job_id"]) for e in emails] == [("jsmith01@example.org", job.id)]
    link = emails[0]["data"]["link"]
    assert link.startswith("http://127.0.0.1:8080/set-password?token=")
    # The current password keeps working until the link is used.
    ok = await accounts.Authenticate(pb.AuthenticateRequest(username="jsmith01", password=PASSWORD))
    assert ok.outcome == pb.AUTHENTICATE_OUTCOME_OK
    await accounts.RedeemSetPasswordToken(pb.RedeemSetPasswordTokenRequest(token=token_of(link),
                                                                           new_password=NEW_PASSWORD))
    error = await failure(accounts.RedeemSetPasswordToken(pb.RedeemSetPasswordTokenRequest(
        token=token_of(link), new_password="Another-Pass9")))
    assert details(error)[1] == "TOKEN_USED"
    signed = await accounts.Authenticate(pb.AuthenticateRequest(username="jsmith01", password=NEW_PASSWORD))
    assert signed.outcome == pb.AUTHENTICATE_OUTCOME_OK


async def test_two_factor_turned_on_by_a_reset_is_required_at_the_next_sign_in(accounts, database) -> None:
    await create_account(accounts, "jsmith01", PASSWORD)
    answer = await accounts.ResetAccountPassword(pb.ResetAccountPasswordRequest(
        username="jsmith01", enable_two_factor=True, request_id="one-reset"), metadata=STAFF_CALL)
    assert answer.two_factor_enabled and answer.delivery == pb.RESET_DELIVERY_LINK and not answer.invitation
    assert answer.account.two_factor == pb.TWO_FACTOR_STATE_REQUIRED and answer.HasField("expire_time")
    retried = await accounts.ResetAccountPassword(pb.ResetAccountPasswordRequest(
        username="jsmith01", enable_two_factor=True, request_id="one-reset"), metadata=STAFF_CALL)
    assert retried.email == "jsmith01@example.org"
    assert len(outbox(database, "password_reset")) == 1 and len(outbox(database, "two_factor_enabled")) == 1
    signed = await accounts.Authenticate(pb.AuthenticateRequest(username="jsmith01", password=PASSWORD))
    assert signed.outcome == pb.AUTHENTICATE_OUTCOME_OK and signed.must_enroll_two_factor


async def test_send_login_details_emails_a_password_that_must_be_changed(accounts, database) -> None:
    await create_account(accounts, "jsmith01", PASSWORD)
    answer = await accounts.ResetAccountPassword(pb.ResetAccountPasswordRequest(
        username="jsmith01", delivery=pb.RESET_DELIVERY_PASSWORD), metadata=STAFF_CALL)
    assert answer.delivery == pb.RESET_DELIVERY_PASSWORD and not answer.HasField("expire_time")
    assert answer.account.must_change_password
    (email,) = outbox(database, "login_details")
    assert email["data"]["username"] == "jsmith01" and email["data"]["login_url"] == "http://127.0.0.1:8080/login"
    old = await accounts.Authenticate(pb.AuthenticateRequest(username="jsmith01", password=PASSWORD))
    assert old.outcome == pb.AUTHENTICATE_OUTCOME_INVALID_CREDENTIALS
    new = await accounts.Authenticate(pb.AuthenticateRequest(username="jsmith01", password=email["data"]["password"]))
    assert new.outcome == pb.AUTHENTICATE_OUTCOME_OK and new.must_change_password


async def test_a_reset_that_cannot_be_done_says_why(accounts) -> None:
    await create_account(accounts, "noemail01", PASSWORD, email="")
    error = await failure(accounts.ResetAccountPassword(pb.ResetAccountPasswordRequest(username="noemail01"),
                                                        metadata=STAFF_CALL))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and details(error)[1] == "NO_EMAIL"
    missing = await failure(accounts.ResetAccountPassword(pb.ResetAccountPasswordRequest(username="nobody99"),
                                                          metadata=STAFF_CALL))
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    empty = await failure(accounts.PreviewBulkReset(pb.PreviewBulkResetRequest(spec=spec(jobs_pb2.Selector(
        usernames=jobs_pb2.UsernameList()))), metadata=STAFF_CALL))
    assert empty.code() == grpc.StatusCode.INVALID_ARGUMENT
