"""Batches of account rows (trial run and upload) and roster batches, through gRPC on both databases."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import pytest
from sqlalchemy import func, select

from plumbing.db import Database
from portal.accounts.v1 import accounts_pb2 as pb
from services.accounts.batches import PasswordsToHash, prepare_batch, read_plan
from services.accounts.directory import Directory
from services.accounts.domain import AccountRow, Call, RowAction
from services.accounts.hashing import PasswordHashing
from services.accounts.models import AccountRecord, AuditEventRecord, SetPasswordTokenRecord, accounts_outbox
from services.accounts.mutations import Audit, Mutations
from services.accounts.plan_workers import MIN_ROWS as PLANNED_IN_WORKERS
from services.accounts.setpassword import LinkSettings
from services.accounts.store import AccountStore
from tests.accounts.conftest import (
    CHEAP_HASHING,
    STAFF_CALL,
    add_students,
    create_account,
    dump_tables,
    failure,
)


def row(number: int, username: str, **fields) -> pb.AccountRow:
    values = {"first_name": "Jane", "last_name": "Smith", "email": f"{username.lower()}@example.org"}
    values.update(fields)
    return pb.AccountRow(row_number=number, username=username, **values)


async def apply(stub, rows, validate_only: bool, request_id: str = "", send_invitations: bool = False,
                job_id: str = "", links_only: bool = False) -> list[pb.AccountRowResult]:
    reply = await stub.BatchApplyAccountRows(pb.BatchApplyAccountRowsRequest(
        rows=rows, validate_only=validate_only, request_id=request_id, send_invitations=send_invitations,
        job_id=job_id, links_only=links_only), metadata=STAFF_CALL)
    return list(reply.results)


def summary(results: list[pb.AccountRowResult]) -> list[tuple[int, str, list[str]]]:
    return [(r.row_number, pb.RowAction.Name(r.action).removeprefix("ROW_ACTION_"), [p.code for p in r.problems])
            for r in results]


async def seed(stub) -> list[pb.AccountRow]:
    """A roster, an existing parent with one child and a staff account, and rows of every kind against them."""
    await add_students(stub, "S1", "S2", "S3", "S4")
    await create_account(stub, "existing01", student_ids=["S1"])
    await create_account(stub, "teacher@board.org", email="teacher@board.org", type=pb.ACCOUNT_TYPE_STAFF)
    return [
        row(2, "newparent1", student_ids=["S2"], password="Tr4vel-Gecko"),
        row(3, "NewParent1", student_ids=["S3"]),
        row(4, "existing01", student_ids=["S1", "S4"]),
        row(5, "existing01", first_name="", last_name="", email="", student_ids=["S1"]),
        row(6, "TEACHER@board.org", email="teacher.home@example.org", student_ids=["S2"]),
        row(7, "conflict01", first_name="Ann"),
        row(8, "conflict01", first_name="Anne"),
        row(9, "abc", password="weak"),
        pb.AccountRow(row_number=10, student_ids=["S4"]),
        row(11, "invitee01", student_ids=["S3"]),
        row(12, "unknown01", student_ids=["S404"]),
    ]


async def test_a_trial_run_writes_nothing_and_the_upload_applies_exactly_its_plan(accounts, database) -> None:
    rows = await seed(accounts)
    before = dump_tables(database)
    planned = await apply(accounts, rows, validate_only=True, send_invitations=True)
    assert dump_tables(database) == before, "the trial run wrote something"
    assert summary(planned) == [
        (2, "CREATE", []), (3, "LINK", []), (4, "LINK", []), (5, "UNCHANGED", ["W_UNCHANGED"]),
        (6, "ERROR", ["E_TYPE_MISMATCH"]), (7, "ERROR", ["E_DUPLICATE_CONFLICT"]),
        (8, "ERROR", ["E_DUPLICATE_CONFLICT"]), (9, "ERROR", ["E_USERNAME_SHORT", "E_PASSWORD_RULES"]),
        (10, "SKIP", ["S_NO_ACCOUNT_WANTED"]), (11, "CREATE", []), (12, "ERROR", ["E_STUDENT_UNKNOWN"])]
    assert [p.column for p in planned[4].problems] == ["USER_TYPE"]
    assert [r.invitation_queued for r in planned] == [False] * 9 + [True, False]

    applied = await apply(accounts, rows, validate_only=False, send_invitations=True)
    assert applied == planned

    parent = await accounts.GetAccount(pb.GetAccountRequest(username_or_email="newparent1"))
    assert list(parent.student_ids) == ["S2", "S3"] and parent.has_password and parent.must_change_password
    existing = await accounts.GetAccount(pb.GetAccountRequest(username_or_email="existing01"))
    assert list(existing.student_ids) == ["S1", "S4"]
    staff = await accounts.GetAccount(pb.GetAccountRequest(username_or_email="teacher@board.org"))
    assert list(staff.student_ids) == []

    again = await apply(accounts, [r for r in rows if r.row_number in (3, 4, 11)], validate_only=True)
    assert summary(again) == [(3, "UNCHANGED", ["W_UNCHANGED"]), (4, "UNCHANGED", ["W_UNCHANGED"]),
                              (11, "UNCHANGED", ["W_UNCHANGED"])]


async def test_the_upload_re_checks_its_plan(accounts) -> None:
    await add_students(accounts, "S1")
    rows = [row(2, "late0001", student_ids=["S1"])]
    assert summary(await apply(accounts, rows, validate_only=True)) == [(2, "CREATE", [])]
    await create_account(accounts, "LATE0001", type=pb.ACCOUNT_TYPE_STAFF)
    assert summary(await apply(accounts, rows, validate_only=False)) == [(2, "ERROR", ["E_TYPE_MISMATCH"])]


async def test_invitations_go_to_the_outbox_with_a_working_link(accounts, database, settings) -> None:
    await add_students(accounts, "S1")
    results = await apply(accounts, [row(2, "Invitee01", email="Invitee@Example.org", student_ids=["S1"],
                                         school="Hillside")],
                          validate_only=False, send_invitations=True, job_id="job-42")
    assert results[0].invitation_queued
    with database.read() as session:
        outbox = [dict(r._mapping) for r in session.execute(select(accounts_outbox))]
    assert len(outbox) == 1
    email = outbox[0]
    assert (email["template"], email["recipient"], email["job_id"], email["school"]) == (
        "invitation", "Invitee@Example.org", "job-42", "Hillside")
    data = json.loads(email["data"])
    assert set(data) == {"username", "first_name", "link", "expire_time", "school_name"}
    assert (data["username"], data["first_name"], data["school_name"]) == ("Invitee01", "Jane", "Parent Portal")
    prefix = f"{settings.public_url}/set-password?token="
    assert data["link"].startswith(prefix)
    assert data["expire_time"] == "2026-09-08T08:00:00+00:00"
    token = data["link"].removeprefix(prefix)
    inspected = await accounts.InspectSetPasswordToken(pb.InspectSetPasswordTokenRequest(token=token))
    assert (inspected.state, inspected.username) == (pb.TOKEN_STATE_VALID, "Invitee01")
    assert token not in dump_tables(database).replace(email["data"], "")


@contextmanager
def directory_on(database: Database, settings, clock) -> Iterator[Directory]:
    """The service's account operations on the test's database, outside the server (to drive one step)."""
    store = AccountStore()
    hashing = PasswordHashing(1, CHEAP_HASHING)
    try:
        yield Directory(database, store, Mutations(database, store, clock), hashing,
                        LinkSettings(settings.public_url, settings.school_name, settings.web_secret), clock,
                        lambda: None)
    finally:
        hashing.shutdown()


async def test_invitation_emails_are_written_in_the_accounts_transaction(accounts, database, settings,
                                                                         clock) -> None:
    """The apply step writes accounts, tokens and outbox rows in the caller's transaction: when that
    transaction fails before its commit, none of them is left behind."""
    await add_students(accounts, "S1")
    rows = [AccountRow(2, "crash0001", "Ann", "Lee", "ann@example.org", student_ids=("S1",))]
    with directory_on(database, settings, clock) as directory:
        with pytest.raises(RuntimeError, match="before the commit"):
            with database.transaction() as session:
                audit = Audit(Call("U1", "Test"), clock())
                result = directory.batches.plan_and_write(session, audit, rows, True, "", {})
                assert result.results[0].invitation_queued
                assert session.scalar(select(func.count()).select_from(accounts_outbox)) == 1
                assert session.scalar(select(func.count()).select_from(AccountRecord)) == 1
                raise RuntimeError("the process dies before the commit")
    with database.read() as session:
        for table in (accounts_outbox, AccountRecord.__table__, SetPasswordTokenRecord.__table__):
            assert session.scalar(select(func.count()).select_from(table)) == 0


async def test_applying_hashes_the_passwords_a_changed_plan_needs(accounts, database, settings, clock) -> None:
    """Passwords are hashed before the write transaction for the rows the first plan names; if the plan made inside
    the transaction needs another one (the database changed in between), the transaction is given up, that
    password is hashed outside it, and the batch is applied."""
    rows = [AccountRow(2, "late0002", "Ann", "Lee", "ann@example.org", password="Tr4vel-Gecko", student_ids=("S9",))]
    with directory_on(database, settings, clock) as directory:
        stale = read_plan(database, directory.store, rows, False)  # S9 unknown: an error, no password to hash
        assert stale.plan.password_rows == frozenset()
        await add_students(accounts, "S9")

        async def planned_before(now):
            return stale

        result = await directory.apply_rows(Call("U1", "Test", "late:1"), rows, False, False, "",
                                            elsewhere=planned_before)
    assert result.results[0].action == RowAction.CREATE
    signed = await accounts.Authenticate(pb.AuthenticateRequest(username="late0002", password="Tr4vel-Gecko"))
    assert signed.outcome == pb.AUTHENTICATE_OUTCOME_OK
    with directory_on(database, settings, clock) as directory, database.transaction() as session:
        with pytest.raises(PasswordsToHash) as needed:  # inside a transaction it never waits for the hashing
            directory.batches.plan_and_write(session, Audit(Call("U1", "Test"), clock()),
                                             [AccountRow(3, "late0005", "Bo", "Lee", password="Tr4vel-Gecko")],
                                             False, "", {})
    assert needed.value.rows == [3]


async def test_a_retried_upload_with_the_same_request_id_changes_nothing(accounts, database: Database) -> None:
    await add_students(accounts, "S1", "S2")
    rows = [row(2, "retry0001", student_ids=["S1"]), row(3, "retry0002", student_ids=["S2"])]
    first = await apply(accounts, rows, validate_only=False, request_id="upload-1", send_invitations=True)
    snapshot = dump_tables(database)
    second = await apply(accounts, rows, validate_only=False, request_id="upload-1", send_invitations=True)
    assert second == first
    assert dump_tables(database) == snapshot


async def test_a_batch_is_limited_in_size(accounts) -> None:
    rows = [row(n, f"user{n:05d}") for n in range(5001)]
    error = await failure(accounts.BatchApplyAccountRows(pb.BatchApplyAccountRowsRequest(rows=rows,
                                                                                        validate_only=True)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_rows_find_their_roster_contact_by_email_and_respect_no_contact_flags(accounts) -> None:
    await accounts.BatchUpsertRoster(pb.BatchUpsertRosterRequest(
        students=[pb.Student(id="S1", first_name="Kid", last_name="Lee", contacts=[
            pb.StudentContact(contact=pb.Contact(id="C1", first_name="Ann", last_name="Lee",
                                                 email="Ann.Lee@example.org"), parental_responsibility=True),
            pb.StudentContact(contact=pb.Contact(id="C2", first_name="Bob", last_name="Lee", email="bob@example.org",
                                                 no_contact=True), parental_responsibility=True)])]),
        metadata=STAFF_CALL)
    results = await apply(accounts, [row(2, "annlee01", email="ann.lee@example.org", student_ids=["S1"]),
                                     row(3, "boblee01", email="bob@example.org", student_ids=["S1"])],
                          validate_only=False)
    assert summary(results) == [(2, "CREATE", []), (3, "ERROR", ["E_NO_CONTACT"])]
    assert (await accounts.GetAccount(pb.GetAccountRequest(username_or_email="annlee01"))).contact_id == "C1"
    found = await accounts.SearchRoster(pb.SearchRosterRequest(student_id="S1", include_contacts=True))
    assert [(c.contact.id, c.account_username) for c in found.students[0].contacts] == [("C1", "annlee01"),
                                                                                        ("C2", "")]


async def test_student_links_rows_only_add_students_to_existing_accounts(accounts) -> None:
    await add_students(accounts, "S1", "S2", "S3")
    await create_account(accounts, "existing01", student_ids=["S1"])
    await create_account(accounts, "teacher01", type=pb.ACCOUNT_TYPE_STAFF)
    rows = [row(2, "EXISTING01", first_name="Changed", email="changed@example.org", student_ids=["S2"]),
            row(3, "existing01", student_ids=["S1"]),
            row(4, "nobody001", student_ids=["S3"]),
            row(5, "teacher01", student_ids=["S3"]),
            pb.AccountRow(row_number=6, student_ids=["S3"])]
    planned = await apply(accounts, rows, validate_only=True, links_only=True)
    assert summary(planned) == [(2, "LINK", []), (3, "UNCHANGED", ["W_UNCHANGED"]),
                                (4, "ERROR", ["E_USERNAME_UNKNOWN"]), (5, "ERROR", ["E_TYPE_MISMATCH"]),
                                (6, "ERROR", ["E_REQUIRED"])]
    assert planned[2].problems[0].message == ("No account has the username 'nobody001': a student-links row only "
                                              "adds students to an existing account. Check the username, or create "
                                              "the account first.")
    assert await apply(accounts, rows, validate_only=False, links_only=True) == planned
    account = await accounts.GetAccount(pb.GetAccountRequest(username_or_email="existing01"))
    assert (account.first_name, account.email, list(account.student_ids)) == (
        "Jane", "existing01@example.org", ["S1", "S2"])
    with pytest.raises(grpc.aio.AioRpcError):
        await accounts.GetAccount(pb.GetAccountRequest(username_or_email="nobody001"))


async def test_undoing_an_upload_removes_unused_accounts_and_the_links_it_added(accounts, database) -> None:
    await add_students(accounts, "S1", "S2")
    await create_account(accounts, "existing01", student_ids=["S1"])
    await apply(accounts, [row(2, "fresh0001", student_ids=["S2"]),
                           row(3, "used00001", password="Tr4vel-Gecko", student_ids=["S2"]),
                           row(4, "existing01", student_ids=["S2"])], validate_only=False, send_invitations=True)
    signed = await accounts.Authenticate(pb.AuthenticateRequest(username="used00001", password="Tr4vel-Gecko"))
    assert signed.outcome == pb.AUTHENTICATE_OUTCOME_OK
    undo = pb.RevertAccountChangesRequest(
        created_usernames=["FRESH0001", "used00001", "gone00001"],
        added_links=[pb.AccountLinks(username="existing01", student_ids=["S2"])], request_id="undo-1")
    answer = await accounts.RevertAccountChanges(undo, metadata=STAFF_CALL)
    assert list(answer.removed_usernames) == ["fresh0001"]
    assert answer.links_removed == 1
    assert [(k.username, k.reason) for k in answer.kept] == [
        ("used00001", "the parent has signed in since the upload")]
    existing = await accounts.GetAccount(pb.GetAccountRequest(username_or_email="existing01"))
    assert list(existing.student_ids) == ["S1"]
    error = await failure(accounts.GetAccount(pb.GetAccountRequest(username_or_email="fresh0001")))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    snapshot = dump_tables(database)
    assert await accounts.RevertAccountChanges(undo, metadata=STAFF_CALL) == answer
    assert dump_tables(database) == snapshot
    events = await accounts.ListAuditEvents(pb.ListAuditEventsRequest(target="account:fresh0001"))
    assert [e.action for e in events.events][:1] == ["account.delete"] and '"via": "undo"' in events.events[0].detail


# The roster ---------------------------------------------------------------------------------------------------------


async def test_roster_upserts_create_update_and_never_delete(accounts, database) -> None:
    first = pb.BatchUpsertRosterRequest(
        students=[pb.Student(id="S1", first_name="Ann", last_name="Lee", grad_year=2031, group="7B", school="North"),
                  pb.Student(id="S2", first_name="Bo", last_name="Lee", grad_year=2033, group="5A", school="North")],
        contacts=[pb.Contact(id="C1", first_name="Mia", last_name="Lee", email="mia@example.org")],
        relationships=[pb.RosterRelationship(student_id="S1", contact_id="C1", relationship="mother",
                                             parental_responsibility=True, primary=True),
                       pb.RosterRelationship(student_id="S2", contact_id="C1", relationship="mother",
                                             parental_responsibility=True)])
    before = dump_tables(database)
    trial = await accounts.BatchUpsertRoster(pb.BatchUpsertRosterRequest(
        students=first.students, contacts=first.contacts, relationships=first.relationships, validate_only=True),
        metadata=STAFF_CALL)
    assert dump_tables(database) == before
    created = await accounts.BatchUpsertRoster(first, metadata=STAFF_CALL)
    assert created == trial
    assert (created.students_created, created.contacts_created, created.relationships_added) == (2, 1, 2)

    second = await accounts.BatchUpsertRoster(pb.BatchUpsertRosterRequest(
        students=[pb.Student(id="S1", first_name="Ann", last_name="Lee", grad_year=2031, group="8B", school="North")]),
        metadata=STAFF_CALL)
    assert (second.students_updated, second.unchanged) == (1, 0)
    assert [(c.id, c.action, list(c.changed_fields)) for c in second.changes] == [("S1", "update", ["group"])]
    everyone = await accounts.SearchRoster(pb.SearchRosterRequest())
    assert [s.id for s in everyone.students] == ["S1", "S2"], "a student the batch did not name was removed"


async def test_a_retried_roster_batch_answers_as_the_first_time(accounts, database) -> None:
    request = pb.BatchUpsertRosterRequest(students=[pb.Student(id="S1", first_name="Ann", last_name="Lee")],
                                          request_id="sync-1")
    first = await accounts.BatchUpsertRoster(request, metadata=STAFF_CALL)
    snapshot = dump_tables(database)
    again = await accounts.BatchUpsertRoster(request, metadata=STAFF_CALL)
    assert again == first and first.students_created == 1
    assert dump_tables(database) == snapshot


async def test_a_roster_batch_refuses_relationships_to_unknown_records(accounts) -> None:
    error = await failure(accounts.BatchUpsertRoster(pb.BatchUpsertRosterRequest(
        relationships=[pb.RosterRelationship(student_id="S9", contact_id="C9")]), metadata=STAFF_CALL))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == ("Relationship 1 names student S9 and contact C9, not in the roster: send the student "
                               "and the contact with it.")


async def test_roster_search_by_each_selector(accounts) -> None:
    await add_students(accounts, "S1", last_name="Adams", grad_year=2030, group="7B", school="North")
    await add_students(accounts, "S2", last_name="Baker", grad_year=2031, group="8C", school="South")
    await add_students(accounts, "S3", last_name="Adler", grad_year=2031, group="7B", school="South")
    await create_account(accounts, "parent01", student_ids=["S2"])
    from portal.common.v1 import jobs_pb2

    async def ids(selector: jobs_pb2.Selector | None = None, **query) -> list[str]:
        reply = await accounts.SearchRoster(pb.SearchRosterRequest(selector=selector, **query))
        return [s.id for s in reply.students]

    assert await ids() == ["S1", "S3", "S2"]
    assert await ids(jobs_pb2.Selector(all=True)) == ["S1", "S3", "S2"]
    assert await ids(jobs_pb2.Selector(school="south")) == ["S3", "S2"]
    assert await ids(jobs_pb2.Selector(group="7B")) == ["S1", "S3"]
    assert await ids(jobs_pb2.Selector(grad_year=2031)) == ["S3", "S2"]
    assert await ids(jobs_pb2.Selector(last_name_prefix="AD")) == ["S1", "S3"]
    assert await ids(jobs_pb2.Selector(usernames=jobs_pb2.UsernameList(usernames=["PARENT01"]))) == ["S2"]
    assert await ids(jobs_pb2.Selector(all=True, never_signed_in=True)) == ["S2"]
    page = await accounts.SearchRoster(pb.SearchRosterRequest(page_size=2))
    rest = await accounts.SearchRoster(pb.SearchRosterRequest(page_size=2, page_token=page.next_page_token))
    assert [s.id for s in page.students] + [s.id for s in rest.students] == ["S1", "S3", "S2"]
    assert page.total_size == 3 and not rest.next_page_token
    error = await failure(accounts.SearchRoster(pb.SearchRosterRequest(selector=jobs_pb2.Selector(school=" "))))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


def as_columns(rows: list[pb.AccountRow]) -> pb.AccountRowColumns:
    """The rows column by column, as the imports service sends them (a column empty in every row left out)."""
    columns = pb.AccountRowColumns(row_number=[r.row_number for r in rows],
                                   student_ids=[s for r in rows for s in r.student_ids],
                                   student_id_counts=[len(r.student_ids) for r in rows])
    for name in ("username", "first_name", "last_name", "email", "password", "type", "must_change_password",
                 "enabled", "contact_id", "school"):
        values = [getattr(r, name) for r in rows]
        if any(values):
            getattr(columns, name).extend(values)
    return columns


def from_columns(columns: pb.AccountRowResultColumns) -> list[pb.AccountRowResult]:
    results, ids, fields = [], list(columns.new_student_ids), list(columns.changed_fields)
    for index, number in enumerate(columns.row_number):
        linked, changed = columns.new_student_id_counts[index], columns.changed_field_counts[index]
        results.append(pb.AccountRowResult(
            row_number=number, action=columns.action[index], username=columns.username[index],
            invitation_queued=columns.invitation_queued[index], new_student_ids=ids[:linked],
            changed_fields=fields[:changed],
            problems=[p for i, p in zip(columns.problem_rows, columns.problems, strict=True) if i == index]))
        del ids[:linked], fields[:changed]
    return results


async def test_rows_sent_column_by_column_get_the_same_answers_as_rows_sent_one_by_one(accounts, database) -> None:
    rows = await seed(accounts)
    rows.append(row(13, "typed0001", type=pb.ACCOUNT_TYPE_STUDENT, must_change_password="N", enabled="N"))
    one_by_one = await apply(accounts, rows, validate_only=True, send_invitations=True)
    reply = await accounts.BatchApplyAccountRows(pb.BatchApplyAccountRowsRequest(
        columns=as_columns(rows), validate_only=True, send_invitations=True), metadata=STAFF_CALL)
    assert not reply.results
    assert from_columns(reply.columns) == one_by_one
    assert {pb.RowAction.Name(r.action) for r in one_by_one} >= {"ROW_ACTION_CREATE", "ROW_ACTION_LINK",
                                                                 "ROW_ACTION_ERROR", "ROW_ACTION_SKIP"}

    applied = await accounts.BatchApplyAccountRows(pb.BatchApplyAccountRowsRequest(
        columns=as_columns(rows), request_id="columns-1", send_invitations=True), metadata=STAFF_CALL)
    created = [r.username for r in from_columns(applied.columns) if r.action == pb.ROW_ACTION_CREATE]
    assert created == ["newparent1", "invitee01", "typed0001"]
    with database.read() as session:
        stored = session.execute(select(AccountRecord.username, AccountRecord.type, AccountRecord.status)
                                 .where(AccountRecord.username.in_(created))).all()
    assert sorted(stored) == [("invitee01", "guardian", "invited"), ("newparent1", "guardian", "invited"),
                              ("typed0001", "student", "disabled")]


async def test_a_column_that_does_not_match_the_rows_is_refused_by_name(accounts) -> None:
    columns = as_columns([row(2, "parent0001", student_ids=["S1"]), row(3, "parent0002")])
    del columns.email[1:]
    error = await failure(accounts.BatchApplyAccountRows(pb.BatchApplyAccountRowsRequest(
        columns=columns, validate_only=True), metadata=STAFF_CALL))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "email holds 1 values for 2 rows" in error.details()
    columns = as_columns([row(2, "parent0001", student_ids=["S1"]), row(3, "parent0002")])
    columns.student_id_counts[1] = 4
    error = await failure(accounts.BatchApplyAccountRows(pb.BatchApplyAccountRowsRequest(
        columns=columns, validate_only=True), metadata=STAFF_CALL))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "student_id_counts add up to 5" in error.details()


async def test_a_large_trial_batch_is_planned_in_a_worker_process_with_the_same_answers(accounts, caplog) -> None:
    rows = await seed(accounts)
    rows += [row(100 + n, f"family{n:04d}", student_ids=["S1", "S2"] if n % 3 else ["S404"])
             for n in range(PLANNED_IN_WORKERS)]
    rows += [row(900, "family0007", first_name="Someone else")]  # disagrees with row 107
    with caplog.at_level("WARNING", logger="portal.accounts"):
        reply = await accounts.BatchApplyAccountRows(pb.BatchApplyAccountRowsRequest(
            columns=as_columns(rows), validate_only=True, send_invitations=True), metadata=STAFF_CALL)
    assert not [r for r in caplog.records if "worker process" in r.getMessage()], "planned in the service instead"
    in_worker = from_columns(reply.columns)
    assert in_worker == await apply(accounts, rows, validate_only=True, send_invitations=True)
    by_row = {r.row_number: r for r in in_worker}
    assert pb.RowAction.Name(by_row[101].action) == "ROW_ACTION_CREATE" and by_row[101].invitation_queued
    assert [p.code for p in by_row[103].problems] == ["E_STUDENT_UNKNOWN"]
    assert [p.code for p in by_row[900].problems] == ["E_DUPLICATE_CONFLICT"]


async def test_a_large_upload_batch_is_applied_in_a_worker_process_exactly_as_planned(accounts, database,
                                                                                       caplog) -> None:
    """An upload's batch of columns is planned, prepared and written by a worker process: the same answers as
    its trial run, every account, link, invitation and audit event written once, and the answer kept for its
    request id (sent again, it is answered from the record and nothing new is written)."""
    await add_students(accounts, "S1", "S2")
    await create_account(accounts, "family0001", student_ids=["S1"])
    rows = [row(100 + n, f"family{n:04d}", student_ids=["S1", "S2"] if n % 3 else ["S404"])
            for n in range(PLANNED_IN_WORKERS)]
    planned = from_columns((await accounts.BatchApplyAccountRows(pb.BatchApplyAccountRowsRequest(
        columns=as_columns(rows), validate_only=True, send_invitations=True), metadata=STAFF_CALL)).columns)
    request = pb.BatchApplyAccountRowsRequest(columns=as_columns(rows), send_invitations=True, job_id="job-7",
                                              request_id="job-7:batch:0")
    with caplog.at_level("WARNING", logger="portal.accounts"):
        applied = from_columns((await accounts.BatchApplyAccountRows(request, metadata=STAFF_CALL)).columns)
    assert not [r for r in caplog.records if "worker process" in r.getMessage()], "applied in the service instead"
    assert [(r.row_number, r.action, list(r.new_student_ids)) for r in applied] == [
        (r.row_number, r.action, list(r.new_student_ids)) for r in planned]
    by_row = {r.row_number: r for r in applied}
    assert pb.RowAction.Name(by_row[101].action) == "ROW_ACTION_LINK"  # family0001 existed with S1: S2 added
    assert pb.RowAction.Name(by_row[102].action) == "ROW_ACTION_CREATE" and by_row[102].invitation_queued
    assert [p.code for p in by_row[103].problems] == ["E_STUDENT_UNKNOWN"]
    created = sum(1 for r in applied if pb.RowAction.Name(r.action) == "ROW_ACTION_CREATE")

    def counts() -> tuple[int, ...]:
        with database.read() as session:
            return tuple(session.scalar(select(func.count()).select_from(table)) for table in (
                AccountRecord.__table__, SetPasswordTokenRecord.__table__, accounts_outbox, AuditEventRecord.__table__))

    after = counts()
    assert after[:3] == (created + 1, created, created)  # the one made before, and one invitation each
    again = from_columns((await accounts.BatchApplyAccountRows(request, metadata=STAFF_CALL)).columns)
    assert again == applied and counts() == after


async def test_prepared_writes_are_planned_again_when_the_database_changed_meanwhile(accounts, database, settings,
                                                                                    clock) -> None:
    """A batch's writes are built before its transaction; if another writer changes what the plan read in the
    meantime, the transaction plans the batch again instead of writing what no longer holds."""
    await add_students(accounts, "S1")
    rows = [AccountRow(2, "late0003", "Ann", "Lee", "ann@example.org", student_ids=("S1",)),
            AccountRow(3, "late0004", "Bob", "Lee", "bob@example.org", student_ids=("S1",))]
    call = Call("U1", "Test", "job-8:batch:0")
    with directory_on(database, settings, clock) as directory:
        planned = read_plan(database, directory.store, rows, True)
        prepared = prepare_batch(directory.links, call, clock(), planned, {}, "job-8")
        assert [r.action for r in prepared.result.results] == [RowAction.CREATE, RowAction.CREATE]
        await create_account(accounts, "late0003", student_ids=["S1"])  # another writer, after the plan
        result = directory.batches.apply(call, rows, True, "job-8", {}, False, prepared)
    assert [r.action for r in result.results] == [RowAction.UPDATE, RowAction.CREATE]  # its names, from the row
    with database.read() as session:
        names = session.scalars(select(AccountRecord.username).order_by(AccountRecord.username)).all()
        tokens = session.scalar(select(func.count()).select_from(SetPasswordTokenRecord.__table__))
    assert names == ["late0003", "late0004"] and tokens == 1
