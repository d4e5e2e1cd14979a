"""The notify service's pure rules: retry timing, failure classification, rate-limit arithmetic, checks, paging."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiosmtplib
import pytest

from services.notify import rules

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
POLICY = rules.RetryPolicy(initial=30, maximum=3600, max_age=86400)


# Retries -----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("attempts", "low", "high"), [
    (1, 15, 30), (2, 30, 60), (3, 60, 120), (4, 120, 240), (8, 1800, 3600), (9, 1800, 3600), (60, 1800, 3600),
])
def test_backoff_doubles_per_attempt_up_to_the_maximum_with_half_of_it_jittered(attempts, low, high) -> None:
    assert rules.backoff_seconds(attempts, 30, 3600, 0.0) == low
    assert rules.backoff_seconds(attempts, 30, 3600, 0.999999) == pytest.approx(high, rel=1e-5)
    assert low <= rules.backoff_seconds(attempts, 30, 3600, 0.5) <= high


def test_backoff_tolerates_odd_inputs() -> None:
    assert rules.backoff_seconds(0, 10, 100, 0.0) == 5
    assert rules.backoff_seconds(10_000, 10, 100, 2.0) == 100
    assert rules.backoff_seconds(3, 10, 100, -1.0) == 20


def test_the_next_attempt_follows_the_backoff_until_the_maximum_age_then_gives_up() -> None:
    assert rules.next_attempt(1, T0, T0, POLICY, 0.0) == T0 + timedelta(seconds=15)
    late = T0 + timedelta(hours=23, minutes=59, seconds=50)
    assert rules.next_attempt(12, T0, late, POLICY, 0.0) is None
    assert rules.next_attempt(1, T0, late, POLICY, 0.0) is None  # 15 s later is past 24 h
    assert rules.next_attempt(1, T0, T0 + timedelta(hours=23), POLICY, 0.0) is not None


def test_a_wait_asked_for_by_the_other_side_replaces_the_backoff() -> None:
    assert rules.next_attempt(5, T0, T0, POLICY, 0.9, not_before=7) == T0 + timedelta(seconds=7)
    assert rules.next_attempt(5, T0, T0, POLICY, 0.9, not_before=0) == T0


def test_giving_up_says_how_long_and_why() -> None:
    message = rules.gave_up_message(9, T0, T0 + timedelta(hours=25), "connection failed: refused")
    assert message == "gave up after 9 attempts over 25.0 h: connection failed: refused"
    assert rules.gave_up_message(2, T0, T0 + timedelta(seconds=40), "x") == "gave up after 2 attempts over 40 s: x"
    assert len(rules.gave_up_message(2, T0, T0, "y" * 5000)) == rules.MAX_ERROR_LENGTH


# SMTP failures -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("exc", "permanent", "server_level", "reply"), [
    (aiosmtplib.SMTPDataError(451, "4.7.1 Greylisted"), False, False, "451 4.7.1 Greylisted"),
    (aiosmtplib.SMTPDataError(552, "5.3.4 Message too big"), True, False, "552 5.3.4 Message too big"),
    (aiosmtplib.SMTPSenderRefused(550, "5.7.1 Sender denied", "a@b.c"), True, False, "550 5.7.1 Sender denied"),
    (aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(550, "5.1.1 No such\nuser", "x@y.z")]),
     True, False, "550 5.1.1 No such user"),
    (aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(452, "4.2.2 Mailbox full", "x@y.z")]),
     False, False, "452 4.2.2 Mailbox full"),
    (aiosmtplib.SMTPResponseException(421, "4.3.2 Shutting down"), False, True, "421 4.3.2 Shutting down"),
    (aiosmtplib.SMTPAuthenticationError(535, "5.7.8 Bad credentials"), False, True, "535 5.7.8 Bad credentials"),
    (aiosmtplib.SMTPConnectResponseError(554, "5.3.2 Go away"), False, True, "554 5.3.2 Go away"),
    (aiosmtplib.SMTPHeloError(501, "bad helo"), False, True, "501 bad helo"),
    (aiosmtplib.SMTPNotSupported("SMTPUTF8 is not supported by this server"), True, False,
     "not supported by the server: SMTPUTF8 is not supported by this server"),
    (ValueError("Address has newline"), True, False, "bad address: Address has newline"),
])
def test_smtp_replies_are_transient_or_permanent(exc, permanent, server_level, reply) -> None:
    failure = rules.classify_smtp_error(exc)
    assert (failure.permanent, failure.server_level, failure.reply) == (permanent, server_level, reply)


@pytest.mark.parametrize("exc", [
    ConnectionRefusedError(111, "Connection refused"),
    aiosmtplib.SMTPConnectError("Error connecting to 127.0.0.1 on port 2525"),
    aiosmtplib.SMTPServerDisconnected("Connection lost"),
    aiosmtplib.SMTPReadTimeoutError("Timed out waiting for server response"),
    TimeoutError(),
    OSError("Network is unreachable"),
    aiosmtplib.SMTPException("SMTP STARTTLS extension not supported by server."),
])
def test_connection_failures_and_timeouts_are_transient_and_about_the_server(exc) -> None:
    failure = rules.classify_smtp_error(exc)
    assert not failure.permanent and failure.server_level
    assert failure.reply.startswith(("connection failed", "timed out"))


def test_anything_going_wrong_while_connecting_is_never_the_messages_fault() -> None:
    wrapped = rules.SmtpConnectFailed(aiosmtplib.SMTPResponseException(550, "5.7.1 Client host rejected"))
    failure = rules.classify_smtp_error(wrapped)
    assert not failure.permanent and failure.server_level and failure.reply == "550 5.7.1 Client host rejected"


# Slack failures ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "error", "retry_after", "permanent", "wait"), [
    (429, "ratelimited", "30", False, 30.0),
    (429, "", None, False, 1.0),
    (200, "ratelimited", "2", False, 2.0),
    (429, "ratelimited", "soon", False, 1.0),
    (429, "ratelimited", "999999", False, rules.MAX_RETRY_AFTER),
    (503, "", None, False, None),
    (200, "internal_error", None, False, None),
    (200, "invalid_auth", None, False, None),
    (None, "ClientConnectorError: refused", None, False, None),
    (200, "channel_not_found", None, True, None),
    (200, "not_in_channel", None, True, None),
    (404, "", None, True, None),
])
def test_slack_failures(status, error, retry_after, permanent, wait) -> None:
    failure = rules.classify_slack_error(status, error, retry_after)
    assert failure.permanent == permanent
    assert failure.retry_after == wait


def test_retry_after_is_read_as_seconds() -> None:
    assert rules.parse_retry_after(" 12 ") == 12.0
    assert rules.parse_retry_after(None) is None
    assert rules.parse_retry_after("-3") is None
    assert rules.parse_retry_after("nan") is None


# Domain rate limit -------------------------------------------------------------------------------------------------

def test_windows_are_aligned_so_replicas_agree() -> None:
    assert rules.window_start(1_700_000_059.9, 60) == 1_700_000_040
    assert rules.window_start(1_700_000_040.0, 60) == 1_700_000_040
    assert rules.window_start(7.5, 1) == 7


@pytest.mark.parametrize(("requested", "limit", "before", "expected"), [
    (10, 4, 0, 4), (3, 4, 0, 3), (3, 4, 2, 2), (3, 4, 4, 0), (3, 4, 9, 0), (5, 0, 100, 5), (0, 4, 0, 0),
])
def test_a_domain_gets_what_is_left_of_its_window(requested, limit, before, expected) -> None:
    assert rules.granted(requested, limit, before) == expected


# Recipients and data -----------------------------------------------------------------------------------------------

def test_recipients_are_normalised_and_bad_ones_refused() -> None:
    recipient = rules.check_recipient("  Jo.Parent@Mail.EXAMPLE.org ")
    assert recipient == rules.Recipient("Jo.Parent@mail.example.org", "mail.example.org")
    assert rules.check_recipient("zoë@bücher.example").domain == "xn--bcher-kva.example"
    for bad in ("", "   ", "no-at-sign", "two@@example.org", "a@b", "trailing@example.org.", "x@localhost"):
        with pytest.raises(rules.BadAddress):
            rules.check_recipient(bad)


def test_only_login_details_keep_a_password() -> None:
    data = {"username": "u1", "password": "Pa55word", "link": "https://x"}
    assert "password" not in rules.clean_data("invitation", data)
    assert "password" not in rules.clean_data("password_reset", data)
    assert rules.clean_data("login_details", data)["password"] == "Pa55word"
    assert data["password"] == "Pa55word"  # the caller's data is left alone


@pytest.mark.parametrize(("template", "data", "problem"), [
    ("invitation", {"username": "u", "link": "https://p.example/set-password?token=t"}, None),
    ("invitation", {"username": "u"}, "missing template data: link"),
    ("invitation", {"username": " ", "link": ""}, "missing template data: username, link"),
    ("invitation", {"username": "u", "link": "javascript:alert(1)"}, "template data link is not an http(s) link"),
    ("password_reset", {"link": "HTTP://p.example/r"}, None),
    ("login_details", {"username": "u"}, "missing template data: password"),
    ("login_details", {"username": "u", "password": "p", "login_url": "ftp://x"},
     "template data login_url is not an http(s) link"),
    ("two_factor_enabled", {}, None),
    ("notice", {"subject": "s"}, "missing template data: body"),
])
def test_template_data_problems(template, data, problem) -> None:
    assert rules.data_problem(template, data) == problem


@pytest.mark.parametrize(("key", "problem"), [
    ("job:imp_01:parent@example.org", None), ("", "is required"), ("a" * 201, "is longer than 200 characters"),
    ("has space", "must not contain spaces or control characters"),
    ("tab\there", "must not contain spaces or control characters"),
])
def test_idempotency_keys(key, problem) -> None:
    assert rules.check_key(key) == problem


def test_prefix_bounds_select_exactly_the_strings_with_the_prefix() -> None:
    low, high = rules.prefix_bounds("job:7:")
    keys = ["job:7", "job:7:", "job:7:a", "job:7:\U0010fffe", "job:7;", "job:70", "job:6:z"]
    assert [k for k in keys if low <= k < high] == [k for k in keys if k.startswith("job:7:")]
    with pytest.raises(ValueError):
        rules.prefix_bounds("")


# Paging ------------------------------------------------------------------------------------------------------------

def test_page_tokens_round_trip_and_are_tied_to_their_filters() -> None:
    filters = {"job": "j1", "state": ""}
    token = rules.encode_page_token(41, filters)
    assert rules.decode_page_token(token, {"state": "", "job": "j1"}) == 41
    assert rules.decode_page_token("", filters) == 0
    with pytest.raises(ValueError, match="other filters"):
        rules.decode_page_token(token, {"job": "j2", "state": ""})
    for junk in ("!!!", "bm9wZQ", rules.encode_page_token(1, {})[:-3]):
        with pytest.raises(ValueError):
            rules.decode_page_token(junk, filters)


def test_page_sizes_have_a_default_and_a_ceiling() -> None:
    assert rules.page_size(0) == rules.DEFAULT_PAGE_SIZE
    assert rules.page_size(-5) == rules.DEFAULT_PAGE_SIZE
    assert rules.page_size(20) == 20
    assert rules.page_size(10_000) == rules.MAX_PAGE_SIZE


# Alerts ------------------------------------------------------------------------------------------------------------

def test_alert_destinations() -> None:
    target = rules.alert_target
    assert target("U1", "C1", "", "", "", "", None) == rules.AlertTarget("C1", "")
    assert target("U1", "", "C2", "U9", "1.1", "", None) == rules.AlertTarget("C2", "")
    assert target("U1", "", "", "U9", "", "", "CALERTS") == rules.AlertTarget("", "U1")
    assert target("", "", "", "U9", "", "", "CALERTS") == rules.AlertTarget("", "U9")
    assert target("", "", "", "", "", "", "CALERTS") == rules.AlertTarget("CALERTS", "")
    with pytest.raises(ValueError, match="PORTAL_ALERT_CHANNEL"):
        target("", "", "", "", "", "", None)
    with pytest.raises(ValueError, match=r"anchor\.channel"):
        target("U1", "", "", "", "1.1", "", "CALERTS")


def test_blocks_must_be_a_json_list() -> None:
    assert rules.check_blocks("") is None
    assert rules.check_blocks('[{"type": "divider"}]') == [{"type": "divider"}]
    for bad in ("{", '{"type": "divider"}', "3"):
        with pytest.raises(ValueError):
            rules.check_blocks(bad)


@pytest.mark.parametrize("address", [
    "a@example.org", "Jo.Parent@Mail.EXAMPLE.org", "x+tag@sub.domain.co.uk", "a..b@example.org", ".a@example.org",
    "a.@example.org", "a@-example.org", "a@example-.org", "a@example", "a@localhost", "a@x.test", "a@x.local",
    "a@b.c", "a@example.123", "o'brien@example.ie", "a@xn--bcher-kva.example", "a@" + "x" * 64 + ".com",
    "a" * 65 + "@example.org", "a@ex_ample.org", "a@example.org.", "a@b.invalid", "user@[127.0.0.1]",
    '"quoted"@example.org', "a@e.onion", "zoë@example.org", "a@bücher.example",
])
def test_the_fast_path_for_plain_addresses_agrees_with_email_validator(address) -> None:
    from email_validator import EmailNotValidError, validate_email

    try:
        valid = validate_email(address, check_deliverability=False, allow_smtputf8=True)
        expected: object = rules.Recipient(valid.ascii_email or valid.normalized, valid.ascii_domain or valid.domain)
    except EmailNotValidError:
        expected = "refused"
    try:
        got: object = rules.check_recipient(address)
    except rules.BadAddress:
        got = "refused"
    assert got == expected
