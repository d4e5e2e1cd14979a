"""The parents' pages over HTTP, served by the accounts process: security headers and CSRF, set-password links
(used and expired ones offer a new link), sign-in with must-change-password and two-factor enrolment required by
staff, the code page, forgot-password's single answer, throttling, sessions kept in the database."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from sqlalchemy import select
from yarl import URL

from plumbing.config import Settings
from plumbing.db import Database
from portal.accounts.v1 import accounts_pb2 as pb
from services.accounts import credentials
from services.accounts.models import WebSessionRecord, accounts_outbox
from tests.accounts.conftest import STAFF_CALL, create_account
from tests.accounts.web_client import WebClient
from tests.support.stack import eventually

PASSWORD = "Correct1Horse"
NEW_PASSWORD = "Quiet-Harbour7"


@pytest.fixture
async def browser(accounts: Any, settings: Settings) -> AsyncIterator[WebClient]:
    client = WebClient(settings.web_port)
    await eventually(lambda: _answers(client), bool, what="the web pages listening")
    try:
        yield client
    finally:
        await client.close()


async def _answers(client: WebClient) -> bool:
    try:
        return (await client.get("/healthz")).status == 200
    except OSError:
        return False


async def issue(stub: Any, username: str) -> str:
    answer = await stub.IssueSetPasswordToken(pb.IssueSetPasswordTokenRequest(
        username=username, purpose=pb.TOKEN_PURPOSE_INVITATION), metadata=STAFF_CALL)
    return str(answer.token)


def emails(database: Database, template: str) -> list[dict[str, Any]]:
    with database.read() as session:
        found = session.execute(select(accounts_outbox).where(accounts_outbox.c.template == template)
                                .order_by(accounts_outbox.c.id)).all()
    return [{**dict(r._mapping), "data": json.loads(r.data)} for r in found]


async def test_pages_carry_security_headers_and_forms_need_their_csrf_token(browser: WebClient) -> None:
    page = await browser.get("/login")
    assert page.status == 200 and "Parent Portal" in page.plain and "Sign in" in page.plain
    headers = page.headers
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY" and headers["Cache-Control"] == "no-store"
    assert headers["Referrer-Policy"] == "no-referrer" and headers["X-Content-Type-Options"] == "nosniff"
    assert '<label for="username">' in page.text and '<label for="password">' in page.text
    assert "<script" not in page.text and "http" not in page.text.split("<body>", 1)[1]
    refused = await browser.post("/login", {"username": "jsmith01", "password": PASSWORD}, csrf=False)
    assert refused.status == 403 and "This form has expired" in refused.plain
    # A token from another browser (another CSRF key) is refused too.
    other = WebClient(int(browser.base.rsplit(":", 1)[1]))
    try:
        await other.get("/login")
        forged = await browser.post("/login", {"username": "jsmith01", "password": PASSWORD,
                                               "csrf_token": other.token()}, csrf=False)
        assert forged.status == 403
    finally:
        await other.close()
    css = await browser.get("/static/portal.css")
    assert css.status == 200 and "focus-visible" in css.text


async def test_a_link_sets_the_password_once_and_a_used_link_offers_a_new_one(accounts, browser, database) -> None:
    await create_account(accounts, "jsmith01")
    token = await issue(accounts, "jsmith01")
    page = await browser.get(f"/set-password?token={token}")
    assert page.status == 200 and "jsmith01" in page.plain and "at least 8 characters" in page.plain
    mismatch = await browser.post("/set-password", {"token": token, "password": NEW_PASSWORD, "confirm": "Other1xyz"})
    assert mismatch.status == 400 and "not the same" in mismatch.plain
    weak = await browser.post("/set-password", {"token": token, "password": "weakpass", "confirm": "weakpass"})
    assert "upper-case letter" in weak.plain and 'aria-invalid="true"' in weak.text
    done = await browser.post("/set-password", {"token": token, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert done.status == 200 and "Your password is set" in done.plain
    account = await accounts.GetAccount(pb.GetAccountRequest(username_or_email="jsmith01"))
    assert account.status == pb.ACCOUNT_STATUS_ACTIVE
    used = await browser.get(f"/set-password?token={token}")
    assert used.status == 410 and "This link has been used" in used.plain and "Email me a new link" in used.plain
    again = await browser.post("/set-password/new-link", {"token": token})
    assert "Check your email" in again.plain
    resets = await eventually(lambda: _async(emails(database, "password_reset")), bool, what="a new reset link")
    assert resets[0]["recipient"] == "jsmith01@example.org"
    unknown = await browser.get("/set-password?token=not-a-token")
    assert unknown.status == 404 and "not valid" in unknown.plain


async def _async(value: Any) -> Any:
    return value


async def test_an_expired_invitation_says_so_and_sends_a_new_invitation(accounts, browser, database, clock) -> None:
    await create_account(accounts, "jsmith01")
    token = await issue(accounts, "jsmith01")
    clock.advance(days=8)
    page = await browser.get(f"/set-password?token={token}")
    assert page.status == 410 and "This link has expired" in page.plain
    await browser.post("/set-password/new-link", {"token": token})
    invitations = await eventually(lambda: _async(emails(database, "invitation")), bool, what="a new invitation")
    assert invitations[0]["data"]["username"] == "jsmith01"


async def test_sign_in_with_must_change_password_then_two_factor_required_by_staff(
        accounts, browser, database, clock) -> None:
    await create_account(accounts, "jsmith01", PASSWORD, must_change_password=True,
                         two_factor=pb.TWO_FACTOR_STATE_REQUIRED)
    await browser.get("/login")
    page = await browser.post("/login", {"username": "JSmith01", "password": PASSWORD})
    assert urlsplit(page.url).path == "/change-password" and "asks you to choose a new password" in page.plain
    assert urlsplit((await browser.get("/account")).url).path == "/change-password"
    with database.read() as session:
        stored = session.scalars(select(WebSessionRecord)).all()
    assert len(stored) == 1 and stored[0].stage == "change_password"
    cookie = browser.session.cookie_jar.filter_cookies(URL(browser.base))["portal_session"].value
    assert stored[0].id_hash not in cookie and unquote(cookie).split(".")[0] != stored[0].id_hash

    page = await browser.post("/change-password", {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert urlsplit(page.url).path == "/two-factor" and "turned on two-factor sign-in" in page.plain
    assert '<svg role="img"' in page.text and "recovery codes" in page.plain.lower()
    secret = re.search(r'<code class="secret">([A-Z2-7]+)</code>', page.text).group(1)  # type: ignore[union-attr]
    again = await browser.get("/two-factor")
    assert secret in again.text  # the same secret while this session enrols
    wrong = await browser.post("/two-factor", {"code": "000000"})
    assert wrong.status == 400 and "not right" in wrong.plain
    done = await browser.post("/two-factor", {"code": credentials.totp_code(secret, clock.now)})
    assert urlsplit(done.url).path == "/account" and "Two-factor sign-in is on" in done.plain

    await browser.post("/logout", {})
    assert urlsplit(browser.last.url).path == "/login" and "signed out" in browser.last.plain  # type: ignore[union-attr]
    clock.advance(seconds=60)
    page = await browser.post("/login", {"username": "jsmith01", "password": NEW_PASSWORD})
    assert urlsplit(page.url).path == "/login/code"
    wrong = await browser.post("/login/code", {"code": "123456"})
    assert "not right" in wrong.plain
    page = await browser.post("/login/code", {"code": credentials.totp_code(secret, clock.now)})
    assert urlsplit(page.url).path == "/account" and "jsmith01" in page.plain
    signed = await accounts.ListSignIns(pb.ListSignInsRequest(username="jsmith01", successful_only=True))
    assert len(signed.sign_ins) == 2


async def test_forgot_password_always_answers_the_same_and_emails_a_link_when_it_matches(
        accounts, browser, database) -> None:
    await create_account(accounts, "jsmith01", PASSWORD)
    answers = []
    for value in ("jsmith01", "nobody99", "JSMITH01@example.org", "jsmith01", "jsmith01"):
        await browser.get("/forgot-password")
        answers.append((await browser.post("/forgot-password", {"username_or_email": value})).plain)
    assert len(set(answers)) == 1 and "Check your email" in answers[0]
    # Three links an hour at most for one account, however often it is asked.
    sent = await eventually(lambda: _async(emails(database, "password_reset")), lambda found: len(found) >= 3,
                            what="three reset links")
    assert {e["recipient"] for e in sent} == {"jsmith01@example.org"}
    link = sent[-1]["data"]["link"]
    token = parse_qs(urlsplit(link).query)["token"][0]
    page = await browser.get(f"/set-password?token={token}")
    assert "jsmith01" in page.plain


async def test_repeated_failures_are_throttled(accounts, browser, clock) -> None:
    await create_account(accounts, "jsmith01", PASSWORD)
    await browser.get("/login")
    for _ in range(5):
        page = await browser.post("/login", {"username": "jsmith01", "password": "Wrong-Pass1"})
        assert "not right" in page.plain
    page = await browser.post("/login", {"username": "jsmith01", "password": PASSWORD})
    assert "Too many attempts" in page.plain
    clock.advance(minutes=16)
    page = await browser.post("/login", {"username": "jsmith01", "password": PASSWORD})
    assert urlsplit(page.url).path == "/account"
