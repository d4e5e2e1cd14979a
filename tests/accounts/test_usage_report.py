"""The portal-usage report through gRPC: the workbook opens with openpyxl with the right sheets, counts and times
(the school's time zone, the range inclusive), parents who never signed in included; over the limit, one Sign-ins
sheet with a filter; sheet names valid and unique for awkward names."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest

from plumbing.config import Settings
from portal.accounts.v1 import accounts_pb2 as pb
from portal.common.v1 import jobs_pb2
from tests.accounts.conftest import STAFF_CALL, add_students, create_account, failure
from tests.accounts.job_support import finished, rows, workbook
from tests.support.services import make_settings

PASSWORD = "Correct1Horse"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path / "data", database_url, timezone="America/New_York", usage_sheet_limit=4)


async def sign_in_at(stub: Any, clock: Any, username: str, when: datetime, password: str = PASSWORD) -> None:
    clock.now = when
    await stub.Authenticate(pb.AuthenticateRequest(username=username, password=password, source="203.0.113.9"))


async def report(stub: Any, start: str, end: str, **selector: Any) -> tuple[jobs_pb2.Job, Any]:
    job = await stub.StartUsageReport(pb.StartUsageReportRequest(
        start_date=start, end_date=end, selector=jobs_pb2.Selector(**selector) if selector else None,
        anchor=jobs_pb2.SlackAnchor(user_id="U0OFFICE")), metadata=STAFF_CALL)
    assert job.kind == "usage_report"
    done = await finished(stub, job.id)
    return done, (await workbook(stub, job.id))[1]


async def parents(stub: Any) -> None:
    await add_students(stub, "s1", "s2")
    await create_account(stub, "parent01", PASSWORD, first_name="Ann", last_name="Able", student_ids=["s1", "s2"])
    await create_account(stub, "parent02", PASSWORD, first_name="Ben", last_name="Baker", student_ids=["s2"])
    await create_account(stub, "parent03", first_name="Cat", last_name="Cole", student_ids=["s1"])
    await create_account(stub, "teacher04", PASSWORD, type=pb.ACCOUNT_TYPE_STAFF)


async def test_the_workbook_has_a_summary_and_a_sheet_per_parent_in_school_time(accounts, clock) -> None:
    await parents(accounts)
    # New York is UTC-4 in September: the range 1-2 September is [04:00 UTC on the 1st, 04:00 UTC on the 3rd).
    await sign_in_at(accounts, clock, "parent01", datetime(2026, 9, 1, 3, 59, tzinfo=UTC))  # 31 Aug 23:59: out
    await sign_in_at(accounts, clock, "parent01", datetime(2026, 9, 1, 8, 0, tzinfo=UTC))
    await sign_in_at(accounts, clock, "PARENT01", datetime(2026, 9, 3, 3, 30, 15, tzinfo=UTC))  # 2 Sep 23:30
    await sign_in_at(accounts, clock, "parent02", datetime(2026, 9, 2, 12, 0, tzinfo=UTC), "Wrong-Pass1")
    await sign_in_at(accounts, clock, "parent02", datetime(2026, 9, 3, 4, 0, tzinfo=UTC))  # 3 Sep 00:00: out
    done, book = await report(accounts, "2026-09-01", "2026-09-02")
    assert done.attributes["parents"] == "3" and done.attributes["sign_ins"] == "2"
    assert done.attributes["never"] == "2" and done.attributes["per_parent_sheets"] == "1"
    assert book.sheetnames == ["Summary", "Ann Able (parent01)", "Ben Baker (parent02)", "Cat Cole (parent03)"]
    summary = rows(book, "Summary")
    assert summary[0] == ("Username", "Name", "Email", "Linked students", "Sign-ins", "First sign-in",
                          "Last sign-in")
    assert summary[1] == ("parent01", "Ann Able", "parent01@example.org", "Kid s1 Smith (s1), Kid s2 Smith (s2)", 2,
                          datetime(2026, 9, 1, 4, 0), datetime(2026, 9, 2, 23, 30, 15))
    assert summary[2][:5] == ("parent02", "Ben Baker", "parent02@example.org", "Kid s2 Smith (s2)", 0)
    assert summary[2][5:] == (None, None)
    assert summary[3][0] == "parent03" and summary[3][4] == 0
    first = rows(book, "Ann Able (parent01)")
    assert first[0] == ("User", "Email", "Linked learner(s)", "Date", "Time")
    assert [(r[3].date(), r[4].isoformat()) for r in first[1:]] == [
        (datetime(2026, 9, 1).date(), "04:00:00"), (datetime(2026, 9, 2).date(), "23:30:15")]
    assert first[1][:3] == ("parent01", "parent01@example.org", "Kid s1 Smith (s1), Kid s2 Smith (s2)")
    never = rows(book, "Cat Cole (parent03)")
    assert never[1][:4] == ("parent03", "parent03@example.org", "Kid s1 Smith (s1)", "no sign-ins in this period")


async def test_over_the_limit_one_sign_ins_sheet_with_a_filter(accounts, clock) -> None:
    await parents(accounts)
    await create_account(accounts, "parent05", PASSWORD, first_name="=cmd|' /C calc'!A0", last_name="Dee")
    await create_account(accounts, "parent06", PASSWORD, first_name="Eve", last_name="Eliot")
    await sign_in_at(accounts, clock, "parent05", datetime(2026, 9, 1, 12, 0, tzinfo=UTC))
    await sign_in_at(accounts, clock, "parent02", datetime(2026, 9, 1, 13, 0, tzinfo=UTC))
    await sign_in_at(accounts, clock, "parent02", datetime(2026, 9, 1, 14, 0, tzinfo=UTC))
    done, book = await report(accounts, "2026-09-01", "2026-09-01")
    assert done.attributes["per_parent_sheets"] == "0" and done.attributes["parents"] == "5"
    assert book.sheetnames == ["Summary", "Sign-ins"]
    sign_ins = rows(book, "Sign-ins")
    assert sign_ins[0] == ("Username", "Name", "Email", "Linked learner(s)", "Date", "Time")
    assert [(r[0], r[5].isoformat()) for r in sign_ins[1:]] == [("parent02", "09:00:00"), ("parent02", "10:00:00"),
                                                                ("parent05", "08:00:00")]
    assert book["Sign-ins"].auto_filter.ref == "A1:F4"
    # Text that would run as a formula is written as text.
    assert sign_ins[3][1] == "'=cmd|' /C calc'!A0 Dee"
    assert book["Sign-ins"]["B4"].data_type == "s"


async def test_sheet_names_are_valid_and_unique_for_awkward_names(accounts, clock) -> None:
    await add_students(accounts, "s1")
    awkward = [("O'Brien/Smith", "[Jr]: *?\\", "obrien01"),
               ("Maximiliana-Josephine", "Featherstonehaugh-Cholmondeley", "maxfeather01"),
               ("Maximiliana-Josephine", "Featherstonehaugh-Cholmondeley", "maxfeather02"),
               ("'Quoted'", "History", "quoted01")]
    for first, last, username in awkward:
        await create_account(accounts, username, PASSWORD, first_name=first, last_name=last, student_ids=["s1"])
    _done, book = await report(accounts, "2026-09-01", "2026-09-30", grad_year=2031)
    names = book.sheetnames[1:]
    assert len(names) == 4 and book.sheetnames[0] == "Summary"
    assert len({n.lower() for n in book.sheetnames}) == len(book.sheetnames)
    for name in names:
        assert 0 < len(name) <= 31 and not re.search(r"[\[\]:*?/\\]", name), name
        assert not name.startswith("'") and not name.endswith("'"), name
    # In username order: maxfeather01, maxfeather02, obrien01, quoted01.
    assert names[0] == "Maximiliana-Josephine Featherst" and names[1] == "Maximiliana-Josephine Feath (2)"
    assert names[2] == "O'Brien_Smith _Jr__ ___ (obrien" and names[3] == "Quoted' History (quoted01)"


async def test_bad_dates_are_refused(accounts) -> None:
    bad = await failure(accounts.StartUsageReport(pb.StartUsageReportRequest(start_date="2026-09-31",
                                                                            end_date="2026-10-01"),
                                                  metadata=STAFF_CALL))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT and "YYYY-MM-DD" in bad.details()
    backwards = await failure(accounts.StartUsageReport(pb.StartUsageReportRequest(start_date="2026-10-02",
                                                                                  end_date="2026-10-01"),
                                                        metadata=STAFF_CALL))
    assert "before it starts" in backwards.details()
