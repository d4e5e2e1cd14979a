"""Set-password links through gRPC: issued, inspected, redeemed once, expiring on a moved clock, replaced by newer
links, and emailed through the outbox."""

from __future__ import annotations

import json
from datetime import timedelta

import grpc
from sqlalchemy import select

from portal.accounts.v1 import accounts_pb2 as pb
from services.accounts.models import SetPasswordTokenRecord, accounts_outbox
from tests.accounts.conftest import STAFF_CALL, create_account, details, failure

NEW_PASSWORD = "Quiet-Harbour7"


async def issue(stub, username: str, purpose=pb.TOKEN_PURPOSE_INVITATION, send_email: bool = False,
                request_id: str = "") -> pb.IssueSetPasswordTokenResponse:
    return await stub.IssueSetPasswordToken(pb.IssueSetPasswordTokenRequest(
        username=username, purpose=purpose, send_email=send_email, request_id=request_id), metadata=STAFF_CALL)


async def state(stub, token: str) -> str:
    reply = await stub.InspectSetPasswordToken(pb.InspectSetPasswordTokenRequest(token=token))
    return pb.TokenState.Name(reply.state).removeprefix("TOKEN_STATE_")


def redeem(token: str, password: str = NEW_PASSWORD, request_id: str = "") -> pb.RedeemSetPasswordTokenRequest:
    return pb.RedeemSetPasswordTokenRequest(token=token, new_password=password, request_id=request_id)


async def test_a_link_sets_the_password_once_and_activates_the_account(accounts, clock) -> None:
    await create_account(accounts, "jsmith01")
    issued = await issue(accounts, "JSMITH01")
    assert issued.expire_time.ToDatetime().replace(tzinfo=clock.now.tzinfo) == clock.now + timedelta(days=7)
    inspected = await accounts.InspectSetPasswordToken(pb.InspectSetPasswordTokenRequest(token=issued.token))
    assert (inspected.state, inspected.username) == (pb.TOKEN_STATE_VALID, "jsmith01")

    error = await failure(accounts.RedeemSetPasswordToken(redeem(issued.token, "weakpass"), metadata=STAFF_CALL))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(error) == ([("new_password", error.details())], "E_PASSWORD_RULES")
    assert await state(accounts, issued.token) == "VALID"

    account = await accounts.RedeemSetPasswordToken(redeem(issued.token), metadata=STAFF_CALL)
    assert account.status == pb.ACCOUNT_STATUS_ACTIVE and account.has_password
    assert await state(accounts, issued.token) == "USED"
    error = await failure(accounts.RedeemSetPasswordToken(redeem(issued.token, "Another-Pass9"),
                                                          metadata=STAFF_CALL))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert details(error)[1] == "TOKEN_USED"
    signed = await accounts.Authenticate(pb.AuthenticateRequest(username="jsmith01", password=NEW_PASSWORD))
    assert signed.outcome == pb.AUTHENTICATE_OUTCOME_OK


async def test_links_expire_after_their_lifetime(accounts, clock) -> None:
    await create_account(accounts, "jsmith01")
    invitation = await issue(accounts, "jsmith01")
    reset = await issue(accounts, "jsmith01", pb.TOKEN_PURPOSE_RESET)
    clock.advance(minutes=59)
    assert await state(accounts, reset.token) == "VALID"
    clock.advance(minutes=1)
    assert await state(accounts, reset.token) == "EXPIRED"
    error = await failure(accounts.RedeemSetPasswordToken(redeem(reset.token), metadata=STAFF_CALL))
    assert (error.code(), details(error)[1]) == (grpc.StatusCode.FAILED_PRECONDITION, "TOKEN_EXPIRED")
    assert error.details() == "This set-password link has expired: ask the school for a new one."
    clock.advance(days=6, hours=22)
    assert await state(accounts, invitation.token) == "VALID"
    clock.advance(hours=1)
    assert await state(accounts, invitation.token) == "EXPIRED"


async def test_a_new_link_replaces_older_unused_links_of_its_purpose(accounts) -> None:
    await create_account(accounts, "jsmith01")
    invitation = await issue(accounts, "jsmith01")
    first = await issue(accounts, "jsmith01", pb.TOKEN_PURPOSE_RESET)
    second = await issue(accounts, "jsmith01", pb.TOKEN_PURPOSE_RESET)
    assert [await state(accounts, t.token) for t in (invitation, first, second)] == ["VALID", "REVOKED", "VALID"]
    error = await failure(accounts.RedeemSetPasswordToken(redeem(first.token), metadata=STAFF_CALL))
    assert details(error)[1] == "TOKEN_REVOKED"
    await accounts.RedeemSetPasswordToken(redeem(second.token), metadata=STAFF_CALL)
    assert await state(accounts, invitation.token) == "REVOKED", "setting the password leaves no link usable"


async def test_an_unknown_link(accounts) -> None:
    assert await state(accounts, "not-a-token") == "UNKNOWN"
    error = await failure(accounts.RedeemSetPasswordToken(redeem("not-a-token"), metadata=STAFF_CALL))
    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_redeeming_clears_must_change_password_and_a_retry_returns_the_first_answer(accounts) -> None:
    await create_account(accounts, "jsmith01", "Tr4vel-Gecko", must_change_password=True)
    reset = await issue(accounts, "jsmith01", pb.TOKEN_PURPOSE_RESET)
    first = await accounts.RedeemSetPasswordToken(redeem(reset.token, request_id="form-1"), metadata=STAFF_CALL)
    assert not first.must_change_password
    again = await accounts.RedeemSetPasswordToken(redeem(reset.token, request_id="form-1"), metadata=STAFF_CALL)
    assert again == first


async def test_an_emailed_link_goes_through_the_outbox_and_is_not_returned(accounts, database, settings,
                                                                           clock) -> None:
    await create_account(accounts, "jsmith01", email="Jane@Example.org", schools=["Hillside"])
    issued = await issue(accounts, "jsmith01", pb.TOKEN_PURPOSE_RESET, send_email=True)
    assert issued.token == ""
    with database.read() as session:
        emails = [dict(r._mapping) for r in session.execute(select(accounts_outbox))]
    assert [(e["template"], e["recipient"], e["school"]) for e in emails] == [
        ("password_reset", "Jane@Example.org", "Hillside")]
    data = json.loads(emails[0]["data"])
    assert data["expire_time"] == (clock.now + timedelta(hours=1)).isoformat()
    token = data["link"].removeprefix(f"{settings.public_url}/set-password?token=")
    assert await state(accounts, token) == "VALID"

    await create_account(accounts, "noemail01", email="")
    error = await failure(issue(accounts, "noemail01", pb.TOKEN_PURPOSE_RESET, send_email=True))
    assert (error.code(), details(error)[1]) == (grpc.StatusCode.FAILED_PRECONDITION, "NO_EMAIL")
    error = await failure(issue(accounts, "nobody01"))
    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_a_retried_issue_returns_the_same_link_and_stores_one_token(accounts, database) -> None:
    await create_account(accounts, "jsmith01")
    first = await issue(accounts, "jsmith01", request_id="issue-1")
    again = await issue(accounts, "jsmith01", request_id="issue-1")
    assert again == first
    with database.read() as session:
        hashes = list(session.scalars(select(SetPasswordTokenRecord.token_hash)))
    assert len(hashes) == 1 and first.token not in hashes
    assert await state(accounts, first.token) == "VALID"
