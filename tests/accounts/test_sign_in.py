"""Sign-in through gRPC: any-case usernames, equal answers for unknown usernames, the sign-in record, throttling
that kicks in and lifts (moved clock), disabled accounts, and two-factor sign-in with TOTP and recovery codes."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import grpc
import pyotp
from google.protobuf import field_mask_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from portal.accounts.v1 import accounts_pb2 as pb
from services.accounts.throttling import Limit, ThrottleRules
from tests.accounts.conftest import STAFF_CALL, create_account, details, failure, serve_accounts

PASSWORD = "Tr4vel-Gecko"


def sign_in(username: str, password: str = PASSWORD, code: str = "", source: str = "203.0.113.7"):
    return pb.AuthenticateRequest(username=username, password=password, totp_code=code, source=source)


def outcome(reply: pb.AuthenticateResponse) -> str:
    return pb.AuthenticateOutcome.Name(reply.outcome).removeprefix("AUTHENTICATE_OUTCOME_")


async def test_sign_in_with_any_case_is_recorded_and_activates_the_account(accounts, clock) -> None:
    created = await create_account(accounts, "JSmith01", PASSWORD)
    assert created.status == pb.ACCOUNT_STATUS_INVITED
    reply = await accounts.Authenticate(sign_in("jsmith01"))
    assert outcome(reply) == "OK"
    assert reply.account.id == created.id
    assert reply.account.status == pb.ACCOUNT_STATUS_ACTIVE
    assert reply.account.last_sign_in_time.ToDatetime().replace(tzinfo=clock.now.tzinfo) == clock.now
    assert reply.must_change_password is False and reply.must_enroll_two_factor is False
    listed = await accounts.ListSignIns(pb.ListSignInsRequest(username="JSMITH01"))
    assert [(s.username, s.success, s.source) for s in listed.sign_ins] == [("JSmith01", True, "203.0.113.7")]


async def test_a_wrong_password_and_an_unknown_username_get_the_same_answer(accounts) -> None:
    await create_account(accounts, "jsmith01", PASSWORD)
    await create_account(accounts, "invited01")
    wrong = await accounts.Authenticate(sign_in("jsmith01", "Wrong-Pass1"))
    unknown = await accounts.Authenticate(sign_in("nobody01", "Wrong-Pass1"))
    no_password = await accounts.Authenticate(sign_in("invited01", "Wrong-Pass1"))
    assert wrong == unknown == no_password == pb.AuthenticateResponse(
        outcome=pb.AUTHENTICATE_OUTCOME_INVALID_CREDENTIALS)
    failures = await accounts.ListSignIns(pb.ListSignInsRequest())
    assert sorted((s.username, s.success) for s in failures.sign_ins) == [
        ("invited01", False), ("jsmith01", False), ("nobody01", False)]


async def test_repeated_failures_throttle_the_username_and_the_lock_lifts(accounts, clock) -> None:
    await create_account(accounts, "jsmith01", PASSWORD)
    for attempt in range(5):
        reply = await accounts.Authenticate(sign_in("jsmith01", f"Wrong-Pass{attempt}"))
        assert outcome(reply) == "INVALID_CREDENTIALS"
    throttled = await accounts.Authenticate(sign_in("JSMITH01"))
    assert outcome(throttled) == "THROTTLED"
    assert throttled.retry_after_seconds == 900
    assert not throttled.HasField("account")
    clock.advance(minutes=14)
    assert (await accounts.Authenticate(sign_in("jsmith01"))).retry_after_seconds == 60
    clock.advance(minutes=1)
    assert outcome(await accounts.Authenticate(sign_in("jsmith01"))) == "OK"
    # Unknown usernames are throttled the same way: the lock says nothing about whether an account exists.
    for _ in range(5):
        await accounts.Authenticate(sign_in("nobody01", "Wrong-Pass1"))
    assert outcome(await accounts.Authenticate(sign_in("nobody01", "Wrong-Pass1"))) == "THROTTLED"


async def test_a_success_clears_the_username_failures(accounts) -> None:
    await create_account(accounts, "jsmith01", PASSWORD)
    for _ in range(4):
        await accounts.Authenticate(sign_in("jsmith01", "Wrong-Pass1"))
    assert outcome(await accounts.Authenticate(sign_in("jsmith01"))) == "OK"
    for _ in range(4):
        await accounts.Authenticate(sign_in("jsmith01", "Wrong-Pass1"))
    assert outcome(await accounts.Authenticate(sign_in("jsmith01"))) == "OK"


async def test_many_usernames_from_one_source_throttle_that_source(settings, clock) -> None:
    rules = ThrottleRules(per_username=Limit(5, timedelta(minutes=15), timedelta(minutes=15)),
                          per_source=Limit(4, timedelta(minutes=10), timedelta(minutes=10)))
    async with serve_accounts(settings, clock, throttle=rules) as accounts:
        await create_account(accounts, "jsmith01", PASSWORD)
        for index in range(4):
            await accounts.Authenticate(sign_in(f"guess{index:04d}", "Wrong-Pass1", source="198.51.100.9"))
        blocked = await accounts.Authenticate(sign_in("jsmith01", source="198.51.100.9"))
        assert (outcome(blocked), blocked.retry_after_seconds) == ("THROTTLED", 600)
        assert outcome(await accounts.Authenticate(sign_in("jsmith01", source="192.0.2.1"))) == "OK"
        clock.advance(minutes=10)
        assert outcome(await accounts.Authenticate(sign_in("jsmith01", source="198.51.100.9"))) == "OK"


async def test_a_disabled_account_cannot_sign_in(accounts) -> None:
    await create_account(accounts, "jsmith01", PASSWORD, status=pb.ACCOUNT_STATUS_DISABLED)
    assert outcome(await accounts.Authenticate(sign_in("jsmith01"))) == "DISABLED"
    assert outcome(await accounts.Authenticate(sign_in("jsmith01", "Wrong-Pass1"))) == "INVALID_CREDENTIALS"


async def test_sign_ins_are_listed_by_time_range_and_outcome(accounts, clock) -> None:
    await create_account(accounts, "jsmith01", PASSWORD)
    start = clock.now
    for index in range(3):
        clock.advance(days=1)
        await accounts.Authenticate(sign_in("jsmith01", source=f"10.0.0.{index}"))
        await accounts.Authenticate(sign_in("jsmith01", "Wrong-Pass1", source=f"10.0.0.{index}"))
    since = Timestamp()
    since.FromDatetime(start + timedelta(days=2))
    reply = await accounts.ListSignIns(pb.ListSignInsRequest(username="jsmith01", start_time=since,
                                                             successful_only=True))
    assert [s.source for s in reply.sign_ins] == ["10.0.0.2", "10.0.0.1"]
    first = await accounts.ListSignIns(pb.ListSignInsRequest(page_size=4))
    rest = await accounts.ListSignIns(pb.ListSignInsRequest(page_size=4, page_token=first.next_page_token))
    assert len(first.sign_ins) == 4 and len(rest.sign_ins) == 2 and not rest.next_page_token


# Two-factor ---------------------------------------------------------------------------------------------------------


def _secret(uri: str) -> str:
    return parse_qs(urlsplit(uri).query)["secret"][0]


async def test_two_factor_enrolment_and_sign_in_with_totp_and_recovery_codes(accounts, clock) -> None:
    await create_account(accounts, "jsmith01", PASSWORD)
    enrolment = await accounts.EnrollTwoFactor(pb.EnrollTwoFactorRequest(username="jsmith01", request_id="enrol-1"),
                                               metadata=STAFF_CALL)
    assert enrolment.otpauth_uri.startswith("otpauth://totp/Parent%20Portal:jsmith01?")
    assert "issuer=Parent%20Portal" in enrolment.otpauth_uri
    assert len(enrolment.recovery_codes) == 10
    retried = await accounts.EnrollTwoFactor(pb.EnrollTwoFactorRequest(username="jsmith01", request_id="enrol-1"),
                                             metadata=STAFF_CALL)
    assert retried == enrolment
    totp = pyotp.TOTP(_secret(enrolment.otpauth_uri))

    wrong = f"{(int(totp.at(clock.now)) + 1) % 1_000_000:06d}"
    error = await failure(accounts.ConfirmTwoFactor(pb.ConfirmTwoFactorRequest(username="jsmith01", totp_code=wrong),
                                                    metadata=STAFF_CALL))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(error) == ([("totp_code", "not the current code")], "TOTP_INVALID")
    assert error.details() == ("The code is not right: type the 6-digit code the authenticator app shows now (it "
                               "changes every 30 seconds).")
    confirmed = await accounts.ConfirmTwoFactor(pb.ConfirmTwoFactorRequest(username="jsmith01",
                                                                           totp_code=totp.at(clock.now)),
                                                metadata=STAFF_CALL)
    assert confirmed.two_factor == pb.TWO_FACTOR_STATE_ENROLLED

    assert outcome(await accounts.Authenticate(sign_in("jsmith01"))) == "TOTP_REQUIRED"
    clock.advance(seconds=30)
    assert outcome(await accounts.Authenticate(sign_in("jsmith01", code=wrong))) == "TOTP_INVALID"
    code = totp.at(clock.now)
    assert outcome(await accounts.Authenticate(sign_in("jsmith01", code=code))) == "OK"
    assert outcome(await accounts.Authenticate(sign_in("jsmith01", code=code))) == "TOTP_INVALID", "code replayed"
    assert outcome(await accounts.Authenticate(sign_in("jsmith01", "Wrong-Pass1", code=code))) == \
        "INVALID_CREDENTIALS"

    recovery = enrolment.recovery_codes[0]
    assert outcome(await accounts.Authenticate(sign_in("jsmith01", code=recovery.upper()))) == "OK"
    assert outcome(await accounts.Authenticate(sign_in("jsmith01", code=recovery))) == "TOTP_INVALID"

    error = await failure(accounts.EnrollTwoFactor(pb.EnrollTwoFactorRequest(username="jsmith01"),
                                                   metadata=STAFF_CALL))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_two_factor_required_by_staff_sends_the_holder_to_enrol(accounts) -> None:
    await create_account(accounts, "jsmith01", PASSWORD)
    await accounts.UpdateAccount(pb.UpdateAccountRequest(
        account=pb.Account(username="jsmith01", two_factor=pb.TWO_FACTOR_STATE_REQUIRED),
        update_mask=field_mask_pb2.FieldMask(paths=["two_factor"])), metadata=STAFF_CALL)
    reply = await accounts.Authenticate(sign_in("jsmith01"))
    assert outcome(reply) == "OK" and reply.must_enroll_two_factor
    turned_off = await accounts.UpdateAccount(pb.UpdateAccountRequest(
        account=pb.Account(username="jsmith01", two_factor=pb.TWO_FACTOR_STATE_OFF),
        update_mask=field_mask_pb2.FieldMask(paths=["two_factor"])), metadata=STAFF_CALL)
    assert turned_off.two_factor == pb.TWO_FACTOR_STATE_OFF


async def test_sign_ins_follow_the_account_through_a_rename(accounts) -> None:
    await create_account(accounts, "jsmith01", PASSWORD)
    await accounts.Authenticate(sign_in("jsmith01"))
    await accounts.UpdateAccount(pb.UpdateAccountRequest(
        account=pb.Account(username="jane.smith"), username="jsmith01",
        update_mask=field_mask_pb2.FieldMask(paths=["username"])), metadata=STAFF_CALL)
    renamed = await accounts.ListSignIns(pb.ListSignInsRequest(username="Jane.Smith"))
    assert [(s.username, s.success) for s in renamed.sign_ins] == [("jane.smith", True)]
    assert (await accounts.ListSignIns(pb.ListSignInsRequest(username="jsmith01"))).sign_ins == []
