"""A staff file (STAFF_ID, USERNAME/LOGONID, FIRST_NAME, LAST_NAME, EMAIL, SCHOOL) through the same trial run and
upload as parent files: staff accounts share the district's one username namespace, so a row reusing a parent's
username is refused with its status code, and the message names the school holding the parent account."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from plumbing.config import Settings
from portal.accounts.v1 import accounts_pb2
from portal.imports.v1 import imports_pb2
from tests.imports.flows import all_problems, trial_run, upload
from tests.support.services import make_settings
from tests.support.smtp import SmtpServer
from tests.support.stack import running_stack
from tests.support.workbooks import STAFF_HEADER, xlsx_bytes

A = accounts_pb2


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def stack_settings(tmp_path: Any, database_url: str, smtp: SmtpServer) -> Settings:
    return make_settings(tmp_path / "data", database_url, **smtp.settings_overrides(), job_lease_seconds=5)


async def test_a_staff_row_reusing_a_parents_username_is_refused_naming_the_school(stack_settings: Settings) -> None:
    async with running_stack(stack_settings) as stack:
        await stack.accounts.BatchUpsertRoster(A.BatchUpsertRosterRequest(students=[A.Student(
            id="N1", first_name="Sam", last_name="Smith", grad_year=2031, school="North High")]), timeout=30)
        await stack.accounts.CreateAccount(A.CreateAccountRequest(account=A.Account(
            username="jsmith01", first_name="Jane", last_name="Smith", email="jane@home.example",
            student_ids=["N1"]), password="Correct1Horse"), timeout=30)
        staff = xlsx_bytes([STAFF_HEADER,
                            ["E-1", "JSmith01", "John", "Smith", "john.smith@district.example", "Central Office"],
                            ["E-2", "teach02", "Ann", "Lee", "ann.lee@district.example", "Central Office"]])
        trial = await trial_run(stack, "staff.xlsx", staff)
        assert trial.file_kind == imports_pb2.FILE_KIND_STAFF
        problems = await all_problems(stack, trial.job.id)
        assert [(p.row_number, p.code) for p in problems if not p.warning] == [(2, "E_TYPE_MISMATCH")]
        message = next(p.message for p in problems if p.code == "E_TYPE_MISMATCH")
        assert message == ("The username 'JSmith01' already belongs to a guardian account ('jsmith01' at North High), "
                           "and this row is for a staff account: usernames are unique across the district whatever "
                           "the type, so choose another username.")
        assert (trial.counts.create, trial.counts.errors) == (1, 1)
        done = await upload(stack, trial.job.id)
        assert done.counts.create == 1
        created = await stack.accounts.GetAccount(A.GetAccountRequest(username_or_email="teach02"), timeout=10)
        assert (created.type, list(created.schools)) == (A.ACCOUNT_TYPE_STAFF, ["Central Office"])
        parent = await stack.accounts.GetAccount(A.GetAccountRequest(username_or_email="jsmith01"), timeout=10)
        assert parent.type == A.ACCOUNT_TYPE_GUARDIAN and parent.email == "jane@home.example"
