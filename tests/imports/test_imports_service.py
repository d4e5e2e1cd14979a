"""The imports service end to end: real accounts, notify and imports servers, a real SMTP server, real workbooks."""

from __future__ import annotations

import io

import grpc
import pytest
from openpyxl import load_workbook

from portal.accounts.v1 import accounts_pb2
from portal.common.v1 import jobs_pb2
from portal.imports.v1 import imports_pb2
from tests.imports.flows import all_problems, download, send_file, trial_run, upload
from tests.support.services import make_settings
from tests.support.smtp import SmtpServer
from tests.support.stack import Stack, eventually, running_stack
from tests.support.workbooks import LINKS_HEADER, PARENT_HEADER, ROSTER_HEADER, csv_bytes, oneroster_zip, xlsx_bytes

ROSTER = [
    ROSTER_HEADER,
    ["S1001", "Ada", "Smith", 2030, "7A", "North High", "C1", "Mary", "Smith", "mary@example.org", "Mother", "Y",
     "Y", "0700 000001"],
    ["S1002", "Ben", "Smith", 2032, "5B", "North High", "C1", "Mary", "Smith", "mary@example.org", "Mother", "Y",
     "Y", "0700 000001"],
    ["S1003", "Cy", "Jones", 2031, "6C", "North High", "C2", "Tom", "Jones", "tom@example.org", "Father", "Y", "N",
     ""],
]
PARENTS = [
    PARENT_HEADER,
    ["maryS01", "Mary", "Smith", "mary@example.org", "", "GUARDIAN", "S1001", ""],
    ["MARYs01", "Mary", "Smith", "mary@example.org", "", "GUARDIAN", "S1002", ""],
    ["tom", "Tom", "Jones", "tom@example.org", "", "GUARDIAN", "S1003", ""],
    ["jonesfam", "Jo", "Jones", "not-an-email", "", "GUARDIAN", "S1003", ""],
    ["lee.parent", "Lee", "Park", "lee@example.org", "Tulip-Harbour7", "", "S9999", ""],
    ["kim.parent", "Kim", "Li", "kim@example.org", "weak", "", "S1003", ""],
    # Text that a spreadsheet would run as a formula if written back as it is.
    ["formula.dad", "@SUM(1+1)", "Jones", "dad@example.org", "", "", "S1003", ""],
]


@pytest.fixture
def smtp():
    with SmtpServer() as server:
        yield server


@pytest.fixture
def stack_settings(tmp_path, database_url, smtp):
    return make_settings(tmp_path / "data", database_url, smtp_host=smtp.host, smtp_port=smtp.port,
                         public_url="https://portal.example.org", import_batch_rows=3, job_lease_seconds=5)


async def load_roster(stack: Stack) -> None:
    trial = await trial_run(stack, "roster.xlsx", xlsx_bytes(ROSTER))
    assert trial.file_kind == imports_pb2.FILE_KIND_ROSTER
    assert trial.counts.errors == 0, list(trial.first_problems)
    await upload(stack, trial.job.id)
    found = await stack.accounts.SearchRoster(accounts_pb2.SearchRosterRequest(
        selector=jobs_pb2.Selector(all=True), page_size=100))
    assert sorted(s.id for s in found.students) == ["S1001", "S1002", "S1003"]


async def test_trial_run_upload_reupload_and_undo(stack_settings, smtp) -> None:
    async with running_stack(stack_settings) as stack:
        await load_roster(stack)

        trial = await trial_run(stack, "parents.xlsx", xlsx_bytes(PARENTS))
        assert trial.file_kind == imports_pb2.FILE_KIND_PARENT_ACCOUNTS
        shown = [(p.row_number, p.column, p.code, p.message) for p in await all_problems(stack, trial.job.id)]
        assert (trial.counts.rows, trial.counts.create, trial.counts.errors) == (7, 2, 4), shown
        assert trial.counts.invitations == 2
        problems = {(p.row_number, p.column, p.code) for p in await all_problems(stack, trial.job.id)
                    if not p.warning}
        assert problems == {
            (4, "LOGONID", "E_USERNAME_SHORT"),
            (5, "EMAIL", "E_EMAIL_INVALID"),
            (6, "STUDENT_IDS", "E_STUDENT_UNKNOWN"),
            (7, "PASSWORD", "E_PASSWORD_RULES"),
        }
        # Nothing was written by the trial run.
        with pytest.raises(grpc.RpcError) as missing:
            await stack.accounts.GetAccount(accounts_pb2.GetAccountRequest(username_or_email="maryS01"))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND

        book = load_workbook(io.BytesIO(await download(stack, trial.job.id, "annotated")))
        sheet = book.worksheets[0]
        header = [cell.value for cell in sheet[1]]
        status, email = header.index("STATUS") + 1, header.index("EMAIL") + 1
        assert "E_EMAIL_INVALID" in str(sheet.cell(5, status).value)
        assert sheet.cell(5, email).fill.fgColor.rgb.endswith("FFC7CE") or sheet.cell(5, email).comment is not None
        first_name = sheet.cell(8, header.index("FIRST_NAME") + 1).value
        assert first_name != "@SUM(1+1)" and "SUM(1+1)" in first_name

        done = await upload(stack, trial.job.id)
        assert (done.counts.create, done.counts.errors) == (2, 4)
        mary = await stack.accounts.GetAccount(accounts_pb2.GetAccountRequest(username_or_email="MARYS01"))
        assert sorted(mary.student_ids) == ["S1001", "S1002"]
        mails = await eventually(lambda: _value(smtp.messages), lambda m: len(m) >= 2, what="two invitations")
        assert sorted(m.rcpt_tos[0] for m in mails) == ["dad@example.org", "mary@example.org"]
        for mail in mails:
            assert "https://portal.example.org/set-password?token=" in mail.part("text/plain")

        again = await trial_run(stack, "parents.xlsx", xlsx_bytes(PARENTS))
        assert (again.counts.create, again.counts.unchanged, again.counts.errors) == (0, 3, 4)
        second = await upload(stack, again.job.id)
        assert second.counts.create == 0
        assert len(smtp.messages) == 2

        undo = await stack.imports.UndoUpload(imports_pb2.UndoUploadRequest(job_id=done.job.id,
                                                                            request_id=f"{done.job.id}:undo"))
        from tests.imports.flows import finished

        undone = await finished(stack, undo.id)
        assert "2 accounts removed" in undone.job.summary
        with pytest.raises(grpc.RpcError) as gone:
            await stack.accounts.GetAccount(accounts_pb2.GetAccountRequest(username_or_email="maryS01"))
        assert gone.value.code() == grpc.StatusCode.NOT_FOUND


async def test_the_same_file_id_twice_is_one_trial_run(stack_settings) -> None:
    async with running_stack(stack_settings) as stack:
        data = xlsx_bytes(PARENTS)
        first = await send_file(stack, "parents.xlsx", data, request_id="F0FILE1")
        second = await send_file(stack, "parents.xlsx", data, request_id="F0FILE1")
        assert first.id == second.id
        jobs = await stack.imports.ListImportJobs(imports_pb2.ListImportJobsRequest())
        assert [j.job.id for j in jobs.jobs] == [first.id]


async def test_a_bad_file_gets_its_message_and_no_job(stack_settings) -> None:
    async with running_stack(stack_settings) as stack:
        with pytest.raises(grpc.RpcError) as refused:
            await send_file(stack, "parents.xlsx", b"<!DOCTYPE html><html><body>Sign in to Slack</body></html>")
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "files:read" in refused.value.details()
        jobs = await stack.imports.ListImportJobs(imports_pb2.ListImportJobsRequest())
        assert list(jobs.jobs) == []


async def _value(value):
    return value


async def test_a_student_links_file_adds_links_to_existing_accounts_only(stack_settings) -> None:
    async with running_stack(stack_settings) as stack:
        await load_roster(stack)
        await stack.accounts.CreateAccount(accounts_pb2.CreateAccountRequest(account=accounts_pb2.Account(
            username="marysmith", first_name="Mary", last_name="Smith", email="mary@example.org",
            type=accounts_pb2.ACCOUNT_TYPE_GUARDIAN, student_ids=["S1001"]), request_id="create-mary"))
        links = [LINKS_HEADER, ["MarySmith", "S1002"], ["nobody99", "S1003"], ["marysmith", "S1001"]]
        trial = await trial_run(stack, "links.csv", csv_bytes(links))
        assert trial.file_kind == imports_pb2.FILE_KIND_STUDENT_LINKS
        problems = {(p.row_number, p.code) for p in await all_problems(stack, trial.job.id) if not p.warning}
        assert (3, "E_USERNAME_UNKNOWN") in problems
        assert trial.counts.errors == 1
        done = await upload(stack, trial.job.id)
        assert done.counts.students_linked == 1
        mary = await stack.accounts.GetAccount(accounts_pb2.GetAccountRequest(username_or_email="marysmith"))
        assert sorted(mary.student_ids) == ["S1001", "S1002"]
        assert mary.first_name == "Mary"
        with pytest.raises(grpc.RpcError) as missing:
            await stack.accounts.GetAccount(accounts_pb2.GetAccountRequest(username_or_email="nobody99"))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_oneroster_bundle_loads_students_and_their_guardians(stack_settings) -> None:
    users = [
        ["sourcedId", "status", "dateLastModified", "enabledUser", "orgSourcedIds", "role", "username", "userIds",
         "givenName", "familyName", "middleName", "identifier", "email", "sms", "phone", "agentSourcedIds",
         "grades", "password"],
        ["u-s1", "", "", "true", "org-1", "student", "", "", "Zoe", "Muller", "", "1001", "", "", "", "u-p1", "07",
         ""],
        ["u-p1", "", "", "true", "org-1", "parent", "", "", "Anna", "Muller", "", "", "anna@example.org", "",
         "555-0100", "", "", ""],
    ]
    orgs = [["sourcedId", "status", "dateLastModified", "name", "type", "identifier", "parentSourcedId"],
            ["org-1", "", "", "Lincoln High", "school", "LHS", ""]]
    async with running_stack(stack_settings) as stack:
        trial = await trial_run(stack, "oneroster.zip", oneroster_zip(users, orgs=orgs))
        assert trial.file_kind == imports_pb2.FILE_KIND_ONEROSTER
        assert trial.counts.errors == 0
        await upload(stack, trial.job.id)
        found = await stack.accounts.SearchRoster(accounts_pb2.SearchRosterRequest(
            selector=jobs_pb2.Selector(school="Lincoln High"), include_contacts=True))
        [student] = found.students
        assert (student.id, student.first_name) == ("1001", "Zoe")
        assert [c.contact.email for c in student.contacts] == ["anna@example.org"]
        assert student.contacts[0].parental_responsibility


async def test_the_template_lists_the_selected_students_with_their_guardians(stack_settings) -> None:
    async with running_stack(stack_settings) as stack:
        await load_roster(stack)
        data = b""
        async for chunk in stack.imports.GetTemplate(imports_pb2.GetTemplateRequest(
                selector=jobs_pb2.Selector(last_name_prefix="smi"))):
            data += chunk.data
        sheet = load_workbook(io.BytesIO(data)).worksheets[0]
        header = [cell.value for cell in sheet[1]]
        rows = [dict(zip(header, row, strict=False)) for row in sheet.iter_rows(min_row=2, values_only=True)]
        assert sorted(r["STUDENT_IDS"] for r in rows) == ["S1001", "S1002"]
        assert {r["EMAIL"] for r in rows} == {"mary@example.org"}
        # Sent back as it is, the template is a valid parent-accounts file.
        trial = await trial_run(stack, "template.xlsx", data)
        assert trial.file_kind == imports_pb2.FILE_KIND_PARENT_ACCOUNTS
