"""Parent-accounts rows: template rows that want no account, required LOGONID, ids, flags and types, and the
merge of rows sharing a LOGONID into one account (or a conflict), with one email for one username."""

from __future__ import annotations

from collections.abc import Sequence

from plumbing import status_codes as sc

from .kinds import ColumnRef
from .problems import Problem
from .records import AnyRow, ParentAccount, ParentAccountRow
from .row_reader import RowReader
from .values import (
    DEFAULT_USER_TYPE,
    USER_TYPES,
    BadValue,
    check_not_scientific,
    parse_flag,
    parse_ids,
    parse_user_type,
)

PARENT_FIELDS = ("LOGONID", "FIRST_NAME", "LAST_NAME", "EMAIL", "PASSWORD", "USER_TYPE", "STUDENT_IDS",
                 "MUST_CHANGE_PASSWORD", "ENABLED")


def read_parent_rows(r: RowReader) -> tuple[list[AnyRow], list[Problem], list[ParentAccount]]:
    """Parent-accounts rows (valid ones), their problems, and the accounts the valid rows describe."""
    rows: list[ParentAccountRow] = []
    problems: list[Problem] = []
    labels = {f: r.label(f) for f in PARENT_FIELDS}
    user_types = USER_TYPES
    for number, values, _raw in r.rows(PARENT_FIELDS):
        logon, first, last, email, password, user_type, students, must_change, enabled = values
        if not (logon or first or last or email or password or user_type or must_change or enabled):
            problems.append(r.problem(
                number, sc.S_NO_ACCOUNT_WANTED.code, "",
                "All parent columns are empty, so no account is wanted for this row: nothing to do, or fill it in."))
            continue
        # Fast paths for the usual cells; the parsers handle (and explain) everything else.
        kind = user_types.get(user_type.upper()) if user_type else DEFAULT_USER_TYPE
        ids = (students,) if students.isdigit() and students.isascii() else None
        if (logon and kind and ids is not None and not must_change and not enabled
                and not logon[:1].isdigit()):
            rows.append(ParentAccountRow(number, logon, first, last, email, password, kind, ids, None, None,
                                         r.given(PARENT_FIELDS, values)))
            continue
        found: list[Problem] = []
        if not logon:
            found.append(r.required(number, "LOGONID"))
        parsed: dict[str, object] = {}
        for column, parse, text in (
                ("LOGONID", check_not_scientific, logon), ("USER_TYPE", parse_user_type, user_type),
                ("STUDENT_IDS", parse_ids, students), ("MUST_CHANGE_PASSWORD", parse_flag, must_change),
                ("ENABLED", parse_flag, enabled)):
            try:
                parsed[column] = parse(text, labels[column])
            except BadValue as error:
                found.append(r.bad(number, column, error))
        if found:
            problems.extend(found)
            continue
        rows.append(ParentAccountRow(
            number, logon, first, last, email, password, parsed["USER_TYPE"],  # type: ignore[arg-type]
            parsed["STUDENT_IDS"], parsed["MUST_CHANGE_PASSWORD"], parsed["ENABLED"],  # type: ignore[arg-type]
            r.given(PARENT_FIELDS, values)))
    kept, accounts, merge_problems = merge_parent_accounts(rows, r.columns)
    problems.extend(merge_problems)
    return list(kept), problems, accounts


_DETAILS = ("FIRST_NAME", "LAST_NAME", "EMAIL", "USER_TYPE", "PASSWORD", "MUST_CHANGE_PASSWORD", "ENABLED")
_CASE_INSENSITIVE = frozenset({"FIRST_NAME", "LAST_NAME", "EMAIL", "USER_TYPE"})


def _details(row: ParentAccountRow) -> tuple[object, ...]:
    return (row.first_name, row.last_name, row.email, row.user_type, row.password, row.must_change_password,
            row.enabled)


def _same(column: str, a: object, b: object) -> bool:
    if column in _CASE_INSENSITIVE:
        return str(a).casefold() == str(b).casefold()
    return a == b


def _merge_group(group: list[ParentAccountRow]) -> tuple[ParentAccount, list[tuple[ParentAccountRow, str]]]:
    """One account from rows sharing a LOGONID; rows whose given details disagree are returned with the column.
    USER_TYPE is always compared (empty means GUARDIAN, so it is never "left empty")."""
    head = group[0]
    known = dict(zip(_DETAILS, _details(head), strict=True))
    given = set(head.given)
    numbers = [head.row_number]
    students = dict.fromkeys(head.student_ids)
    refused: list[tuple[ParentAccountRow, str]] = []
    for row in group[1:]:
        details = dict(zip(_DETAILS, _details(row), strict=True))
        clash = next((c for c in _DETAILS if ((c in row.given and c in given) or c == "USER_TYPE")
                      and not _same(c, known[c], details[c])), None)
        if clash is not None:
            refused.append((row, clash))
            continue
        for column in _DETAILS:
            if column in row.given and column not in given:
                known[column] = details[column]
        given |= row.given
        numbers.append(row.row_number)
        students.update(dict.fromkeys(row.student_ids))
    account = ParentAccount(
        head.logonid, str(known["FIRST_NAME"]), str(known["LAST_NAME"]), str(known["EMAIL"]),
        str(known["PASSWORD"]), str(known["USER_TYPE"]), tuple(students),
        known["MUST_CHANGE_PASSWORD"], known["ENABLED"], tuple(numbers), frozenset(given))  # type: ignore[arg-type]
    return account, refused


def merge_parent_accounts(rows: Sequence[ParentAccountRow], columns: dict[str, ColumnRef] | None = None,
                          ) -> tuple[list[ParentAccountRow], list[ParentAccount], list[Problem]]:
    """Rows with one LOGONID (any case) become one account with the union of their students when their details
    agree (a detail left empty agrees with anything, except USER_TYPE whose empty cell means GUARDIAN); a later row
    that disagrees gets E_DUPLICATE_CONFLICT. An
    email used by two usernames gives E_DUPLICATE_EMAIL on every row of the later username.

    Returns the rows kept, the accounts in order of first appearance, and the problems."""
    columns = columns or {}

    def problem(number: int, code: str, column: str, message: str) -> Problem:
        ref = columns.get(column)
        return Problem(number, code, column, message, ref.letter if ref else "")

    firsts: dict[str, ParentAccountRow] = {}
    repeats: dict[str, list[ParentAccountRow]] = {}
    for row in rows:
        key = row.logonid.casefold()
        if key in firsts:
            group = repeats.get(key)
            if group is None:
                repeats[key] = [firsts[key], row]
            else:
                group.append(row)
        else:
            firsts[key] = row

    problems: list[Problem] = []
    refused: set[int] = set()
    by_email: dict[str, ParentAccount] = {}
    accounts: list[ParentAccount] = []
    for key, row in firsts.items():
        group = repeats.get(key) if repeats else None
        if group is None:
            account = ParentAccount(row.logonid, row.first_name, row.last_name, row.email, row.password,
                                    row.user_type, row.student_ids, row.must_change_password, row.enabled,
                                    (row.row_number,), row.given)
        else:
            account, clashes = _merge_group(group)
            for row, column in clashes:
                refused.add(row.row_number)
                if column == "PASSWORD":
                    detail = "a different PASSWORD"
                else:
                    before = dict(zip(_DETAILS, _details(group[0]), strict=True))[column]
                    if column not in group[0].given:
                        before = getattr(account, _ATTRIBUTE[column])
                    now = dict(zip(_DETAILS, _details(row), strict=True))[column]
                    detail = f"{column} '{show(before)}' but this row says '{show(now)}'"
                problems.append(problem(
                    row.row_number, sc.E_DUPLICATE_CONFLICT.code, column,
                    f"LOGONID '{row.logonid}' is also on row {account.row_numbers[0]} with {detail}: make the rows "
                    "agree (siblings share one parent's details), or use different usernames."))
        email = account.email.casefold() if account.email else ""
        owner = by_email.get(email) if email else None
        if owner is not None:
            refused.update(account.row_numbers)
            for number in account.row_numbers:
                problems.append(problem(
                    number, sc.E_DUPLICATE_EMAIL.code, "EMAIL",
                    f"EMAIL '{account.email}' is also on row {owner.row_numbers[0]} with LOGONID '{owner.logonid}': "
                    "give one person one username, or correct the email."))
            continue
        if email:
            by_email[email] = account
        accounts.append(account)
    kept = [row for row in rows if row.row_number not in refused] if refused else list(rows)
    return kept, accounts, problems


_ATTRIBUTE = {"FIRST_NAME": "first_name", "LAST_NAME": "last_name", "EMAIL": "email", "USER_TYPE": "user_type",
              "MUST_CHANGE_PASSWORD": "must_change_password", "ENABLED": "enabled"}


def show(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Y" if value else "N"
    return str(value)
