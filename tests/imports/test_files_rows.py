"""Rows read as typed values with their row numbers, and every status code the reader gives, each produced by a
row of a real file that triggers it."""

from __future__ import annotations

import datetime

import pytest

from services.imports.files.kinds import Kind
from services.imports.files.reader import read_upload
from services.imports.files.rows import ParentAccountRow, ParsedFile, RosterRow, StaffRow, StudentLinkRow
from tests.support.workbooks import (
    LINKS_HEADER,
    PARENT_HEADER,
    ROSTER_HEADER,
    STAFF_HEADER,
    csv_bytes,
    with_cached_formula,
    xlsx_bytes,
)


def parent(logon: object = "jsmith01", first: object = "Jo", last: object = "Smith",
           email: object = "jo@example.org", password: object = "", user_type: object = "",
           students: object = "1001", must_change: object = "") -> list[object]:
    return [logon, first, last, email, password, user_type, students, must_change]


def roster(student: object = "1001", first: object = "Kid", last: object = "Smith", year: object = 2031,
           group: object = "7A", school: object = "Lincoln", contact: object = "C-1", c_first: object = "Jo",
           c_last: object = "Smith", c_email: object = "jo@example.org", relationship: object = "Mother",
           responsible: object = "Y", primary: object = "Y", phone: object = "") -> list[object]:
    return [student, first, last, year, group, school, contact, c_first, c_last, c_email, relationship,
            responsible, primary, phone]


def read_xlsx(header: list[str], *rows: list[object]) -> ParsedFile:
    return read_upload(xlsx_bytes([header, *rows]), "upload.xlsx")


def codes(parsed: ParsedFile) -> list[tuple[int, str, str, str]]:
    return [(p.row_number, p.code, p.column, p.letter) for p in parsed.problems]


def test_ids_numbers_text_and_leading_zeros() -> None:
    parsed = read_xlsx(PARENT_HEADER, parent(logon="parent01", students=1234.0),
                       parent(logon="parent02", email="b@example.org", students="001234"),
                       parent(logon="parent03", email="c@example.org", students="1001, 1002;1003;1001"),
                       parent(logon="parent04", email="d@example.org", students=123456789012345),
                       parent(logon=123456.0, email="e@example.org", students=" 77 "))
    assert codes(parsed) == []
    assert [r.student_ids for r in parsed.rows if isinstance(r, ParentAccountRow)] == [
        ("1234",), ("001234",), ("1001", "1002", "1003"), ("123456789012345",), ("77",)]
    assert parsed.rows[4].logonid == "123456"  # type: ignore[union-attr]


def test_whole_number_text_from_csv() -> None:
    parsed = read_upload(csv_bytes([LINKS_HEADER, ["parent01", "1234.0"], ["parent01", "0042.00"]]), "l.csv")
    assert [r.student_ids for r in parsed.rows] == [("1234",), ("0042",)]  # type: ignore[union-attr]


def test_ids_excel_already_turned_into_scientific_notation() -> None:
    parsed = read_xlsx(PARENT_HEADER, parent(students="1.23457E+14"),
                       parent(logon="parent02", email="b@example.org", students=1234567890123456789.0),
                       parent(logon="parent03", email="c@example.org", students="1001;1,23457E+14"))
    assert codes(parsed) == [(2, "E_ID_SCIENTIFIC", "STUDENT_IDS", "G"), (3, "E_ID_SCIENTIFIC", "STUDENT_IDS", "G"),
                             (4, "E_ID_SCIENTIFIC", "STUDENT_IDS", "G")]
    assert "STUDENT_IDS (column G) holds '1.23457E+14': Excel turned this id into scientific notation" in (
        parsed.problems[0].message)
    assert "format the column as Text" in parsed.problems[0].message
    assert parsed.rows == ()


def test_flags_and_user_types() -> None:
    header = [*PARENT_HEADER, "ENABLED"]
    rows = [[*parent(logon=f"parent{i:02}", email=f"p{i}@example.org", must_change=flag, user_type=kind), enabled]
            for i, (flag, kind, enabled) in enumerate([
                ("Y", "", True), ("yes", "guardian", False), ("TRUE", "Student", 1), (1, "PARENT", 0),
                ("n", "", "no"), ("No", "", "false"), ("0", "", ""), ("", "", None)])]
    parsed = read_xlsx(header, *rows)
    assert codes(parsed) == []
    got = [(r.must_change_password, r.user_type, r.enabled) for r in parsed.rows]  # type: ignore[union-attr]
    assert got == [(True, "GUARDIAN", True), (True, "GUARDIAN", False), (True, "STUDENT", True),
                   (True, "GUARDIAN", False), (False, "GUARDIAN", False), (False, "GUARDIAN", False),
                   (False, "GUARDIAN", None), (None, "GUARDIAN", None)]


def test_trimming_invisible_spaces_and_neutralised_text() -> None:
    parsed = read_upload(csv_bytes([PARENT_HEADER, parent(logon="  parent01\u00a0", first="\u200bJo ",
                                                          last="'=Smith", email=" jo@example.org ")]), "p.csv")
    row = parsed.rows[0]
    assert isinstance(row, ParentAccountRow)
    assert (row.logonid, row.first_name, row.last_name, row.email) == ("parent01", "Jo", "=Smith",
                                                                       "jo@example.org")


def test_siblings_on_several_rows_are_one_account_with_every_student() -> None:
    parsed = read_xlsx(PARENT_HEADER, parent(students="1001"), parent(logon="other01", email="o@example.org"),
                       parent(logon="JSMITH01", first="JO", students="1002;1003"),
                       parent(first="", last="", email="", students="1001"))
    assert codes(parsed) == []
    assert len(parsed.rows) == 4
    account = parsed.accounts[0]
    assert (account.logonid, account.first_name, account.email, account.student_ids, account.row_numbers) == (
        "jsmith01", "Jo", "jo@example.org", ("1001", "1002", "1003"), (2, 4, 5))
    assert [a.logonid for a in parsed.accounts] == ["jsmith01", "other01"]


def test_later_rows_fill_details_left_empty() -> None:
    parsed = read_xlsx(PARENT_HEADER, parent(email="", must_change=""),
                       parent(email="jo@example.org", must_change="Y", user_type="guardian", students="1002"))
    assert codes(parsed) == []
    account = parsed.accounts[0]
    assert (account.email, account.must_change_password, account.user_type, account.student_ids) == (
        "jo@example.org", True, "GUARDIAN", ("1001", "1002"))
    assert {"EMAIL", "MUST_CHANGE_PASSWORD", "LOGONID"} <= account.given


def test_same_username_on_rows_that_disagree() -> None:
    parsed = read_xlsx(PARENT_HEADER, parent(), parent(email="other@example.org", students="1002"),
                       parent(password="Secret123", students="1003"), parent(password="Other1234", students="1004"),
                       parent(user_type="STUDENT", students="1005"))
    assert codes(parsed) == [(3, "E_DUPLICATE_CONFLICT", "EMAIL", "D"), (5, "E_DUPLICATE_CONFLICT", "PASSWORD", "E"),
                             (6, "E_DUPLICATE_CONFLICT", "USER_TYPE", "F")]
    assert parsed.problems[0].message.startswith(
        "LOGONID 'jsmith01' is also on row 2 with EMAIL 'jo@example.org' but this row says 'other@example.org'")
    assert "Secret123" not in parsed.problems[1].message and "Other1234" not in parsed.problems[1].message
    assert [r.row_number for r in parsed.rows] == [2, 4]
    assert parsed.accounts[0].student_ids == ("1001", "1003")
    assert parsed.accounts[0].password == "Secret123"


def test_same_email_with_different_usernames() -> None:
    parsed = read_xlsx(PARENT_HEADER, parent(), parent(logon="jsmith02", email="JO@example.org", students="1002"),
                       parent(logon="jsmith02", email="", students="1003"))
    assert codes(parsed) == [(3, "E_DUPLICATE_EMAIL", "EMAIL", "D"), (4, "E_DUPLICATE_EMAIL", "EMAIL", "D")]
    assert "EMAIL 'JO@example.org' is also on row 2 with LOGONID 'jsmith01'" in parsed.problems[0].message
    assert [a.logonid for a in parsed.accounts] == ["jsmith01"]


def test_template_rows_without_parent_data_and_rows_without_username() -> None:
    header = [*PARENT_HEADER, "STUDENT_NAME", "GRAD_YEAR"]
    parsed = read_xlsx(header, [*parent(logon="", first="", last="", email=""), "Kid One", 2031],
                       [*parent(logon="", email="jo@example.org"), "Kid Two", 2031],
                       [None] * 10, [*parent(logon="parent03", email="p3@example.org"), "Kid Three", 2030])
    assert codes(parsed) == [(2, "S_NO_ACCOUNT_WANTED", "", ""), (3, "E_REQUIRED", "LOGONID", "A")]
    assert parsed.problems[1].message.startswith("LOGONID (column A) is empty: fill it in")
    assert [r.row_number for r in parsed.rows] == [5]
    assert parsed.data_rows == 3
    assert parsed.error_rows() == {3}


def test_student_links() -> None:
    parsed = read_xlsx(LINKS_HEADER, ["parent01", 1001.0], ["parent01", "1002"], ["PARENT01", "1001"],
                       ["", "1003"], ["parent02", ""], ["parent02", "2.5E+15"])
    assert codes(parsed) == [(4, "S_DUPLICATE_ROW", "", ""), (5, "E_REQUIRED", "LOGONID", "A"),
                             (6, "E_REQUIRED", "STUDENT_ID", "B"), (7, "E_ID_SCIENTIFIC", "STUDENT_ID", "B")]
    assert [(r.logonid, r.student_ids) for r in parsed.rows] == [  # type: ignore[union-attr]
        ("parent01", ("1001",)), ("parent01", ("1002",))]
    assert all(isinstance(r, StudentLinkRow) for r in parsed.rows)


def test_staff() -> None:
    parsed = read_xlsx(STAFF_HEADER, ["S1", "teach01", "Ann", "Lee", "ann@school.org", "Lincoln"],
                       ["S1", "teach01", "Ann", "Lee", "ann@school.org", "Lincoln"],
                       ["S2", "TEACH01", "Bob", "Lee", "bob@school.org", "Lincoln"],
                       ["S3", "teach03", "Cy", "Lee", "ANN@school.org", ""], ["", "teach04", "D", "L", "", ""],
                       [4.0, "teach05", "Ed", "Lee", "", ""])
    assert codes(parsed) == [(3, "S_DUPLICATE_ROW", "", ""), (4, "E_DUPLICATE_CONFLICT", "LOGONID", "B"),
                             (5, "E_DUPLICATE_EMAIL", "EMAIL", "E"), (6, "E_REQUIRED", "STAFF_ID", "A")]
    assert [(r.staff_id, r.logonid) for r in parsed.rows if isinstance(r, StaffRow)] == [
        ("S1", "teach01"), ("4", "teach05")]


def test_roster_rows_years_flags_and_conflicts() -> None:
    parsed = read_xlsx(
        ROSTER_HEADER,
        roster(year=2031.0),
        roster(contact="C-2", c_first="Al", c_email="al@example.org", relationship="Father", primary="N"),
        roster(student=1002.0, first="Sib", year=datetime.date(2029, 6, 30), contact="C-1"),
        roster(student="1003", first="New", contact="", c_first="", c_last="", c_email="", relationship="",
               responsible="", primary=""),
        roster(first="Other"),
        roster(student="1004", contact="C-1", c_email="changed@example.org"),
        roster(year="2031.0", contact="C-2", c_first="Al", c_email="al@example.org", relationship="Father",
               primary="no"),
        roster(contact="C-2", c_first="Al", c_email="al@example.org", relationship="Uncle", primary="N"),
        roster(student="", contact="C-9"),
        roster(student="1005", contact="", c_first="Mo"),
        roster(student="1006", year="next year", responsible="perhaps", contact="C-6"),
    )
    assert codes(parsed) == [
        (6, "E_ROSTER_CONFLICT", "STUDENT_FIRST_NAME", "B"), (7, "E_ROSTER_CONFLICT", "CONTACT_EMAIL", "J"),
        (8, "S_DUPLICATE_ROW", "", ""), (9, "E_ROSTER_CONFLICT", "RELATIONSHIP", "K"),
        (10, "E_REQUIRED", "STUDENT_ID", "A"), (11, "E_REQUIRED", "CONTACT_ID", "G"),
        (12, "E_YEAR_INVALID", "GRAD_YEAR", "D"), (12, "E_FLAG_VALUE", "PARENTAL_RESPONSIBILITY", "L")]
    rows = [r for r in parsed.rows if isinstance(r, RosterRow)]
    assert [(r.row_number, r.student_id, r.grad_year, r.contact_id, r.primary_contact) for r in rows] == [
        (2, "1001", 2031, "C-1", True), (3, "1001", 2031, "C-2", False), (4, "1002", 2029, "C-1", True),
        (5, "1003", 2031, "", None)]


def test_formulas_read_as_their_cached_values() -> None:
    workbook = xlsx_bytes([PARENT_HEADER, parent(email="placeholder", students=1)])
    workbook = with_cached_formula(workbook, "D2", 'LOWER("JO")&"@example.org"', "jo@example.org", text=True)
    workbook = with_cached_formula(workbook, "G2", "1000+1", "1001")
    parsed = read_upload(workbook, "formulas.xlsx")
    row = parsed.rows[0]
    assert isinstance(row, ParentAccountRow)
    assert (row.email, row.student_ids) == ("jo@example.org", ("1001",))


def test_a_formula_never_calculated_reads_as_empty() -> None:
    parsed = read_xlsx(PARENT_HEADER, parent(email='=LOWER("JO")&"@example.org"'))
    assert parsed.rows[0].email == ""  # type: ignore[union-attr]


def test_dates_are_read_as_iso_dates() -> None:
    header = [*LINKS_HEADER, "STUDENT_NAME"]
    parsed = read_xlsx(header, ["parent01", datetime.datetime(2024, 3, 4, 0, 0), "Kid"])
    assert parsed.rows[0].student_ids == ("2024-03-04",)  # type: ignore[union-attr]


EVERY_READER_CODE = {
    "E_REQUIRED": (PARENT_HEADER, [parent(logon="")], 2, "LOGONID"),
    "E_ID_SCIENTIFIC": (PARENT_HEADER, [parent(students="1.23457E+14")], 2, "STUDENT_IDS"),
    "E_FLAG_VALUE": (PARENT_HEADER, [parent(must_change="maybe")], 2, "MUST_CHANGE_PASSWORD"),
    "E_USER_TYPE": (PARENT_HEADER, [parent(user_type="teacher")], 2, "USER_TYPE"),
    "E_YEAR_INVALID": (ROSTER_HEADER, [roster(year="soon")], 2, "GRAD_YEAR"),
    "E_DUPLICATE_CONFLICT": (PARENT_HEADER, [parent(), parent(last="Jones")], 3, "LAST_NAME"),
    "E_DUPLICATE_EMAIL": (PARENT_HEADER, [parent(), parent(logon="other01")], 3, "EMAIL"),
    "E_ROSTER_CONFLICT": (ROSTER_HEADER, [roster(), roster(contact="C-2", last="Jones")], 3, "STUDENT_LAST_NAME"),
    "S_NO_ACCOUNT_WANTED": (PARENT_HEADER, [parent(logon="", first="", last="", email="")], 2, ""),
    "S_DUPLICATE_ROW": (LINKS_HEADER, [["parent01", "1"], ["parent01", "1"]], 3, ""),
}


@pytest.mark.parametrize("code", sorted(EVERY_READER_CODE))
def test_every_code_from_a_row_that_triggers_it(code: str) -> None:
    header, rows, row_number, column = EVERY_READER_CODE[code]
    for data, name in ((xlsx_bytes([header, *rows]), "f.xlsx"), (csv_bytes([header, *rows]), "f.csv")):
        parsed = read_upload(data, name)
        assert [(p.row_number, p.code, p.column) for p in parsed.problems] == [(row_number, code, column)]
        assert parsed.problems[0].message


def test_ignored_column_warning_code() -> None:
    parsed = read_upload(csv_bytes([[*LINKS_HEADER, "Comment"], ["parent01", "1", "x"]]), "l.csv")
    assert [(w.code, w.letter) for w in parsed.file_warnings] == [("W_COLUMN_IGNORED", "C")]
    assert parsed.kind is Kind.STUDENT_LINKS
