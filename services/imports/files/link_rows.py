"""Student-links rows: LOGONID and the students to tie to it; a repeated pair is skipped."""

from __future__ import annotations

from plumbing import status_codes as sc

from .problems import Problem
from .records import AnyRow, ParentAccount, StudentLinkRow
from .row_reader import RowReader
from .values import BadValue, check_not_scientific, parse_ids

LINK_FIELDS = ("LOGONID", "STUDENT_ID")


def read_link_rows(r: RowReader) -> tuple[list[AnyRow], list[Problem], list[ParentAccount]]:
    """Student-links rows (valid ones, each pair once) and their problems."""
    rows: list[AnyRow] = []
    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    label = r.label("STUDENT_ID")
    for number, values, _raw in r.rows(LINK_FIELDS):
        logon, students = values
        found = [r.required(number, c) for c, v in (("LOGONID", logon), ("STUDENT_ID", students)) if not v]
        ids: tuple[str, ...] = ()
        try:
            check_not_scientific(logon, r.label("LOGONID"))
        except BadValue as error:
            found.append(r.bad(number, "LOGONID", error))
        try:
            ids = parse_ids(students, label)
        except BadValue as error:
            found.append(r.bad(number, "STUDENT_ID", error))
        if found:
            problems.extend(found)
            continue
        key = logon.casefold()
        new = tuple(i for i in ids if (key, i) not in seen)
        if not new:
            problems.append(r.problem(
                number, sc.S_DUPLICATE_ROW.code, "",
                "This row repeats an earlier row (same LOGONID and STUDENT_ID): it adds nothing."))
            continue
        seen.update((key, i) for i in new)
        rows.append(StudentLinkRow(number, logon, new, r.given(LINK_FIELDS, values)))
    return rows, problems, []
