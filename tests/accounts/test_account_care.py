"""Account care over gRPC, on SQLite and PostgreSQL: policies and how sign-in, passwords and invitations honour them,
per-student permissions, renames, contact drift, staff clashes, contact cards and the logons export."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any

import grpc
from google.protobuf import field_mask_pb2
from openpyxl import load_workbook
from sqlalchemy import select

from plumbing.db import Database
from portal.accounts.v1 import accounts_pb2 as pb
from portal.common.v1 import jobs_pb2
from services.accounts.models import AccountStudentRecord, accounts_outbox
from tests.accounts.conftest import STAFF_CALL, Clock, add_students, create_account, details, failure

PASSWORD = "Correct1Horse"


async def set_policy(stub: Any, school: str, request_id: str = "", **values: Any) -> pb.Policy:
    policy = pb.Policy(school=school)
    for key, value in values.items():
        if key == "default_permissions":
            policy.default_permissions.CopyFrom(pb.PermissionList(permissions=value))
        elif value is not None:
            setattr(policy, key, value)
    return await stub.UpdatePolicy(pb.UpdatePolicyRequest(policy=policy, update_mask=field_mask_pb2.FieldMask(
        paths=list(values)), request_id=request_id), metadata=STAFF_CALL)


async def set_password(stub: Any, username: str, password: str, must_change: bool | None) -> pb.Account:
    paths = ["password"] + (["must_change_password"] if must_change is not None else [])
    return await stub.UpdateAccount(pb.UpdateAccountRequest(
        username=username, account=pb.Account(username=username, must_change_password=bool(must_change)),
        password=password, update_mask=field_mask_pb2.FieldMask(paths=paths)), metadata=STAFF_CALL)


async def sign_in(stub: Any, username: str, password: str = PASSWORD) -> pb.AuthenticateResponse:
    return await stub.Authenticate(pb.AuthenticateRequest(username=username, password=password))


def outbox(database: Database) -> list[tuple[str, str, dict[str, Any]]]:
    with database.read() as session:
        rows = session.execute(select(accounts_outbox.c.template, accounts_outbox.c.recipient,
                                      accounts_outbox.c.data).order_by(accounts_outbox.c.id)).all()
    return [(template, recipient, json.loads(data) if data else {}) for template, recipient, data in rows]


# Policies -------------------------------------------------------------------------------------------------------

async def test_policies_school_over_district_and_the_stricter_school_for_a_parent_of_two(accounts: Any) -> None:
    await add_students(accounts, "N1", school="North High")
    await add_students(accounts, "H1", school="Hillside")
    district = await set_policy(accounts, "", min_password_length=10)
    assert district.min_password_length == 10 and district.updated_by == "Olive Office"
    north = await set_policy(accounts, "north high", two_factor=pb.TWO_FACTOR_POLICY_REQUIRED, invite_expiry_days=3)
    assert north.school == "North High" and not north.HasField("min_password_length")
    await create_account(accounts, "parent01", PASSWORD + "xy", student_ids=["N1", "H1"])
    found = await accounts.GetEffectivePolicy(pb.GetEffectivePolicyRequest(username="parent01"))
    assert (found.two_factor, found.min_password_length, found.invite_expiry_days) == (
        pb.TWO_FACTOR_POLICY_REQUIRED, 10, 3)
    assert dict(found.sources)["two_factor"] == "North High" and dict(found.sources)["min_password_length"] == \
        "district"
    assert list(found.schools) == ["Hillside", "North High"]
    listed = await accounts.ListPolicies(pb.ListPoliciesRequest())
    assert [p.school for p in listed.schools] == ["North High"]
    # Clearing a school's value puts it back on the district's.
    cleared = await set_policy(accounts, "North High", two_factor=None)
    assert cleared.two_factor == pb.TWO_FACTOR_POLICY_UNSPECIFIED
    events = await accounts.ListAuditEvents(pb.ListAuditEventsRequest(target="policy:school:north high"))
    assert [e.actor_name for e in events.events] == ["Olive Office", "Olive Office"]


async def test_bad_policy_values_and_unknown_schools_are_refused_naming_the_fix(accounts: Any) -> None:
    await add_students(accounts, "N1", school="North High")
    error = await failure(set_policy(accounts, "North High", min_password_length=5))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == ("min_password_length must be from 8 to 64 characters; 5 is out of range: choose a "
                               "number from 8 to 64.")
    assert details(error)[1] == "E_POLICY_VALUE"
    error = await failure(set_policy(accounts, "Nort High", invite_expiry_days=5))
    assert "No student or account belongs to a school called 'Nort High'" in error.details()
    assert "(the schools are North High)" in error.details() and details(error)[1] == "E_SCHOOL_UNKNOWN"
    error = await failure(set_policy(accounts, "", default_permissions=["grades", "homework"]))
    assert "'homework' is not a permission: use grades, attendance, reports or messages" in error.details()
    checked = await accounts.UpdatePolicy(pb.UpdatePolicyRequest(
        policy=pb.Policy(min_password_length=12), update_mask=field_mask_pb2.FieldMask(paths=["min_password_length"]),
        validate_only=True), metadata=STAFF_CALL)
    assert checked.min_password_length == 12
    assert not (await accounts.GetPolicy(pb.GetPolicyRequest())).HasField("min_password_length")


async def test_the_minimum_length_applies_to_staff_set_created_and_uploaded_passwords(accounts: Any) -> None:
    await add_students(accounts, "N1", school="North High")
    await set_policy(accounts, "North High", min_password_length=14)
    await create_account(accounts, "parent01", student_ids=["N1"])
    error = await failure(set_password(accounts, "parent01", PASSWORD, True))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(error)[0][0][0] == "password"
    assert "The password needs at least 14 characters" in error.details()
    error = await failure(create_account(accounts, "parent02", PASSWORD, student_ids=["N1"]))
    assert "at least 14 characters" in error.details()
    batch = await accounts.BatchApplyAccountRows(pb.BatchApplyAccountRowsRequest(rows=[pb.AccountRow(
        row_number=2, username="parent03", first_name="Pat", last_name="Three", email="p3@example.org",
        password=PASSWORD, student_ids=["N1"])], validate_only=True), metadata=STAFF_CALL)
    assert [p.code for p in batch.results[0].problems] == ["E_PASSWORD_RULES"]
    assert (await set_password(accounts, "parent01", PASSWORD + "xyz!", True)).must_change_password


async def test_staff_set_password_forces_a_change_at_sign_in_only_when_ticked(accounts: Any) -> None:
    await create_account(accounts, "parent01")
    await set_password(accounts, "parent01", PASSWORD, True)
    assert (await sign_in(accounts, "parent01")).must_change_password
    await set_password(accounts, "parent01", PASSWORD + "2", False)
    answer = await sign_in(accounts, "parent01", PASSWORD + "2")
    assert answer.outcome == pb.AUTHENTICATE_OUTCOME_OK and not answer.must_change_password
    # Not said: the policy's default (the district's built-in: must change).
    await set_password(accounts, "parent01", PASSWORD + "3", None)
    assert (await sign_in(accounts, "parent01", PASSWORD + "3")).must_change_password
    await set_policy(accounts, "", must_change_password=False)
    await set_password(accounts, "parent01", PASSWORD + "4", None)
    assert not (await sign_in(accounts, "parent01", PASSWORD + "4")).must_change_password


async def test_a_school_requiring_two_factor_sends_its_parents_to_enrolment(accounts: Any) -> None:
    await add_students(accounts, "N1", school="North High")
    await add_students(accounts, "H1", school="Hillside")
    await create_account(accounts, "parent01", PASSWORD, student_ids=["N1"])
    await create_account(accounts, "parent02", PASSWORD, student_ids=["H1"])
    assert not (await sign_in(accounts, "parent01")).must_enroll_two_factor
    await set_policy(accounts, "North High", two_factor=pb.TWO_FACTOR_POLICY_REQUIRED)
    answer = await sign_in(accounts, "parent01")
    assert answer.outcome == pb.AUTHENTICATE_OUTCOME_OK and answer.must_enroll_two_factor
    assert answer.account.two_factor == pb.TWO_FACTOR_STATE_REQUIRED
    assert not (await sign_in(accounts, "parent02")).must_enroll_two_factor
    events = await accounts.ListAuditEvents(pb.ListAuditEventsRequest(target="account:parent01"))
    assert "two_factor policy" in events.events[0].detail


async def test_with_two_factor_off_parents_cannot_enrol_unless_staff_turn_it_on(accounts: Any) -> None:
    await create_account(accounts, "parent01", PASSWORD)
    await set_policy(accounts, "", two_factor=pb.TWO_FACTOR_POLICY_OFF)
    error = await failure(accounts.EnrollTwoFactor(pb.EnrollTwoFactorRequest(username="parent01")))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and details(error)[1] == "TWO_FACTOR_OFF"
    await accounts.UpdateAccount(pb.UpdateAccountRequest(
        account=pb.Account(username="parent01", two_factor=pb.TWO_FACTOR_STATE_REQUIRED),
        update_mask=field_mask_pb2.FieldMask(paths=["two_factor"])), metadata=STAFF_CALL)
    enrolled = await accounts.EnrollTwoFactor(pb.EnrollTwoFactorRequest(username="parent01"))
    assert enrolled.otpauth_uri.startswith("otpauth://totp/")


async def test_an_invitation_lasts_as_long_as_the_school_policy_says(accounts: Any, clock: Clock) -> None:
    await add_students(accounts, "N1", school="North High")
    await set_policy(accounts, "North High", invite_expiry_days=3)
    await create_account(accounts, "parent01", student_ids=["N1"])
    issued = await accounts.IssueSetPasswordToken(pb.IssueSetPasswordTokenRequest(
        username="parent01", purpose=pb.TOKEN_PURPOSE_INVITATION), metadata=STAFF_CALL)
    assert issued.expire_time.ToDatetime(tzinfo=clock.now.tzinfo) == clock.now + timedelta(days=3)


# Permissions ----------------------------------------------------------------------------------------------------

async def test_permissions_default_from_the_policy_and_survive_adding_a_sibling(accounts: Any,
                                                                                database: Database) -> None:
    await add_students(accounts, "N1", "N2", school="North High")
    await set_policy(accounts, "North High", default_permissions=["grades", "attendance", "messages"])
    await create_account(accounts, "parent01", PASSWORD, student_ids=["N1"])
    changed = await accounts.UpdateStudentPermissions(pb.UpdateStudentPermissionsRequest(
        username="parent01", student_id="N1", grant=["reports"], revoke=["messages"]), metadata=STAFF_CALL)
    assert [(link.student_id, list(link.permissions)) for link in changed.links] == [
        ("N1", ["grades", "attendance", "reports"])]
    linked = await accounts.LinkStudents(pb.LinkStudentsRequest(username="parent01", student_ids=["N1", "N2"]),
                                         metadata=STAFF_CALL)
    assert {link.student_id: list(link.permissions) for link in linked.links} == {
        "N1": ["grades", "attendance", "reports"], "N2": ["grades", "attendance", "messages"]}
    with database.read() as session:
        stored = dict(session.execute(select(AccountStudentRecord.student_id, AccountStudentRecord.permissions)).all())
    assert stored == {"N1": "grades,attendance,reports", "N2": "grades,attendance,messages"}

    async def may(student: str, what: str) -> tuple[bool, str]:
        answer = await accounts.CheckStudentAccess(pb.CheckStudentAccessRequest(
            username="PARENT01", student_id=student, permission=what))
        return answer.allowed, answer.reason

    assert await may("N1", "reports") == (True, "ALLOWED")
    assert await may("N1", "messages") == (False, "PERMISSION_OFF")
    assert await may("N9", "grades") == (False, "NOT_LINKED")
    error = await failure(may("N1", "homework"))
    assert "'homework' is not a permission: use grades, attendance, reports or messages" in error.details()
    error = await failure(accounts.UpdateStudentPermissions(pb.UpdateStudentPermissionsRequest(
        username="parent01", student_id="N1", grant=["gradez"]), metadata=STAFF_CALL))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and details(error)[1] == "E_PERMISSION_UNKNOWN"
    error = await failure(accounts.UpdateStudentPermissions(pb.UpdateStudentPermissionsRequest(
        username="nobody99", student_id="N1", grant=["grades"]), metadata=STAFF_CALL))
    assert error.code() == grpc.StatusCode.NOT_FOUND and "No account has the username 'nobody99'" in error.details()
    await accounts.UpdateAccount(pb.UpdateAccountRequest(
        account=pb.Account(username="parent01", status=pb.ACCOUNT_STATUS_DISABLED),
        update_mask=field_mask_pb2.FieldMask(paths=["status"])), metadata=STAFF_CALL)
    assert await may("N1", "grades") == (False, "ACCOUNT_DISABLED")


# Rename ---------------------------------------------------------------------------------------------------------

async def test_a_rename_keeps_sign_ins_tells_the_parent_and_refuses_a_clash(accounts: Any,
                                                                            database: Database) -> None:
    await add_students(accounts, "N1", school="North High")
    await create_account(accounts, "parent01", PASSWORD, email="pat@example.org")
    await create_account(accounts, "staff001", PASSWORD, email="staff@example.org", type=pb.ACCOUNT_TYPE_STAFF,
                         schools=["Central Office"])
    assert (await sign_in(accounts, "parent01")).outcome == pb.AUTHENTICATE_OUTCOME_OK
    renamed = await accounts.UpdateAccount(pb.UpdateAccountRequest(
        username="parent01", account=pb.Account(username="pat.parent"),
        update_mask=field_mask_pb2.FieldMask(paths=["username"])), metadata=STAFF_CALL)
    assert renamed.username == "pat.parent"
    history = await accounts.ListSignIns(pb.ListSignInsRequest(username="pat.parent"))
    assert [s.success for s in history.sign_ins] == [True]
    notices = [(to, data["subject"], data["body"]) for template, to, data in outbox(database) if template == "notice"]
    assert notices == [("pat@example.org", "Your Parent Portal parent portal username has changed",
                        notices[0][2])]
    assert "your username is now pat.parent (it was parent01)" in notices[0][2]
    error = await failure(accounts.UpdateAccount(pb.UpdateAccountRequest(
        username="pat.parent", account=pb.Account(username="STAFF001"),
        update_mask=field_mask_pb2.FieldMask(paths=["username"])), metadata=STAFF_CALL))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS and details(error)[1] == "E_USERNAME_TAKEN"
    assert "the staff account 'staff001' at Central Office" in error.details()
    short = await failure(accounts.UpdateAccount(pb.UpdateAccountRequest(
        username="pat.parent", account=pb.Account(username="pat"),
        update_mask=field_mask_pb2.FieldMask(paths=["username"])), metadata=STAFF_CALL))
    assert details(short)[1] == "E_USERNAME_SHORT"


async def test_enabling_an_account_nobody_used_makes_it_invited_again(accounts: Any) -> None:
    await create_account(accounts, "parent01")
    for status in (pb.ACCOUNT_STATUS_DISABLED, pb.ACCOUNT_STATUS_ACTIVE):
        account = await accounts.UpdateAccount(pb.UpdateAccountRequest(
            account=pb.Account(username="parent01", status=status),
            update_mask=field_mask_pb2.FieldMask(paths=["status"])), metadata=STAFF_CALL)
    assert account.status == pb.ACCOUNT_STATUS_INVITED


# Contact drift --------------------------------------------------------------------------------------------------

def roster_request(email: str, last_name: str = "Smith", request_id: str = "",
                   validate_only: bool = False) -> pb.BatchUpsertRosterRequest:
    contact = pb.Contact(id="C1", first_name="Jane", last_name=last_name, email=email)
    return pb.BatchUpsertRosterRequest(
        students=[pb.Student(id="N1", first_name="Sam", last_name="Smith", school="North High",
                             contacts=[pb.StudentContact(contact=contact, relationship="mother",
                                                         parental_responsibility=True)])],
        request_id=request_id, validate_only=validate_only)


async def test_a_roster_change_of_email_is_reported_then_applied_with_notices_at_both_addresses(
        accounts: Any, database: Database, clock: Clock) -> None:
    await accounts.BatchUpsertRoster(roster_request("jane@old.example"), metadata=STAFF_CALL)
    await create_account(accounts, "jane@old.example", PASSWORD, email="jane@old.example", contact_id="C1",
                         student_ids=["N1"])
    assert (await accounts.ListContactDrift(pb.ListContactDriftRequest())).total_size == 0
    clock.advance(minutes=1)
    trial = await accounts.BatchUpsertRoster(roster_request("jane@new.example", validate_only=True),
                                             metadata=STAFF_CALL)
    assert [(d.username, list(d.fields), d.applied) for d in trial.account_drift] == [
        ("jane@old.example", ["email", "username"], False)]
    saved = await accounts.BatchUpsertRoster(roster_request("jane@new.example", "Jones"), metadata=STAFF_CALL)
    assert [list(d.fields) for d in saved.account_drift] == [["email", "last_name", "username"]]
    clock.advance(minutes=1)
    page = await accounts.ListContactDrift(pb.ListContactDriftRequest())
    assert page.total_size == 1 and page.drift[0].username == "jane@old.example"
    assert [(f.field, f.account_value, f.contact_value) for f in page.drift[0].fields] == [
        ("email", "jane@old.example", "jane@new.example"), ("last_name", "Smith", "Jones"),
        ("username", "jane@old.example", "jane@new.example")]
    chunks = [c async for c in accounts.ExportContactDrift(pb.ExportContactDriftRequest(as_of=page.as_of))]
    sheet = load_workbook(io.BytesIO(b"".join(c.data for c in chunks)))["Contact drift"]
    assert [row[:5] for row in sheet.iter_rows(min_row=2, values_only=True)] == [
        ("jane@old.example", "C1", "email", "jane@old.example", "jane@new.example"),
        ("jane@old.example", "C1", "last name", "Smith", "Jones"),
        ("jane@old.example", "C1", "username", "jane@old.example", "jane@new.example")]
    done = await accounts.ApplyContactDrift(pb.ApplyContactDriftRequest(all=True, as_of=page.as_of,
                                                                        request_id="apply-1"), metadata=STAFF_CALL)
    assert done.applied_count == 1 and done.not_applied_count == 0
    account = await accounts.GetAccount(pb.GetAccountRequest(username_or_email="jane@new.example"))
    assert (account.username, account.email, account.last_name) == ("jane@new.example", "jane@new.example", "Jones")
    notices = sorted(to for template, to, _data in outbox(database) if template == "notice")
    assert notices == ["jane@new.example", "jane@old.example"]
    assert (await accounts.ListContactDrift(pb.ListContactDriftRequest())).total_size == 0
    events = await accounts.ListAuditEvents(pb.ListAuditEventsRequest(target="account:jane@new.example"))
    assert events.events[0].actor_name == "Olive Office" and "contact drift" in events.events[0].detail


async def test_apply_leaves_alone_what_changed_after_the_list_and_what_is_blocked(accounts: Any,
                                                                                  clock: Clock) -> None:
    await accounts.BatchUpsertRoster(roster_request("jane@old.example"), metadata=STAFF_CALL)
    await create_account(accounts, "jsmith01", PASSWORD, email="jane@old.example", contact_id="C1")
    await create_account(accounts, "other001", PASSWORD, email="taken@example.org")
    clock.advance(minutes=1)
    await accounts.BatchUpsertRoster(roster_request("taken@example.org"), metadata=STAFF_CALL)
    page = await accounts.ListContactDrift(pb.ListContactDriftRequest())
    assert page.drift[0].blocked == "the email taken@example.org belongs to the account other001"
    done = await accounts.ApplyContactDrift(pb.ApplyContactDriftRequest(usernames=["jsmith01", "ghost999"],
                                                                        as_of=page.as_of), metadata=STAFF_CALL)
    assert done.applied_count == 0
    assert [(k.username, k.reason) for k in done.not_applied] == [
        ("jsmith01", "not applied: the email taken@example.org belongs to the account other001"),
        ("ghost999", "no account has this username")]
    clock.advance(minutes=1)
    await accounts.BatchUpsertRoster(roster_request("jane@newer.example"), metadata=STAFF_CALL)
    done = await accounts.ApplyContactDrift(pb.ApplyContactDriftRequest(all=True, as_of=page.as_of),
                                            metadata=STAFF_CALL)
    assert done.applied_count == 0
    assert "changed after the list you confirmed" in done.not_applied[0].reason


async def test_update_mode_applies_a_roster_change_at_once(tmp_path: Any, database_url: str, clock: Clock,
                                                           ) -> None:
    from tests.accounts.conftest import serve_accounts
    from tests.support.services import make_settings

    settings = make_settings(tmp_path / "data", database_url, contact_changes="update")
    async with serve_accounts(settings, clock) as stub:
        await stub.BatchUpsertRoster(roster_request("jane@old.example"), metadata=STAFF_CALL)
        await create_account(stub, "jsmith01", PASSWORD, email="jane@old.example", contact_id="C1")
        clock.advance(minutes=1)
        trial = await stub.BatchUpsertRoster(roster_request("jane@new.example", validate_only=True),
                                             metadata=STAFF_CALL)
        assert [(d.username, d.applied) for d in trial.account_drift] == [("jsmith01", True)]
        assert (await stub.GetAccount(pb.GetAccountRequest(username_or_email="jsmith01"))).email == \
            "jane@old.example"
        saved = await stub.BatchUpsertRoster(roster_request("jane@new.example"), metadata=STAFF_CALL)
        assert [(d.username, list(d.fields), d.applied) for d in saved.account_drift] == [
            ("jsmith01", ["email"], True)]
        assert (await stub.GetAccount(pb.GetAccountRequest(username_or_email="jsmith01"))).email == \
            "jane@new.example"


# Clashes, contact cards, logons -----------------------------------------------------------------------------------

async def test_staff_clashes_list_both_usernames_and_schools(accounts: Any) -> None:
    await accounts.BatchUpsertRoster(roster_request("teacher@district.example"), metadata=STAFF_CALL)
    await create_account(accounts, "teacher@district.example", PASSWORD, email="teacher@district.example",
                         type=pb.ACCOUNT_TYPE_STAFF, schools=["Central Office"])
    await create_account(accounts, "parent01", PASSWORD, email="someone@example.org")
    page = await accounts.ListStaffClashes(pb.ListStaffClashesRequest())
    assert [(c.email, c.staff_username, list(c.staff_schools), c.parent_username, list(c.parent_schools),
             c.parent_contact_id) for c in page.clashes] == [
        ("teacher@district.example", "teacher@district.example", ["Central Office"], "", ["North High"], "C1")]
    card = (await accounts.LookupContacts(pb.LookupContactsRequest(contact_id_or_email="C1"))).cards[0]
    assert (card.account_username, card.no_account_code) == ("", "S_STAFF_EMAIL")


async def test_contact_cards_show_the_account_or_why_there_is_none(accounts: Any) -> None:
    await accounts.BatchUpsertRoster(pb.BatchUpsertRosterRequest(
        students=[pb.Student(id="N1", first_name="Sam", last_name="Smith", school="North High")],
        contacts=[pb.Contact(id="C1", first_name="Jane", last_name="Smith", email="jane@example.org"),
                  pb.Contact(id="C2", first_name="John", last_name="Smith"),
                  pb.Contact(id="C3", first_name="Joe", last_name="Smith", email="joe@example.org"),
                  pb.Contact(id="C4", first_name="Ann", last_name="Smith", email="ann@example.org", no_contact=True),
                  pb.Contact(id="C5", first_name="Gran", last_name="Smith", email="gran@example.org")],
        relationships=[pb.RosterRelationship(student_id="N1", contact_id=c, relationship=r,
                                             parental_responsibility=p)
                       for c, r, p in (("C1", "mother", True), ("C2", "father", True), ("C3", "uncle", False),
                                       ("C4", "aunt", True), ("C5", "grandmother", True))]), metadata=STAFF_CALL)
    await create_account(accounts, "jsmith01", PASSWORD, email="jane@example.org", contact_id="C1",
                         student_ids=["N1"])

    async def card(value: str) -> pb.ContactCard:
        return (await accounts.LookupContacts(pb.LookupContactsRequest(contact_id_or_email=value))).cards[0]

    jane = await card("JANE@example.org")
    assert jane.account_username == "jsmith01" and jane.contact.id == "C1"
    assert [(s.student_id, s.relationship, s.parental_responsibility, s.linked, list(s.permissions))
            for s in jane.students] == [("N1", "mother", True, True, ["grades", "attendance", "reports", "messages"])]
    reasons = {c: ((await card(c)).no_account_code) for c in ("C2", "C3", "C4", "C5")}
    assert reasons == {"C2": "S_NO_EMAIL", "C3": "S_NO_PARENTAL_RESPONSIBILITY", "C4": "S_COURT_ORDER",
                       "C5": "NOT_GENERATED"}
    assert "Not generated yet" in (await card("C5")).no_account_reason
    error = await failure(card("C99"))
    assert error.code() == grpc.StatusCode.NOT_FOUND and "No roster contact has the id or email" in error.details()


async def test_the_logons_export_opens_and_matches_the_database(accounts: Any) -> None:
    await add_students(accounts, "N1", "N2", school="North High", grad_year=2031)
    await add_students(accounts, "H1", school="Hillside", grad_year=2030)
    await create_account(accounts, "parent01", PASSWORD, email="=cmd@example.org", last_name="+Smith",
                         student_ids=["N1", "N2"])
    await create_account(accounts, "parent02", email="two@example.org", student_ids=["H1"])
    await accounts.IssueSetPasswordToken(pb.IssueSetPasswordTokenRequest(
        username="parent02", purpose=pb.TOKEN_PURPOSE_INVITATION, send_email=True), metadata=STAFF_CALL)
    await create_account(accounts, "staff001", PASSWORD, type=pb.ACCOUNT_TYPE_STAFF)
    await accounts.UpdateStudentPermissions(pb.UpdateStudentPermissionsRequest(
        username="parent01", student_id="N2", revoke=["messages", "reports"]), metadata=STAFF_CALL)
    await sign_in(accounts, "parent01")

    async def export(**selector: Any) -> list[tuple[Any, ...]]:
        request = pb.ExportLogonsRequest(selector=jobs_pb2.Selector(**selector))
        chunks = [c async for c in accounts.ExportLogons(request)]
        assert chunks[0].filename.startswith("parent-logons-") and chunks[0].filename.endswith(".xlsx")
        book = load_workbook(io.BytesIO(b"".join(c.data for c in chunks)))
        return list(book["Parent logons"].iter_rows(values_only=True))

    rows = await export(all=True)
    assert rows[0] == ("Username", "First name", "Last name", "Email", "Status",
                       "Students and what the parent may see", "Two-factor", "Invitation", "Created", "Last sign-in")
    listed = await accounts.ListAccounts(pb.ListAccountsRequest(type=pb.ACCOUNT_TYPE_GUARDIAN))
    assert [r[0] for r in rows[1:]] == [a.username for a in listed.accounts] == ["parent01", "parent02"]
    one, two = rows[1], rows[2]
    assert one[2:6] == ("'+Smith", "'=cmd@example.org", "active",
                        "N1 Kid N1 Smith (North High): grades, attendance, reports, messages; "
                        "N2 Kid N2 Smith (North High): grades, attendance")
    assert one[7] == "accepted (signed in)" and one[9] is not None
    assert two[4:7] == ("invited", "H1 Kid H1 Smith (Hillside): grades, attendance, reports, messages", "off")
    assert two[7].startswith("sent, valid until ") and two[9] is None
    assert [r[0] for r in (await export(school="hillside"))[1:]] == ["parent02"]
    assert [r[0] for r in (await export(grad_year=2031))[1:]] == ["parent01"]
