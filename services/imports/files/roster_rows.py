"""Roster rows (and OneRoster bundles read as roster rows): one student and one contact per row; a student's or a
contact's details must agree on every row naming them."""

from __future__ import annotations

from plumbing import status_codes as sc

from .kinds import ROSTER_COLUMNS, ROSTER_OPTIONAL
from .parent_rows import show
from .problems import Problem
from .records import AnyRow, ParentAccount, RosterRow
from .row_reader import RowReader
from .values import BadValue, parse_flag, parse_id, parse_year

ROSTER_FIELDS = ROSTER_COLUMNS + ROSTER_OPTIONAL
STUDENT_DETAILS = ("STUDENT_FIRST_NAME", "STUDENT_LAST_NAME", "GRAD_YEAR", "GROUP", "SCHOOL")
CONTACT_DETAILS = ("CONTACT_FIRST_NAME", "CONTACT_LAST_NAME", "CONTACT_EMAIL", "CONTACT_PHONE", "CONTACT_ADDRESS")
PAIR_DETAILS = ("RELATIONSHIP", "PARENTAL_RESPONSIBILITY", "PRIMARY_CONTACT", "COURT_ORDER")


def read_roster_rows(r: RowReader) -> tuple[list[AnyRow], list[Problem], list[ParentAccount]]:
    """Roster rows (valid ones, each student-contact pair once) and their problems."""
    rows: list[AnyRow] = []
    problems: list[Problem] = []
    students: dict[str, tuple[int, dict[str, str]]] = {}
    contacts: dict[str, tuple[int, dict[str, str]]] = {}
    pairs: dict[tuple[str, str], tuple[int, dict[str, str]]] = {}
    index = {f: i for i, f in enumerate(ROSTER_FIELDS)}
    contact_fields = [index[f] for f in ROSTER_FIELDS if f.startswith("CONTACT_") or f in PAIR_DETAILS
                      if f != "CONTACT_ID"]
    for number, values, _raw in r.rows(ROSTER_FIELDS):
        v = dict(zip(ROSTER_FIELDS, values, strict=True))
        found: list[Problem] = []
        if not v["STUDENT_ID"]:
            found.append(r.required(number, "STUDENT_ID"))
        if not v["CONTACT_ID"] and any(values[i] for i in contact_fields):
            found.append(r.required(number, "CONTACT_ID"))
        parsed: dict[str, object] = {}
        for column, parse in (("STUDENT_ID", parse_id), ("CONTACT_ID", parse_id), ("GRAD_YEAR", parse_year),
                              ("PARENTAL_RESPONSIBILITY", parse_flag), ("PRIMARY_CONTACT", parse_flag),
                              ("COURT_ORDER", parse_flag)):
            try:
                parsed[column] = parse(v[column], r.label(column))
            except BadValue as error:
                found.append(r.bad(number, column, error))
        if not found:
            # Compare what the cells mean, not how they were typed ("2031.0" and "2031", "Yes" and "Y").
            v["GRAD_YEAR"] = "" if parsed["GRAD_YEAR"] is None else str(parsed["GRAD_YEAR"])
            for flag in ("PARENTAL_RESPONSIBILITY", "PRIMARY_CONTACT", "COURT_ORDER"):
                v[flag] = show(parsed[flag])
            student_id, contact_id = str(parsed["STUDENT_ID"]), str(parsed["CONTACT_ID"])
            checks = [(students, student_id, STUDENT_DETAILS, "STUDENT_ID")]
            if contact_id:
                checks.append((contacts, contact_id, CONTACT_DETAILS, "CONTACT_ID"))
            for table, key, fields, id_column in checks:
                clash = _clash(table, key, {f: v[f] for f in fields}, number)
                if clash:
                    column, first_row = clash
                    found.append(r.problem(
                        number, sc.E_ROSTER_CONFLICT.code, column,
                        f"{id_column} '{key}' is also on row {first_row} with another {column}: make the rows agree, "
                        "or correct the id."))
                    break
        if found:
            problems.extend(found)
            continue
        pair_key = (student_id, contact_id)
        pair_values = {f: v[f] for f in PAIR_DETAILS}
        earlier = pairs.get(pair_key)
        if earlier is not None:
            first_row, known = earlier
            if all(known[f].casefold() == pair_values[f].casefold() for f in PAIR_DETAILS):
                problems.append(r.problem(number, sc.S_DUPLICATE_ROW.code, "",
                                          f"This row repeats row {first_row}: it adds nothing."))
            else:
                column = next(f for f in PAIR_DETAILS if known[f].casefold() != pair_values[f].casefold())
                problems.append(r.problem(
                    number, sc.E_ROSTER_CONFLICT.code, column,
                    f"Student '{student_id}' and contact '{contact_id}' are also on row {first_row} with another "
                    f"{column}: keep one of the two rows."))
            continue
        pairs[pair_key] = (number, pair_values)
        _remember(students, student_id, {f: v[f] for f in STUDENT_DETAILS}, number)
        if contact_id:
            _remember(contacts, contact_id, {f: v[f] for f in CONTACT_DETAILS}, number)
        rows.append(RosterRow(
            number, student_id, v["STUDENT_FIRST_NAME"], v["STUDENT_LAST_NAME"], parsed["GRAD_YEAR"],  # type: ignore[arg-type]
            v["GROUP"], v["SCHOOL"], contact_id, v["CONTACT_FIRST_NAME"], v["CONTACT_LAST_NAME"],
            v["CONTACT_EMAIL"], v["RELATIONSHIP"], parsed["PARENTAL_RESPONSIBILITY"],  # type: ignore[arg-type]
            parsed["PRIMARY_CONTACT"], v["CONTACT_PHONE"], v["CONTACT_ADDRESS"],  # type: ignore[arg-type]
            parsed["COURT_ORDER"], r.given(ROSTER_FIELDS, values)))  # type: ignore[arg-type]
    return rows, problems, []


def _clash(table: dict[str, tuple[int, dict[str, str]]], key: str, details: dict[str, str],
           number: int) -> tuple[str, int] | None:
    """The first detail given on both this row and an earlier row of the same id that disagrees, if any."""
    earlier = table.get(key)
    if earlier is None:
        return None
    first_row, known = earlier
    for column, value in details.items():
        if value and known.get(column) and known[column].casefold() != value.casefold():
            return column, first_row
    return None


def _remember(table: dict[str, tuple[int, dict[str, str]]], key: str, details: dict[str, str], number: int) -> None:
    earlier = table.get(key)
    if earlier is None:
        table[key] = (number, dict(details))
        return
    known = earlier[1]
    for column, value in details.items():
        if value and not known.get(column):
            known[column] = value
