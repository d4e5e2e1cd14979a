"""A batch of account rows column by column (`AccountRowColumns`, answered with `AccountRowResultColumns`): the
shape in which the imports service sends thousands of rows at a time, turned into the domain's rows and back.

One message of a few long lists is several times cheaper to build, send and read than a message a row: with
100,000 rows a file, that difference is seconds of the accounts service's time."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat
from typing import Any

from plumbing.errors import FieldViolation, InvalidArgument
from portal.accounts.v1 import accounts_pb2 as pb
from services.accounts.domain import AccountRow, AccountType, RowAction, RowResult

TYPES = {AccountType.GUARDIAN: pb.ACCOUNT_TYPE_GUARDIAN, AccountType.STUDENT: pb.ACCOUNT_TYPE_STUDENT,
         AccountType.STAFF: pb.ACCOUNT_TYPE_STAFF}
TYPE_NAMES = {number: domain.value for domain, number in TYPES.items()}
ROW_ACTIONS = {RowAction.CREATE: pb.ROW_ACTION_CREATE, RowAction.UPDATE: pb.ROW_ACTION_UPDATE,
               RowAction.LINK: pb.ROW_ACTION_LINK, RowAction.UNCHANGED: pb.ROW_ACTION_UNCHANGED,
               RowAction.ERROR: pb.ROW_ACTION_ERROR, RowAction.SKIP: pb.ROW_ACTION_SKIP}

# The text columns in AccountRow's field order after `type` and `student_ids` (see rows_from_columns).
_TEXT_BEFORE = ("username", "first_name", "last_name", "email", "password")
_TEXT_AFTER = ("must_change_password", "enabled", "contact_id", "school")


def _wrong_length(column: str, found: int, rows: int) -> InvalidArgument:
    return InvalidArgument(f"The column {column} holds {found} values for {rows} rows: send a value for every "
                           "row, or leave the column out when it is empty in every row.",
                           [FieldViolation(f"columns.{column}", f"{rows} values, or none")])


_COLUMNS = (*_TEXT_BEFORE, "type", *_TEXT_AFTER)


def column_rows(columns: pb.AccountRowColumns) -> int:
    """How many rows the columns hold (raises InvalidArgument when a column's length does not match)."""
    rows = len(columns.row_number)
    for name in _COLUMNS:
        found = len(getattr(columns, name))
        if found and found != rows:
            raise _wrong_length(name, found, rows)
    counts = columns.student_id_counts
    if not counts and columns.student_ids:
        raise _wrong_length("student_id_counts", 0, rows)
    if counts and len(counts) != rows:
        raise _wrong_length("student_id_counts", len(counts), rows)
    if any(n < 0 for n in counts) or sum(counts) != len(columns.student_ids):
        raise InvalidArgument(f"The student_id_counts add up to {sum(counts)}, but student_ids holds "
                              f"{len(columns.student_ids)} ids: give each row the number of its ids.",
                              [FieldViolation("columns.student_id_counts", "one count a row, adding up")])
    return rows


def _column(columns: pb.AccountRowColumns, name: str, rows: int) -> Sequence[Any]:
    values = getattr(columns, name)
    return list(values) if values else tuple(repeat("", rows))


def _runs(values: Sequence[str], counts: Sequence[int], rows: int) -> list[tuple[str, ...]]:
    """The student ids cut into one tuple a row, of `counts[i]` ids each."""
    if not counts:
        return [()] * rows
    runs, start = [], 0
    for n in counts:
        runs.append(tuple(values[start:start + n]))
        start += n
    return runs


def rows_from_columns(columns: pb.AccountRowColumns) -> list[AccountRow]:
    """The batch's rows (raises InvalidArgument when a column's length does not match the rows)."""
    rows = column_rows(columns)
    numbers = list(columns.row_number)
    # An unknown type number reaches the rules as text, which report it on the row (E_USER_TYPE).
    types = [TYPE_NAMES.get(t, f"type {t}") if t else "" for t in _column(columns, "type", rows)]
    student_ids = _runs(list(columns.student_ids), list(columns.student_id_counts), rows)
    before = [_column(columns, name, rows) for name in _TEXT_BEFORE]
    after = [_column(columns, name, rows) for name in _TEXT_AFTER]
    return list(map(AccountRow, numbers, *before, types, student_ids, *after))


def result_columns(results: Sequence[RowResult]) -> pb.AccountRowResultColumns:
    """The results of a batch sent as columns, in the order of its rows."""
    return pb.AccountRowResultColumns(
        row_number=[r.row_number for r in results],
        action=[ROW_ACTIONS[r.action] for r in results],
        username=[r.username for r in results],
        invitation_queued=[r.invitation_queued for r in results],
        new_student_ids=[s for r in results for s in r.new_student_ids],
        new_student_id_counts=[len(r.new_student_ids) for r in results],
        changed_fields=[f for r in results for f in r.changed_fields],
        changed_field_counts=[len(r.changed_fields) for r in results],
        problem_rows=[index for index, r in enumerate(results) for _ in r.problems],
        problems=[pb.RowProblem(code=p.code, column=p.field, message=p.message, warning=p.warning)
                  for r in results for p in r.problems],
    )
