"""Accounts through the real gRPC server, on SQLite and on PostgreSQL: create, get, list, update, delete, links,
the errors staff see, uniqueness under concurrency, idempotent retries and the audit trail."""

from __future__ import annotations

import asyncio
import threading

import grpc
import pytest
from google.protobuf import field_mask_pb2

from plumbing.context import Actor, actor_metadata
from plumbing.db import Database, utcnow
from portal.accounts.v1 import accounts_pb2 as pb
from services.accounts.store import AccountStore, UsernameTaken, new_id
from tests.accounts.conftest import STAFF_CALL, add_students, create_account, details, failure

# The rules, as a caller sees them --------------------------------------------------------------------------------


@pytest.mark.parametrize(("username", "password", "email", "field", "reason", "message"), [
    ("abc", "", "a@example.org", "account.username", "E_USERNAME_SHORT",
     "The username 'abc' has only 3 characters: use at least 6 (usernames are not case-sensitive)."),
    ("jo smith", "", "a@example.org", "account.username", "E_USERNAME_CHARS",
     "The username 'jo smith' contains a space: usernames cannot contain spaces (use . _ or - instead)."),
    ("jsmith\n01", "", "a@example.org", "account.username", "E_USERNAME_CHARS",
     "The username contains a control character (such as a tab or a line break): retype it using letters a-z, "
     "digits and . _ - @ only."),
    ("jsmith01", "short1A", "a@example.org", "password", "E_PASSWORD_RULES",
     "The password needs at least 8 characters with an upper-case letter, a lower-case letter and a digit; this "
     "one is too short (7 characters)."),
    ("jsmith01", "alllowercase1", "a@example.org", "password", "E_PASSWORD_RULES",
     "The password needs at least 8 characters with an upper-case letter, a lower-case letter and a digit; this "
     "one has no upper-case letter."),
    ("jsmith01", "NoDigitsHere", "a@example.org", "password", "E_PASSWORD_RULES",
     "The password needs at least 8 characters with an upper-case letter, a lower-case letter and a digit; this "
     "one has no digit."),
    ("jsmith01", "Password1", "a@example.org", "password", "E_PASSWORD_COMMON",
     "The password is one of the most common passwords, the first ones attackers try: choose one nobody would "
     "guess."),
    ("Jsmith2026", "jsmith2026", "a@example.org", "password", "E_PASSWORD_RULES",
     "The password needs at least 8 characters with an upper-case letter, a lower-case letter and a digit; this "
     "one has no upper-case letter."),
    ("jsmith2026", "JSmith2026", "a@example.org", "password", "E_PASSWORD_COMMON",
     "The password is the same as the username: choose a different one."),
    ("jsmith01", "", "jane@example", "account.email", "E_EMAIL_INVALID",
     "The email address 'jane@example' is not valid: The part after the @-sign is not valid. It should have a "
     "period. Correct it (name@example.org)."),
])
async def test_each_rule_refuses_with_the_message_staff_see(accounts, username, password, email, field, reason,
                                                            message) -> None:
    error = await failure(create_account(accounts, username, password, email=email))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == message
    assert details(error) == ([(field, message)], reason)


async def test_a_new_account_needs_names(accounts) -> None:
    error = await failure(create_account(accounts, "jsmith01", first_name="", last_name=""))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(error)[0] == [
        ("account.first_name", "The first name is missing: a new account needs the holder's first name."),
        ("account.last_name", "The last name is missing: a new account needs the holder's last name.")]


async def test_an_account_is_created_as_given_and_found_in_any_case_or_by_email(accounts) -> None:
    await add_students(accounts, "S1")
    created = await create_account(accounts, " JSmith01 ", email="Jane.Smith@Example.org", student_ids=["S1"],
                                    schools=["Hillside"])
    assert (created.username, created.email, created.type, created.role, created.status) == (
        "JSmith01", "Jane.Smith@Example.org", pb.ACCOUNT_TYPE_GUARDIAN, "parent", pb.ACCOUNT_STATUS_INVITED)
    assert list(created.student_ids) == ["S1"]
    assert list(created.schools) == ["Hillside"]
    assert not created.has_password
    for key in ("jsmith01", "JSMITH01", "jane.smith@example.org"):
        found = await accounts.GetAccount(pb.GetAccountRequest(username_or_email=key))
        assert found.id == created.id
    error = await failure(accounts.GetAccount(pb.GetAccountRequest(username_or_email="nobody01")))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "No account has the username or email address 'nobody01'."


async def test_usernames_collide_whatever_the_case_and_the_type(accounts) -> None:
    await create_account(accounts, "jsmith@board.org", email="jsmith@board.org", type=pb.ACCOUNT_TYPE_STAFF)
    error = await failure(create_account(accounts, "JSmith@Board.org", email="jane.personal@example.org"))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    message = ("The username 'JSmith@Board.org' is already taken by the staff account 'jsmith@board.org': "
               "usernames are unique across the whole district whatever the case or the account type. Choose "
               "another username.")
    assert error.details() == message
    assert details(error) == ([("account.username", message)], "E_USERNAME_TAKEN")


async def test_a_parent_account_cannot_silently_share_a_staff_accounts_email(accounts) -> None:
    await create_account(accounts, "msmith.staff", email="M.Smith@board.org", type=pb.ACCOUNT_TYPE_STAFF)
    error = await failure(create_account(accounts, "msmith.parent", email="m.smith@BOARD.org"))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert details(error)[1] == "E_EMAIL_IN_USE"
    assert error.details() == ("The email address 'm.smith@BOARD.org' already belongs to the account "
                               "'msmith.staff': one person gets one account, so use that account, or correct the "
                               "email.")


async def test_validate_only_checks_everything_and_writes_nothing(accounts) -> None:
    preview = await accounts.CreateAccount(pb.CreateAccountRequest(
        account=pb.Account(username="preview01", first_name="P", last_name="Q", email="p@example.org"),
        password="Tr4vel-Gecko", validate_only=True), metadata=STAFF_CALL)
    assert preview.username == "preview01" and preview.has_password and not preview.id
    error = await failure(accounts.GetAccount(pb.GetAccountRequest(username_or_email="preview01")))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert (await accounts.ListAuditEvents(pb.ListAuditEventsRequest())).events == []


# Concurrency -----------------------------------------------------------------------------------------------------


async def test_two_concurrent_creators_of_one_username_exactly_one_wins(accounts) -> None:
    for attempt in range(4):
        answers = await asyncio.gather(
            create_account(accounts, f"Parent{attempt:02d}", email=f"a{attempt}@example.org"),
            create_account(accounts, f"PARENT{attempt:02d}", email=f"b{attempt}@example.org"),
            return_exceptions=True)
        wins = [a for a in answers if isinstance(a, pb.Account)]
        losses = [a for a in answers if isinstance(a, grpc.aio.AioRpcError)]
        assert len(wins) == 1 and len(losses) == 1, answers
        assert losses[0].code() == grpc.StatusCode.ALREADY_EXISTS
    listed = await accounts.ListAccounts(pb.ListAccountsRequest())
    assert listed.total_size == 4


async def test_the_database_itself_refuses_a_second_username_differing_in_case(accounts, database: Database) -> None:
    """Two writers that skip every check in Python: the unique index on the lower-cased username decides."""
    store = AccountStore()
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def write(username: str) -> None:
        start.wait()
        now = utcnow()
        try:
            with database.transaction() as session:
                store.insert_accounts(session, [{
                    "id": new_id(), "username": username, "username_key": username.lower(), "first_name": "A",
                    "last_name": "B", "last_name_key": "b", "email": "", "email_key": "", "type": "guardian",
                    "role": "parent", "status": "invited", "must_change_password": False, "two_factor": "off",
                    "password_hash": None, "contact_id": "", "created_at": now, "updated_at": now}])
            outcomes.append("won")
        except UsernameTaken:
            outcomes.append("refused")

    await asyncio.gather(asyncio.to_thread(write, "RaceMe01"), asyncio.to_thread(write, "raceme01"))
    assert sorted(outcomes) == ["refused", "won"]


# Update, rename, delete --------------------------------------------------------------------------------------------


def _update(username: str, paths: list[str], password: str = "", rename_from: str = "", request_id: str = "",
            **fields) -> pb.UpdateAccountRequest:
    return pb.UpdateAccountRequest(account=pb.Account(username=username, **fields), password=password,
                                   update_mask=field_mask_pb2.FieldMask(paths=paths), username=rename_from,
                                   request_id=request_id)


async def test_update_changes_only_the_masked_fields(accounts) -> None:
    await create_account(accounts, "jsmith01")
    updated = await accounts.UpdateAccount(_update("jsmith01", ["first_name"], first_name="Janet",
                                                   last_name="ignored"), metadata=STAFF_CALL)
    assert (updated.first_name, updated.last_name) == ("Janet", "Smith")


async def test_a_rename_keeps_usernames_unique_and_a_case_change_is_allowed(accounts) -> None:
    await create_account(accounts, "jsmith01")
    await create_account(accounts, "other001")
    error = await failure(accounts.UpdateAccount(_update("OTHER001", ["username"], rename_from="jsmith01"),
                                                 metadata=STAFF_CALL))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert details(error)[1] == "E_USERNAME_TAKEN"
    renamed = await accounts.UpdateAccount(_update("JSmith01", ["username"], rename_from="jsmith01"),
                                           metadata=STAFF_CALL)
    assert renamed.username == "JSmith01"
    moved = await accounts.UpdateAccount(_update("jane.smith", ["username"], rename_from="jsmith01"),
                                         metadata=STAFF_CALL)
    assert moved.username == "jane.smith"
    assert (await accounts.GetAccount(pb.GetAccountRequest(username_or_email="jane.smith"))).id == renamed.id


async def test_update_applies_the_rules_and_refuses_unknown_paths(accounts) -> None:
    await create_account(accounts, "jsmith01")
    error = await failure(accounts.UpdateAccount(_update("jsmith01", ["password"], password="weak"),
                                                 metadata=STAFF_CALL))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(error)[0][0][0] == "password"
    error = await failure(accounts.UpdateAccount(_update("jsmith01", ["student_ids"]), metadata=STAFF_CALL))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(error)[0] == [("update_mask", "unknown or read-only path 'student_ids'")]
    error = await failure(accounts.UpdateAccount(_update("nobody01", ["first_name"], first_name="X"),
                                                 metadata=STAFF_CALL))
    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_an_email_change_keeps_one_email_per_person_and_schools_are_replaced(accounts) -> None:
    await create_account(accounts, "jsmith01", schools=["North", "South"])
    await create_account(accounts, "other001", email="Other@Example.org")
    error = await failure(accounts.UpdateAccount(_update("jsmith01", ["email"], email="other@example.ORG"),
                                                 metadata=STAFF_CALL))
    assert (error.code(), details(error)[1]) == (grpc.StatusCode.ALREADY_EXISTS, "E_EMAIL_IN_USE")
    updated = await accounts.UpdateAccount(_update("jsmith01", ["email", "schools"], email="JSMITH01@example.org",
                                                   schools=["South", "West"]), metadata=STAFF_CALL)
    assert (updated.email, list(updated.schools)) == ("JSMITH01@example.org", ["South", "West"])


async def test_staff_can_set_a_password_and_require_a_change(accounts) -> None:
    await create_account(accounts, "jsmith01")
    updated = await accounts.UpdateAccount(_update("jsmith01", ["password", "must_change_password"],
                                                   password="Tr4vel-Gecko", must_change_password=True),
                                           metadata=STAFF_CALL)
    assert updated.has_password and updated.must_change_password
    signed = await accounts.Authenticate(pb.AuthenticateRequest(username="jsmith01", password="Tr4vel-Gecko"))
    assert signed.outcome == pb.AUTHENTICATE_OUTCOME_OK and signed.must_change_password


async def test_delete_removes_the_account(accounts) -> None:
    await create_account(accounts, "jsmith01")
    await accounts.DeleteAccount(pb.DeleteAccountRequest(username="JSMITH01"), metadata=STAFF_CALL)
    error = await failure(accounts.GetAccount(pb.GetAccountRequest(username_or_email="jsmith01")))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    error = await failure(accounts.DeleteAccount(pb.DeleteAccountRequest(username="jsmith01"), metadata=STAFF_CALL))
    assert error.code() == grpc.StatusCode.NOT_FOUND


# Links -------------------------------------------------------------------------------------------------------------


async def test_linking_a_sibling_keeps_the_first_child(accounts) -> None:
    await add_students(accounts, "S1", "S2")
    await create_account(accounts, "jsmith01", student_ids=["S1"])
    linked = await accounts.LinkStudents(pb.LinkStudentsRequest(username="jsmith01", student_ids=["S2"]),
                                         metadata=STAFF_CALL)
    assert list(linked.student_ids) == ["S1", "S2"]
    unlinked = await accounts.UnlinkStudents(pb.UnlinkStudentsRequest(username="jsmith01", student_ids=["S1"]),
                                             metadata=STAFF_CALL)
    assert list(unlinked.student_ids) == ["S2"]


async def test_linking_an_unknown_student_names_it(accounts) -> None:
    await create_account(accounts, "jsmith01")
    error = await failure(accounts.LinkStudents(pb.LinkStudentsRequest(username="jsmith01", student_ids=["S404"]),
                                                metadata=STAFF_CALL))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(error) == ([("student_ids", "Student id S404 is not in the roster: check the id, or import the "
                                               "roster first.")], "E_STUDENT_UNKNOWN")


# Lists -------------------------------------------------------------------------------------------------------------


async def test_list_filters_and_pages(accounts) -> None:
    await add_students(accounts, "S1", grad_year=2030, group="7B", school="North")
    await add_students(accounts, "S2", grad_year=2031, group="8C", school="South")
    for index in range(5):
        await create_account(accounts, f"parent{index:02d}", last_name="Adams" if index < 3 else "Brown",
                             student_ids=["S1"] if index % 2 == 0 else ["S2"])
    await create_account(accounts, "teacher01", type=pb.ACCOUNT_TYPE_STAFF, schools=["North"])

    async def usernames(**query) -> list[str]:
        reply = await accounts.ListAccounts(pb.ListAccountsRequest(**query))
        return [a.username for a in reply.accounts]

    assert await usernames(type=pb.ACCOUNT_TYPE_STAFF) == ["teacher01"]
    assert await usernames(last_name_prefix="ad") == ["parent00", "parent01", "parent02"]
    assert await usernames(grad_year=2030) == ["parent00", "parent02", "parent04"]
    assert await usernames(group="8c") == ["parent01", "parent03"]
    assert await usernames(school="north") == ["parent00", "parent02", "parent04", "teacher01"]
    assert await usernames(linked_student_id="S2") == ["parent01", "parent03"]
    assert await usernames(never_signed_in=True, usernames=["PARENT00", "parent01"]) == ["parent00", "parent01"]

    seen, token = [], ""
    while True:
        page = await accounts.ListAccounts(pb.ListAccountsRequest(page_size=2, page_token=token))
        assert page.total_size == 6
        seen += [a.username for a in page.accounts]
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(seen) and len(seen) == 6
    error = await failure(accounts.ListAccounts(pb.ListAccountsRequest(page_token="bogus")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


# Idempotency and the audit trail ---------------------------------------------------------------------------------


async def _audit_count(accounts) -> int:
    return len((await accounts.ListAuditEvents(pb.ListAuditEventsRequest(page_size=1000))).events)


async def test_retried_mutations_with_the_same_request_id_change_nothing_new(accounts) -> None:
    await add_students(accounts, "S1", "S2")
    first = await create_account(accounts, "jsmith01", password="Tr4vel-Gecko", request_id="req-create")
    again = await create_account(accounts, "jsmith01", password="Tr4vel-Gecko", request_id="req-create")
    assert again == first
    events = await _audit_count(accounts)

    link = pb.LinkStudentsRequest(username="jsmith01", student_ids=["S1"], request_id="req-link")
    linked = await accounts.LinkStudents(link, metadata=STAFF_CALL)
    await accounts.UnlinkStudents(pb.UnlinkStudentsRequest(username="jsmith01", student_ids=["S1"]),
                                  metadata=STAFF_CALL)
    replayed = await accounts.LinkStudents(link, metadata=STAFF_CALL)
    assert replayed == linked
    current = await accounts.GetAccount(pb.GetAccountRequest(username_or_email="jsmith01"))
    assert list(current.student_ids) == [], "the retry re-linked the student"
    assert await _audit_count(accounts) == events + 2

    delete = pb.DeleteAccountRequest(username="jsmith01", request_id="req-delete")
    await accounts.DeleteAccount(delete, metadata=STAFF_CALL)
    await accounts.DeleteAccount(delete, metadata=STAFF_CALL)
    assert await _audit_count(accounts) == events + 3


async def test_concurrent_twins_with_one_request_id_make_one_account(accounts) -> None:
    twins = await asyncio.gather(*(create_account(accounts, "twin0001", request_id="req-twin") for _ in range(3)))
    assert len({t.id for t in twins}) == 1
    assert (await accounts.ListAccounts(pb.ListAccountsRequest())).total_size == 1


async def test_a_request_id_reused_for_another_call_is_refused(accounts) -> None:
    await create_account(accounts, "jsmith01", request_id="req-1")
    error = await failure(accounts.DeleteAccount(pb.DeleteAccountRequest(username="jsmith01", request_id="req-1"),
                                                 metadata=STAFF_CALL))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert details(error)[1] == "REQUEST_ID_REUSED"


async def test_audit_rows_name_the_acting_staff_member_and_never_a_password(accounts) -> None:
    await create_account(accounts, "JSmith01", password="Tr4vel-Gecko", request_id="req-a")
    other = actor_metadata(Actor("U0DATA", "Dana Data-Lead"))
    await accounts.UpdateAccount(_update("jsmith01", ["first_name", "password"], first_name="Janet",
                                         password="N3w-Passphrase"), metadata=other)
    events = (await accounts.ListAuditEvents(pb.ListAuditEventsRequest(target="account:JSMITH01"))).events
    assert [(e.action, e.actor_id, e.actor_name) for e in events] == [
        ("account.update", "U0DATA", "Dana Data-Lead"), ("account.create", "U0OFFICE", "Olive Office")]
    assert events[1].request_id == "req-a"
    assert '"first_name": "Janet"' in events[0].detail and '"password": "changed"' in events[0].detail
    assert all("Gecko" not in e.detail and "Passphrase" not in e.detail for e in events)
    by_actor = (await accounts.ListAuditEvents(pb.ListAuditEventsRequest(actor_id="U0DATA"))).events
    assert [e.action for e in by_actor] == ["account.update"]


async def test_housekeeping_forgets_old_answers_and_idle_counters(accounts, database, clock) -> None:
    from sqlalchemy import func, select

    from services.accounts.models import IdempotencyRecord, ThrottleRecord
    from services.accounts.service import housekeeping

    await create_account(accounts, "jsmith01", request_id="old-request")
    await accounts.Authenticate(pb.AuthenticateRequest(username="jsmith01", password="Wrong-Pass1", source="10.0.0.1"))
    assert housekeeping(database, AccountStore(), clock) == 0
    clock.advance(days=31)
    await create_account(accounts, "jsmith02", request_id="new-request")
    assert housekeeping(database, AccountStore(), clock) == 3
    with database.read() as session:
        assert list(session.scalars(select(IdempotencyRecord.request_id))) == ["new-request"]
        assert session.scalar(select(func.count()).select_from(ThrottleRecord)) == 0
