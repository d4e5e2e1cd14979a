"""Generation from the roster through gRPC, with the real accounts service, on both databases: the plan writes
nothing, the run applies exactly the plan, a re-run does nothing, siblings and duplicates, staff emails, what
changed in between, the dashboard, resending invitations and reminders."""

from __future__ import annotations

import io
import json
from typing import Any

import grpc
from openpyxl import load_workbook
from sqlalchemy import select

from plumbing.config import Settings
from plumbing.db import Database
from portal.accounts.v1 import accounts_pb2 as pb
from portal.common.v1 import jobs_pb2
from services.accounts.models import accounts_outbox
from tests.accounts.conftest import STAFF_CALL, Clock, create_account, details, dump_tables, failure, serve_accounts
from tests.support.services import make_settings
from tests.support.stack import eventually

ENDED = (jobs_pb2.JOB_STATE_SUCCEEDED, jobs_pb2.JOB_STATE_FAILED, jobs_pb2.JOB_STATE_CANCELLED)
ALL = jobs_pb2.Selector(all=True)


def kid(sid: str, last: str = "Smith", group: str = "7B") -> pb.Student:
    return pb.Student(id=sid, first_name=f"Kid{sid}", last_name=last, grad_year=2031, group=group, school="Hillside")


def guardian(cid: str, first: str = "Jane", last: str = "Smith", email: str = "", **fields: Any) -> pb.Contact:
    return pb.Contact(id=cid, first_name=first, last_name=last, email=email, **fields)


def rel(sid: str, cid: str, pr: bool = True, primary: bool = True) -> pb.RosterRelationship:
    return pb.RosterRelationship(student_id=sid, contact_id=cid, relationship="parent", parental_responsibility=pr,
                                 primary=primary)


async def roster(stub: Any, students: list[pb.Student], contacts: list[pb.Contact],
                 links: list[pb.RosterRelationship]) -> None:
    await stub.BatchUpsertRoster(pb.BatchUpsertRosterRequest(students=students, contacts=contacts,
                                                             relationships=links), metadata=STAFF_CALL)


async def plan(stub: Any, selector: jobs_pb2.Selector = ALL, primary: bool = False,
               workbook: bool = False) -> pb.PlanGenerationResponse:
    return await stub.PlanGeneration(pb.PlanGenerationRequest(
        selector=selector, guardians=pb.GUARDIAN_SCOPE_PRIMARY if primary else pb.GUARDIAN_SCOPE_ALL,
        line_limit=1000, write_workbook=workbook), metadata=STAFF_CALL)


async def finished(stub: Any, job_id: str) -> jobs_pb2.Job:
    async def probe() -> jobs_pb2.Job:
        return await stub.GetJob(pb.GetJobRequest(id=job_id), metadata=STAFF_CALL)

    job = await eventually(probe, lambda j: j.state in ENDED, timeout=60, what=f"job {job_id}")
    assert job.state == jobs_pb2.JOB_STATE_SUCCEEDED, job
    return job


async def run(stub: Any, plan_id: str, invitations: bool = True) -> jobs_pb2.Job:
    job = await stub.StartGeneration(pb.StartGenerationRequest(plan_id=plan_id, send_invitations=invitations),
                                     metadata=STAFF_CALL)
    return await finished(stub, job.id)


async def download(stub: Any, job_id: str, name: str) -> Any:
    data = b""
    async for chunk in stub.DownloadJobFile(pb.DownloadJobFileRequest(job_id=job_id, name=name),
                                            metadata=STAFF_CALL):
        data += chunk.data
    return load_workbook(io.BytesIO(data), read_only=True)


def sheet_rows(book: Any, name: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in book[name].iter_rows(min_row=2, values_only=True)]


async def account(stub: Any, who: str) -> pb.Account:
    return await stub.GetAccount(pb.GetAccountRequest(username_or_email=who), metadata=STAFF_CALL)


def lines(answer: pb.PlanGenerationResponse) -> dict[tuple[str, str], tuple[str, str, str]]:
    return {(line.student_id, line.contact_id): (pb.GenerationAction.Name(line.action).removeprefix(
        "GENERATION_ACTION_").lower(), line.username, line.code) for line in answer.lines}


def domain_tables(database: Database) -> str:
    """Every table but the jobs table (a plan is recorded there, like a trial run)."""
    return "\n".join(line for line in dump_tables(database).splitlines() if not line.startswith("accounts_jobs:"))


async def family_roster(stub: Any) -> None:
    """Jane on two siblings; two records of one dad (same email); a grandmother without parental responsibility;
    a contact with no email; a court order; a staff member's email; and a possible duplicate of Jane."""
    await create_account(stub, "teacher01", email="teacher@school.example", type=pb.ACCOUNT_TYPE_STAFF)
    await roster(stub, [kid("S1"), kid("S2"), kid("S3", "Jones"), kid("S4", "Brown")], [
        guardian("C1", email="jane@example.org", phone="555 010 1234"),
        guardian("C2", "John", email="john@example.org"),
        guardian("C3", "John", email="JOHN@example.org"),
        guardian("C4", "Gran", email="gran@example.org"),
        guardian("C5", "Nomail", "Jones"),
        guardian("C6", "Banned", "Jones", email="banned@example.org", no_contact=True),
        guardian("C7", "Tess", "Brown", email="teacher@school.example"),
        guardian("C8", email="jane.smith@work.example", phone="(555) 010-1234"),
    ], [rel("S1", "C1"), rel("S2", "C1"), rel("S1", "C2", primary=False), rel("S2", "C3", primary=False),
        rel("S1", "C4", pr=False), rel("S3", "C5"), rel("S3", "C6"), rel("S4", "C7"), rel("S4", "C8")])


async def test_the_plan_writes_nothing_and_says_what_a_run_would_do(settings: Settings, clock: Clock,
                                                                    database: Database) -> None:
    async with serve_accounts(settings, clock) as stub:
        await family_roster(stub)
        before = domain_tables(database)
        answer = await plan(stub, workbook=True)
        assert domain_tables(database) == before
        found = lines(answer)
        assert found[("S1", "C1")] == ("create", "jane@example.org", "W_POSSIBLE_DUPLICATE")
        assert found[("S2", "C1")][:2] == ("create", "jane@example.org")
        assert found[("S1", "C2")] == found[("S2", "C3")] == ("create", "john@example.org", "")
        assert found[("S1", "C4")] == ("skip", "", "S_NO_PARENTAL_RESPONSIBILITY")
        assert found[("S3", "C5")] == ("skip", "", "S_NO_EMAIL")
        assert found[("S3", "C6")] == ("skip", "", "S_COURT_ORDER")
        assert found[("S4", "C7")] == ("skip", "", "S_STAFF_EMAIL")
        assert found[("S4", "C8")][0] == "create"
        counts = answer.counts
        assert (counts.accounts_to_create, counts.links_to_add, counts.skipped_contacts) == (3, 5, 4)
        assert counts.students_without_account == 1 and counts.possible_duplicates == 1
        assert answer.summary.startswith("3 accounts will be created, 0 existing accounts gain a student")
        assert {r.code: r.count for r in answer.reasons} == {"S_COURT_ORDER": 1, "S_NO_EMAIL": 1,
                                                             "S_NO_PARENTAL_RESPONSIBILITY": 1, "S_STAFF_EMAIL": 1}
        assert [list(d.contact_ids) for d in answer.possible_duplicates] == [["C1", "C8"]]
        book = await download(stub, answer.plan_id, "plan")
        assert len(sheet_rows(book, "Plan")) == 9 and sheet_rows(book, "Possible duplicates")
        primary = await plan(stub, primary=True)
        assert lines(primary)[("S1", "C2")] == ("skip", "", "S_NOT_PRIMARY")
        assert primary.counts.accounts_to_create == 2


async def test_the_run_applies_exactly_the_plan_and_a_rerun_does_nothing(settings: Settings, clock: Clock,
                                                                         database: Database) -> None:
    async with serve_accounts(settings, clock) as stub:
        await family_roster(stub)
        shown = await plan(stub)
        job = await run(stub, shown.plan_id)
        assert job.kind == "generate" and job.summary.startswith("3 accounts created")
        jane = await account(stub, "jane@example.org")
        assert sorted(jane.student_ids) == ["S1", "S2"] and jane.role == "parent"
        assert jane.type == pb.ACCOUNT_TYPE_GUARDIAN and jane.contact_id == "C1"
        john = await account(stub, "john@example.org")
        assert sorted(john.student_ids) == ["S1", "S2"]  # two records of one dad: one account with both
        created = {(line.student_id, line.username) for line in shown.lines if line.action in (
            pb.GENERATION_ACTION_CREATE, pb.GENERATION_ACTION_LINK)}
        made = set()
        for username in {u for _s, u in created}:
            made |= {(s, username) for s in (await account(stub, username)).student_ids}
        assert made == created  # run equals plan
        with database.read() as session:
            emails = list(session.execute(select(accounts_outbox.c.recipient, accounts_outbox.c.template,
                                                 accounts_outbox.c.job_id)))
        assert sorted(emails) == sorted((e, "invitation", job.id) for e in (
            "jane@example.org", "john@example.org", "jane.smith@work.example"))
        report = await download(stub, job.id, "report")
        assert {row[0] for row in sheet_rows(report, "Accounts")} == {"jane@example.org", "john@example.org",
                                                                      "jane.smith@work.example"}
        assert {row[8] for row in sheet_rows(report, "Skipped")} == {"S_NO_PARENTAL_RESPONSIBILITY", "S_NO_EMAIL",
                                                                     "S_COURT_ORDER", "S_STAFF_EMAIL"}
        events = await stub.ListAuditEvents(pb.ListAuditEventsRequest(target="account:jane@example.org"),
                                            metadata=STAFF_CALL)
        assert json.loads(events.events[0].detail)["job_id"] == job.id

        before = domain_tables(database)
        again = await plan(stub)
        assert (again.counts.accounts_to_create, again.counts.accounts_gaining_students) == (0, 0)
        assert {a for a, _u, _c in lines(again).values()} == {"complete", "skip"}
        rerun = await run(stub, again.plan_id)
        assert rerun.summary.startswith("0 accounts created, 0 existing accounts gained a student")
        # Nothing but the audit trail of the (empty) run moved.
        assert _without_audit(domain_tables(database)) == _without_audit(before)


def _without_audit(tables: str) -> str:
    return "\n".join(line for line in tables.splitlines() if not line.startswith("accounts_audit_events:"))


async def test_a_new_sibling_keeps_the_first_child_and_gains_the_second(settings: Settings, clock: Clock) -> None:
    async with serve_accounts(settings, clock) as stub:
        await roster(stub, [kid("S1")], [guardian("C1", email="jane@example.org")], [rel("S1", "C1")])
        await run(stub, (await plan(stub)).plan_id)
        assert list((await account(stub, "jane@example.org")).student_ids) == ["S1"]
        await roster(stub, [kid("S2", group="3C")], [], [rel("S2", "C1")])
        # Generating for the new sibling's group only (seed 004's trap): the first child stays.
        answer = await plan(stub, jobs_pb2.Selector(group="3C"))
        assert lines(answer) == {("S2", "C1"): ("link", "jane@example.org", "")}
        assert answer.summary.startswith("0 accounts will be created, 1 existing account gains a student")
        await run(stub, answer.plan_id)
        assert sorted((await account(stub, "jane@example.org")).student_ids) == ["S1", "S2"]


async def test_what_changed_between_the_plan_and_the_run_is_reported_not_applied(settings: Settings,
                                                                                 clock: Clock) -> None:
    async with serve_accounts(settings, clock) as stub:
        await roster(stub, [kid("S1"), kid("S2", "Jones")],
                     [guardian("C1", email="jane@example.org"),
                      guardian("C2", "Pat", "Jones", email="pat@example.org")],
                     [rel("S1", "C1"), rel("S2", "C2")])
        shown = await plan(stub)
        # Meanwhile: staff create Pat's account by hand, and a new guardian appears.
        await create_account(stub, "pjones01", first_name="Pat", last_name="Jones", email="pat@example.org")
        await roster(stub, [kid("S3")], [guardian("C3", "Lee", email="lee@example.org")], [rel("S3", "C3")])
        job = await run(stub, shown.plan_id)
        assert "1 account created" in job.summary
        with_lee = await stub.ListAccounts(pb.ListAccountsRequest(usernames=["lee@example.org"]), metadata=STAFF_CALL)
        assert not with_lee.accounts  # not in the plan shown: not created
        pat = await account(stub, "pjones01")
        assert list(pat.student_ids) == ["S2"]  # the plan's intent, applied to the account made meanwhile
        report = await download(stub, job.id, "report")
        changes = {row[1]: row for row in sheet_rows(report, "Changed since plan")}
        assert changes["C2"][4] == "yes" and "linked to it" in changes["C2"][5]
        assert changes["C3"][4] == "no" and "New since the plan" in changes["C3"][5]


async def test_a_plan_runs_once_and_expires(settings: Settings, clock: Clock) -> None:
    async with serve_accounts(settings, clock) as stub:
        await roster(stub, [kid("S1")], [guardian("C1", email="jane@example.org")], [rel("S1", "C1")])
        shown = await plan(stub)
        first = await stub.StartGeneration(pb.StartGenerationRequest(plan_id=shown.plan_id), metadata=STAFF_CALL)
        second = await stub.StartGeneration(pb.StartGenerationRequest(plan_id=shown.plan_id, request_id="other"),
                                            metadata=STAFF_CALL)
        assert first.id == second.id
        await finished(stub, first.id)
        late = await plan(stub)
        clock.advance(days=2)
        error = await failure(stub.StartGeneration(pb.StartGenerationRequest(plan_id=late.plan_id),
                                                   metadata=STAFF_CALL))
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and details(error)[1] == "PLAN_EXPIRED"
        missing = await failure(stub.StartGeneration(pb.StartGenerationRequest(plan_id="acc_nope"),
                                                     metadata=STAFF_CALL))
        assert missing.code() == grpc.StatusCode.NOT_FOUND


async def test_usernames_by_first_initial_and_last_name(tmp_path: Any, database_url: str, clock: Clock) -> None:
    settings = make_settings(tmp_path / "scheme", database_url, username_scheme="initial_lastname")
    async with serve_accounts(settings, clock) as stub:
        await create_account(stub, "jsmith", email="staff.smith@school.example", type=pb.ACCOUNT_TYPE_STAFF)
        await roster(stub, [kid("S1"), kid("S2")], [guardian("C1", email="jane@example.org"),
                                                    guardian("C2", "John", email="john@example.org")],
                     [rel("S1", "C1"), rel("S2", "C2")])
        answer = await plan(stub)
        assert {line.contact_id: line.username for line in answer.lines} == {"C1": "jsmith2", "C2": "jsmith3"}
        await run(stub, answer.plan_id, invitations=False)
        assert (await account(stub, "jsmith3")).email == "john@example.org"


async def test_the_roster_dashboard_counts_and_lists(settings: Settings, clock: Clock) -> None:
    async with serve_accounts(settings, clock) as stub:
        await family_roster(stub)
        board = await stub.GetRosterDashboard(pb.GetRosterDashboardRequest(selector=ALL), metadata=STAFF_CALL)
        counts = {item.name: item.count for item in board.lists}
        assert board.students == 4
        assert counts == {"students_without_account": 1, "missing_email": 1, "no_parental_responsibility": 1,
                          "shared_email": 0, "staff_email": 1, "possible_duplicates": 1, "invalid_email": 0,
                          "court_order": 1}
        data = b""
        async for chunk in stub.DownloadRosterList(pb.DownloadRosterListRequest(selector=ALL, name="missing_email"),
                                                   metadata=STAFF_CALL):
            data += chunk.data
        book = load_workbook(io.BytesIO(data), read_only=True)
        assert [row[:2] for row in book.worksheets[0].iter_rows(min_row=2, values_only=True)] == [
            ("C5", "Nomail Jones")]


def _links(database: Database) -> dict[str, str]:
    """Recipient -> set-password token of the newest invitation email per recipient still in the outbox."""
    found: dict[str, str] = {}
    with database.read() as session:
        for recipient, data in session.execute(select(accounts_outbox.c.recipient, accounts_outbox.c.data)
                                               .order_by(accounts_outbox.c.id)):
            link = json.loads(data).get("link", "")
            if link:
                found[recipient] = link.split("token=", 1)[1]
    return found


async def test_resend_issues_a_fresh_link_and_the_old_one_stops_working(settings: Settings, clock: Clock,
                                                                        database: Database) -> None:
    async with serve_accounts(settings, clock) as stub:
        await roster(stub, [kid("S1"), kid("S2")], [guardian("C1", email="jane@example.org"),
                                                    guardian("C2", "John", email="john@example.org")],
                     [rel("S1", "C1"), rel("S2", "C2")])
        await run(stub, (await plan(stub)).plan_id)
        old = _links(database)
        await stub.RedeemSetPasswordToken(pb.RedeemSetPasswordTokenRequest(token=old["john@example.org"],
                                                                           new_password="Correct1Horse"))
        job = await stub.StartResendInvitations(pb.StartResendInvitationsRequest(selector=ALL, request_id="r1"),
                                                metadata=STAFF_CALL)
        done = await finished(stub, job.id)
        assert done.kind == "resend_invitations" and done.summary.startswith("1 invitation sent again")
        fresh = _links(database)
        assert set(fresh) == {"jane@example.org", "john@example.org"} and fresh["jane@example.org"] != old[
            "jane@example.org"] and fresh["john@example.org"] == old["john@example.org"]
        inspect = stub.InspectSetPasswordToken
        assert (await inspect(pb.InspectSetPasswordTokenRequest(token=old["jane@example.org"]))).state == \
            pb.TOKEN_STATE_REVOKED
        assert (await inspect(pb.InspectSetPasswordTokenRequest(token=fresh["jane@example.org"]))).state == \
            pb.TOKEN_STATE_VALID


async def test_a_reminder_goes_out_once_before_a_link_expires(tmp_path: Any, database_url: str, clock: Clock,
                                                              ) -> None:
    settings = make_settings(tmp_path / "reminders", database_url, invite_reminder_days=2)
    database = Database(settings.resolved_database_url, "accounts", pool_size=2)
    try:
        async with serve_accounts(settings, clock) as stub:
            await roster(stub, [kid("S1")], [guardian("C1", email="jane@example.org")], [rel("S1", "C1")])
            await run(stub, (await plan(stub)).plan_id)

        def reminders() -> list[tuple[str, str]]:
            with database.read() as session:
                return [(r, json.loads(d)["subject"]) for r, d in session.execute(
                    select(accounts_outbox.c.recipient, accounts_outbox.c.data)
                    .where(accounts_outbox.c.template == "notice"))]

        assert reminders() == []
        clock.advance(days=6)  # the invitation (7 days) expires within 2 days now
        for _restart in range(2):
            async with serve_accounts(settings, clock):
                await eventually(lambda: _async(reminders), bool, timeout=30, what="the reminder")
        assert [r for r, _s in reminders()] == ["jane@example.org"]
        assert "expires soon" in reminders()[0][1]
    finally:
        database.dispose()


async def _async(fn: Any) -> Any:
    return fn()
