"""Kinds of file recognised by their header row, from real workbooks and CSV files in every encoding we accept."""

from __future__ import annotations

import pytest

from services.imports.files import errors
from services.imports.files.kinds import Kind
from services.imports.files.reader import read_upload
from services.imports.files.rows import ParentAccountRow, RosterRow, StaffRow, StudentLinkRow
from tests.support.workbooks import (
    LINKS_HEADER,
    PARENT_HEADER,
    ROSTER_HEADER,
    STAFF_HEADER,
    csv_bytes,
    oneroster_zip,
    xlsx_bytes,
)

SAMPLES = {
    Kind.PARENT_ACCOUNTS: [PARENT_HEADER,
                           ["zmuller01", "Zoë", "Müller", "zoe@example.org", "", "GUARDIAN", "1001;1002", "N"]],
    Kind.STUDENT_LINKS: [LINKS_HEADER, ["zmuller01", "1001"]],
    Kind.STAFF: [STAFF_HEADER, ["S-1", "tcher01", "Ann", "Müller", "ann@school.example.org", "Lincoln"]],
    Kind.ROSTER: [ROSTER_HEADER, ["1001", "Zoë", "Müller", "2031", "7A", "Lincoln", "C-1", "Anna", "Müller",
                                  "anna@example.org", "Mother", "Y", "Y", "555-0100"]],
}
ENCODINGS = [
    pytest.param({"encoding": "utf-8"}, id="utf8-comma"),
    pytest.param({"encoding": "utf-8", "bom": True}, id="utf8bom-comma"),
    pytest.param({"encoding": "cp1252"}, id="cp1252-comma"),
    pytest.param({"encoding": "utf-8", "delimiter": ";"}, id="utf8-semicolon"),
    pytest.param({"encoding": "utf-8", "delimiter": ";", "bom": True}, id="utf8bom-semicolon"),
    pytest.param({"encoding": "cp1252", "delimiter": ";"}, id="cp1252-semicolon"),
    pytest.param({"encoding": "utf-16", "delimiter": "\t"}, id="utf16-tab"),
]


def check_sample(kind: Kind, row: object) -> None:
    if kind is Kind.PARENT_ACCOUNTS:
        assert isinstance(row, ParentAccountRow)
        assert (row.logonid, row.first_name, row.last_name, row.email, row.user_type, row.student_ids,
                row.must_change_password) == ("zmuller01", "Zoë", "Müller", "zoe@example.org", "GUARDIAN",
                                              ("1001", "1002"), False)
    elif kind is Kind.STUDENT_LINKS:
        assert isinstance(row, StudentLinkRow)
        assert (row.logonid, row.student_ids) == ("zmuller01", ("1001",))
    elif kind is Kind.STAFF:
        assert isinstance(row, StaffRow)
        assert (row.staff_id, row.logonid, row.last_name, row.school) == ("S-1", "tcher01", "Müller", "Lincoln")
    else:
        assert isinstance(row, RosterRow)
        assert (row.student_id, row.student_first_name, row.grad_year, row.contact_id, row.contact_last_name,
                row.parental_responsibility, row.primary_contact, row.court_order, row.contact_phone) == (
            "1001", "Zoë", 2031, "C-1", "Müller", True, True, None, "555-0100")
    assert row.row_number == 2


@pytest.mark.parametrize("kind", list(SAMPLES))
def test_each_kind_from_a_workbook(kind: Kind) -> None:
    parsed = read_upload(xlsx_bytes(SAMPLES[kind]), "upload.xlsx")
    assert parsed.kind is kind
    assert parsed.problems == () and parsed.file_warnings == ()
    check_sample(kind, parsed.rows[0])


@pytest.mark.parametrize("options", ENCODINGS)
@pytest.mark.parametrize("kind", list(SAMPLES))
def test_each_kind_from_csv(kind: Kind, options: dict[str, object]) -> None:
    parsed = read_upload(csv_bytes(SAMPLES[kind], **options), "upload.csv")  # type: ignore[arg-type]
    assert parsed.kind is kind
    assert parsed.problems == ()
    check_sample(kind, parsed.rows[0])
    expected_delimiter = options.get("delimiter", ",")
    assert parsed.table.delimiter == expected_delimiter


def test_encodings_found() -> None:
    rows = SAMPLES[Kind.PARENT_ACCOUNTS]
    assert read_upload(csv_bytes(rows, bom=True), "a.csv").table.encoding == "utf-8-sig"
    assert read_upload(csv_bytes(rows), "a.csv").table.encoding == "utf-8"
    assert read_upload(csv_bytes(rows, encoding="cp1252"), "a.csv").table.encoding == "windows-1252"


def test_synonyms_case_spaces_and_underscores() -> None:
    header = [" User Name ", "forename", "Surname", "E-mail Address", "password", "logon type", "Student ID",
              "must change password", "enabled"]
    parsed = read_upload(xlsx_bytes([header, ["parent01", "Jo", "Smith", "jo@example.org", "", "student", "7",
                                              "yes", "1"]]), "p.xlsx")
    assert parsed.kind is Kind.PARENT_ACCOUNTS
    row = parsed.rows[0]
    assert isinstance(row, ParentAccountRow)
    assert (row.logonid, row.first_name, row.last_name, row.user_type, row.student_ids, row.must_change_password,
            row.enabled) == ("parent01", "Jo", "Smith", "STUDENT", ("7",), True, True)
    assert parsed.letter("STUDENT_IDS") == "G"
    assert "Column A 'User Name' was read as LOGONID." in parsed.notes
    assert "Column G 'Student ID' was read as STUDENT_IDS." in parsed.notes


def test_most_specific_kind_first() -> None:
    staff_like = ["STAFF_ID", "LOGONID", "EMAIL", "FIRST_NAME", "LAST_NAME", "STUDENT_IDS"]
    assert read_upload(csv_bytes([staff_like]), "a.csv").kind is Kind.PARENT_ACCOUNTS
    assert read_upload(csv_bytes([["Username", "Student IDs"], ["parent01", "1"]]), "a.csv").kind is (
        Kind.STUDENT_LINKS)
    assert read_upload(csv_bytes([["Username", "Email", "Student_ID", "first name", "last name"]]),
                       "a.csv").kind is Kind.PARENT_ACCOUNTS
    assert read_upload(csv_bytes([[*ROSTER_HEADER, "LOGONID", "EMAIL"]]), "a.csv").kind is Kind.ROSTER


def test_unknown_headers_are_refused_with_the_kinds_listed() -> None:
    with pytest.raises(errors.UnknownKind) as caught:
        read_upload(xlsx_bytes([["Name", "Phone"], ["Jo", "555"]]), "contacts.xlsx")
    message = caught.value.message
    assert "headers found: Name, Phone" in message
    assert "parent accounts: LOGONID, FIRST_NAME, LAST_NAME, EMAIL, STUDENT_IDS (optional PASSWORD, USER_TYPE, " \
           "MUST_CHANGE_PASSWORD, ENABLED)" in message
    assert "student links: LOGONID, STUDENT_ID" in message
    assert "staff accounts: STAFF_ID, LOGONID, FIRST_NAME, LAST_NAME, EMAIL (optional SCHOOL)" in message
    assert "roster (one row per student and contact): STUDENT_ID, STUDENT_FIRST_NAME" in message
    assert "OneRoster 1.1 .zip bundle" in message


def test_a_file_of_a_kind_without_some_of_its_columns() -> None:
    with pytest.raises(errors.MissingColumns) as caught:
        read_upload(csv_bytes([["LOGONID", "EMAIL", "STUDENT_IDS"], ["parent01", "a@b.org", "1"]]), "p.csv")
    assert "looks like a parent accounts file but lacks the columns FIRST_NAME, LAST_NAME" in caught.value.message


def test_the_same_column_twice() -> None:
    with pytest.raises(errors.DuplicateColumn) as caught:
        read_upload(csv_bytes([["LOGONID", "Username", "EMAIL", "STUDENT_IDS", "FIRST_NAME", "LAST_NAME"]]),
                    "p.csv")
    assert "Columns A 'LOGONID' and B 'Username' both mean LOGONID" in caught.value.message


def test_unknown_extra_columns_warned_informational_ones_silent() -> None:
    header = [*PARENT_HEADER, "Notes", "STUDENT_NAME", "GRAD_YEAR", "GROUP", "SCHOOL", "STATUS", "MESSAGE"]
    parsed = read_upload(xlsx_bytes([header, ["parent01", "Jo", "Smith", "jo@example.org", "", "", "1", "",
                                              "call back", "Kid Smith", 2031, "7A", "Lincoln", "OK", ""]]), "p.xlsx")
    assert [(w.code, w.column, w.letter, w.row_number) for w in parsed.file_warnings] == [
        ("W_COLUMN_IGNORED", "Notes", "I", 1)]
    assert parsed.file_warnings[0].message == "Column I 'Notes' is not read in a parent accounts file and was ignored."
    assert len(parsed.rows) == 1


def test_header_below_a_title_and_row_numbers_as_excel_shows_them() -> None:
    rows = [["Parent accounts for autumn term"], [], PARENT_HEADER,
            ["parent01", "Jo", "Smith", "jo@example.org", "", "", "1", ""], [None] * 8,
            ["parent02", "Al", "Jones", "al@example.org", "", "", "2", ""]]
    parsed = read_upload(xlsx_bytes(rows), "p.xlsx")
    assert parsed.table.header_row_number == 3
    assert [r.row_number for r in parsed.rows] == [4, 6]


def test_the_first_sheet_with_recognisable_headers_wins() -> None:
    data = xlsx_bytes(SAMPLES[Kind.STUDENT_LINKS], sheet="Links",
                      before=[("Read me", [["How to fill this in"], ["Use one row per student"]]),
                              ("Old parents", SAMPLES[Kind.PARENT_ACCOUNTS])],
                      after=[("Parents", SAMPLES[Kind.PARENT_ACCOUNTS])], hidden=["Old parents"])
    parsed = read_upload(data, "mixed.xlsx")
    assert parsed.kind is Kind.STUDENT_LINKS
    assert parsed.table.sheet_name == "Links"


def test_oneroster_bundle_as_roster_rows() -> None:
    users = [
        ["sourcedId", "status", "dateLastModified", "enabledUser", "orgSourcedIds", "role", "username", "userIds",
         "givenName", "familyName", "middleName", "identifier", "email", "sms", "phone", "agentSourcedIds",
         "grades", "password"],
        ["u-s1", "", "", "true", "org-1", "student", "kid1", "", "Zoë", "Müller", "", "1001", "", "", "", "u-p1,u-g1",
         "07", ""],
        ["u-s2", "", "", "true", "org-1", "student", "kid2", "", "Ali", "Khan", "", "", "", "", "", "", "08", ""],
        ["u-p1", "", "", "true", "org-1", "parent", "", "", "Anna", "Müller", "", "", "anna@example.org", "",
         "555-0100", "", "", ""],
        ["u-g1", "", "", "true", "org-1", "guardian", "", "", "Gus", "Grant", "", "", "gus@example.org", "555-0199",
         "", "", "", ""],
        ["u-r1", "", "", "true", "org-1", "relative", "", "", "Rita", "Khan", "", "", "rita@example.org", "", "",
         "u-s2", "", ""],
        ["u-t1", "", "", "true", "org-1", "teacher", "", "", "Tom", "Teach", "", "", "tom@school.org", "", "",
         "", "", ""],
        ["u-x", "tobedeleted", "", "true", "org-1", "student", "", "", "Gone", "Away", "", "9", "", "", "", "", "",
         ""],
    ]
    orgs = [["sourcedId", "status", "dateLastModified", "name", "type", "identifier", "parentSourcedId"],
            ["org-1", "", "", "Lincoln High", "school", "LHS", ""]]
    classes = [["sourcedId", "status", "dateLastModified", "title", "grades", "courseSourcedId", "classCode",
                "classType", "location", "schoolSourcedId", "termSourcedIds", "subjects", "subjectCodes", "periods"],
               ["c-1", "", "", "Homeroom 7A", "07", "", "HR7A", "homeroom", "", "org-1", "t-1", "", "", ""],
               ["c-2", "", "", "Maths 7", "07", "", "MA7", "scheduled", "", "org-1", "t-1", "", "", ""]]
    enrollments = [["sourcedId", "status", "dateLastModified", "classSourcedId", "schoolSourcedId", "userSourcedId",
                    "role", "primary", "beginDate", "endDate"],
                   ["e-1", "", "", "c-2", "org-1", "u-s1", "student", "", "", ""],
                   ["e-2", "", "", "c-1", "org-1", "u-s1", "student", "", "", ""]]
    for folder in ("", "export/"):
        data = oneroster_zip(users, orgs=orgs, classes=classes, enrollments=enrollments, folder=folder)
        parsed = read_upload(data, "oneroster.zip")
        assert parsed.kind is Kind.ONEROSTER
        assert parsed.problems == ()
        got = [(r.student_id, r.student_first_name, r.group, r.school, r.contact_id, r.contact_email,
                r.relationship, r.parental_responsibility, r.contact_phone) for r in parsed.rows
               if isinstance(r, RosterRow)]
        assert got == [
            ("1001", "Zoë", "Homeroom 7A", "Lincoln High", "u-p1", "anna@example.org", "parent", True, "555-0100"),
            ("1001", "Zoë", "Homeroom 7A", "Lincoln High", "u-g1", "gus@example.org", "guardian", True, "555-0199"),
            ("u-s2", "Ali", "", "Lincoln High", "u-r1", "rita@example.org", "relative", False, ""),
        ]


def test_oneroster_bundle_without_the_columns_it_needs() -> None:
    with pytest.raises(errors.MissingColumns) as caught:
        read_upload(oneroster_zip([["sourcedId", "givenName"], ["u1", "Jo"]]), "oneroster.zip")
    assert "users.csv lacks the columns role" in caught.value.message
