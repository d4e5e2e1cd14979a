"""The upload template: a parent-accounts file prefilled for a selection of students, one student per row.

A student's contacts with parental responsibility (when known) each get a prefilled row (LOGONID suggested from
their email); a student with none gets one row whose parent columns are empty, which the import skips unless staff
fill it in. The read-only columns STUDENT_NAME, GRAD_YEAR, GROUP and SCHOOL are for staff to see whose row it is;
the import ignores them. Header notes explain each rule; USER_TYPE and MUST_CHANGE_PASSWORD offer lists.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from openpyxl import Workbook
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation

from .writing import BOLD, GREY, HEADER_FILL, TITLE, WRAP, cell, new_workbook, plain, save, set_widths

PARENT_COLUMNS = ("LOGONID", "FIRST_NAME", "LAST_NAME", "EMAIL", "PASSWORD", "USER_TYPE", "STUDENT_IDS",
                  "MUST_CHANGE_PASSWORD")
READ_ONLY_COLUMNS = ("STUDENT_NAME", "GRAD_YEAR", "GROUP", "SCHOOL")
TEMPLATE_HEADER = PARENT_COLUMNS + READ_ONLY_COLUMNS
TEXT_COLUMNS = ("LOGONID", "PASSWORD", "STUDENT_IDS")
_READ_ONLY_NOTE = "For your information only: the import ignores this column."
HEADER_NOTES = {
    "LOGONID": "Username the parent signs in with: at least 6 characters, not case-sensitive, unique across the "
               "whole district (parent, student and staff accounts share one set of usernames). Prefilled with the "
               "contact's email when known. The same username on several rows is one account linked to all those "
               "students: keep the name, email and type the same on those rows. Required when any parent column of "
               "the row is filled in.",
    "FIRST_NAME": "The parent's first name.",
    "LAST_NAME": "The parent's last name.",
    "EMAIL": "The parent's email address: the invitation to set a password is sent there. One email belongs to "
             "one username.",
    "PASSWORD": "At least 8 characters with an upper-case letter, a lower-case letter and a digit. Leave it empty "
                "to email the parent an invitation to choose their own password (recommended). Passwords are never "
                "repeated in the workbooks the portal sends back.",
    "USER_TYPE": "GUARDIAN (the default when empty) or STUDENT.",
    "STUDENT_IDS": "The student this row is for (prefilled). Several ids may be separated by ; or , . Keep the "
                   "column formatted as Text so Excel keeps leading zeros and long ids.",
    "MUST_CHANGE_PASSWORD": "Y: the parent must choose a new password at first sign-in. N or empty: no.",
    **dict.fromkeys(READ_ONLY_COLUMNS, _READ_ONLY_NOTE),
}


@dataclass(frozen=True)
class TemplateContact:
    """A contact of a student; prefilled in the template when `parental_responsibility` is True."""

    first_name: str
    last_name: str
    email: str = ""
    logonid: str = ""  # an existing or suggested username; the email is suggested when empty
    parental_responsibility: bool | None = None


@dataclass(frozen=True)
class TemplateStudent:
    """A selected student: one template row per contact with parental responsibility (or one empty row)."""

    student_id: str
    first_name: str
    last_name: str
    grad_year: int | str | None = None
    group: str = ""
    school: str = ""
    contacts: tuple[TemplateContact, ...] = ()


def template_rows(students: Iterable[TemplateStudent]) -> Iterable[list[str]]:
    """The data rows of the template as text, in TEMPLATE_HEADER order."""
    for student in students:
        info = [f"{student.first_name} {student.last_name}".strip(),
                "" if student.grad_year is None else str(student.grad_year), student.group, student.school]
        contacts = [c for c in student.contacts if c.parental_responsibility]
        if not contacts:
            yield ["", "", "", "", "", "", student.student_id, "", *info]
        for contact in contacts:
            yield [contact.logonid or contact.email, contact.first_name, contact.last_name, contact.email, "", "",
                   student.student_id, "", *info]


def write_template(students: Iterable[TemplateStudent], *, selection: str = "",
                   school_name: str = "Parent Portal") -> bytes:
    """The upload template as .xlsx bytes: a "Parent accounts" sheet and a "Read me" sheet.

    `selection` describes the students chosen (for example "group 7A"), shown on the Read me sheet.
    """
    book = new_workbook()
    sheet = book.create_sheet("Parent accounts")
    set_widths(sheet, [32, 16, 18, 34, 16, 14, 16, 24, 28, 12, 10, 24])
    for name in TEXT_COLUMNS:
        sheet.column_dimensions[get_column_letter(TEMPLATE_HEADER.index(name) + 1)].number_format = "@"
    sheet.freeze_panes = "A2"
    for name, choices in (("USER_TYPE", "GUARDIAN,STUDENT"), ("MUST_CHANGE_PASSWORD", "Y,N")):
        letter = get_column_letter(TEMPLATE_HEADER.index(name) + 1)
        validation = DataValidation(type="list", formula1=f'"{choices}"', allow_blank=True, showErrorMessage=True,
                                    errorTitle=name, error=f"Choose {choices.replace(',', ' or ')}, or leave empty.",
                                    showInputMessage=True, promptTitle=name, prompt=HEADER_NOTES[name][:255])
        validation.add(f"{letter}2:{letter}1048576")
        sheet.data_validations.append(validation)
    sheet.append([cell(sheet, h, font=BOLD, fill=GREY if h in READ_ONLY_COLUMNS else HEADER_FILL,
                       note=HEADER_NOTES[h]) for h in TEMPLATE_HEADER])
    read_only_from = len(PARENT_COLUMNS)
    count = 0
    for row in template_rows(students):
        count += 1
        sheet.append([plain(v) for v in row[:read_only_from]]
                     + [cell(sheet, v, fill=GREY) for v in row[read_only_from:]])
    # Written when the sheet closes, so it may be set after the rows.
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(TEMPLATE_HEADER))}{count + 1}"
    _read_me(book, selection, school_name, count)
    return save(book)


def _read_me(book: Workbook, selection: str, school_name: str, rows: int) -> None:
    sheet = book.create_sheet("Read me")
    set_widths(sheet, [120])
    lines = [
        (f"{school_name}: parent accounts upload template", TITLE),
        (f"Students: {selection or 'as selected'} ({rows} rows).", None),
        ("", None),
        ("How to fill it in", BOLD),
        ("1. Each row is for the student named in STUDENT_NAME (their id is in STUDENT_IDS). Contacts with parental "
         "responsibility already known to the portal are filled in; check them.", None),
        ("2. Fill in LOGONID, FIRST_NAME, LAST_NAME and EMAIL for each parent who should get an account. Add a row "
         "(copy the student's row) for a second parent of the same student.", None),
        ("3. Leave all parent columns of a row empty if no account is wanted for that student: the row is skipped.",
         None),
        ("4. One parent with several children: use the same LOGONID on each child's row, with the same name, email "
         "and type. The account is linked to all those children.", None),
        ("5. Usernames (LOGONID): at least 6 characters, not case-sensitive, unique across the district.", None),
        ("6. Passwords: at least 8 characters with an upper-case letter, a lower-case letter and a digit; or leave "
         "PASSWORD empty and the parent is emailed an invitation to choose one (recommended).", None),
        ("7. USER_TYPE: GUARDIAN (or empty) for parents, STUDENT for a student's own account. MUST_CHANGE_PASSWORD: "
         "Y or N.", None),
        ("8. STUDENT_NAME, GRAD_YEAR, GROUP and SCHOOL are for your information: the import ignores them.", None),
        ("", None),
        ("Then", BOLD),
        ("Send the file back to the portal bot. A trial run checks every row and returns this workbook with STATUS "
         "and MESSAGE columns: red cells carry a status code and how to fix it. Fix them and send the file again "
         "as often as you like; nothing is created until you confirm the upload.", None),
        ("Keep the header row as it is. Passwords are never repeated in the workbooks the portal sends back.", None),
    ]
    for text, font in lines:
        sheet.append([cell(sheet, text, font=font, alignment=WRAP) if text else None])
