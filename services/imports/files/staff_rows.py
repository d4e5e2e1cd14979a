"""Staff rows: required STAFF_ID and LOGONID; repeats skipped, disagreeing repeats and shared emails refused."""

from __future__ import annotations

from plumbing import status_codes as sc

from .problems import Problem
from .records import AnyRow, ParentAccount, StaffRow
from .row_reader import RowReader
from .values import BadValue, check_not_scientific, parse_id

STAFF_FIELDS = ("STAFF_ID", "LOGONID", "EMAIL", "FIRST_NAME", "LAST_NAME", "SCHOOL")


def read_staff_rows(r: RowReader) -> tuple[list[AnyRow], list[Problem], list[ParentAccount]]:
    """Staff rows (valid ones, each person once) and their problems."""
    rows: list[AnyRow] = []
    problems: list[Problem] = []
    by_logon: dict[str, StaffRow] = {}
    by_staff_id: dict[str, StaffRow] = {}
    by_email: dict[str, StaffRow] = {}
    for number, values, _raw in r.rows(STAFF_FIELDS):
        staff_id, logon, email, first, last, school = values
        found = [r.required(number, c) for c, v in (("STAFF_ID", staff_id), ("LOGONID", logon)) if not v]
        try:
            staff_id = parse_id(staff_id, r.label("STAFF_ID"))
        except BadValue as error:
            found.append(r.bad(number, "STAFF_ID", error))
        try:
            check_not_scientific(logon, r.label("LOGONID"))
        except BadValue as error:
            found.append(r.bad(number, "LOGONID", error))
        if found:
            problems.extend(found)
            continue
        row = StaffRow(number, staff_id, logon, email, first, last, school, r.given(STAFF_FIELDS, values))
        earlier = by_logon.get(logon.casefold()) or by_staff_id.get(staff_id)
        if earlier is not None:
            if _same_staff(earlier, row):
                problems.append(r.problem(number, sc.S_DUPLICATE_ROW.code, "",
                                          f"This row repeats row {earlier.row_number}: it adds nothing."))
            else:
                column = "LOGONID" if earlier.logonid.casefold() == logon.casefold() else "STAFF_ID"
                problems.append(r.problem(
                    number, sc.E_DUPLICATE_CONFLICT.code, column,
                    f"Row {earlier.row_number} has the same LOGONID or STAFF_ID with other details (LOGONID "
                    f"'{earlier.logonid}', STAFF_ID '{earlier.staff_id}'): make the rows agree, or delete one."))
            continue
        owner = by_email.get(email.casefold()) if email else None
        if owner is not None:
            problems.append(r.problem(
                number, sc.E_DUPLICATE_EMAIL.code, "EMAIL",
                f"EMAIL '{email}' is also on row {owner.row_number} with LOGONID '{owner.logonid}': give one person "
                "one username, or correct the email."))
            continue
        by_logon[logon.casefold()] = by_staff_id[staff_id] = row
        if email:
            by_email[email.casefold()] = row
        rows.append(row)
    return rows, problems, []


def _same_staff(a: StaffRow, b: StaffRow) -> bool:
    return all(x.casefold() == y.casefold() for x, y in zip(
        (a.staff_id, a.logonid, a.email, a.first_name, a.last_name, a.school),
        (b.staff_id, b.logonid, b.email, b.first_name, b.last_name, b.school), strict=True))
