"""A batch of account rows column by column (`AccountRowColumns`, answered with `AccountRowResultColumns`): the
shape in which the imports service sends thousands of rows at a time, turned into the domain's rows and back.

One message of a few long lists is several times cheaper to build, send and read than a message a row: with
100,000 rows a file, that difference is seconds of the accounts service's time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import repeat
from typing import Any

from plumbing.errors import FieldViolation, InvalidArgument
from portal.accounts.v1 import accounts_pb2 as pb
from services.accounts.domain import AccountRow, RowAction, RowResult

# The text columns in AccountRow's field order after `type` and `student_ids` (see rows_from_columns).
_TEXT_BEFORE = ("username", "first_name", "last_name", "email", "password")
_TEXT_AFTER = ("must_change_password", "enabled", "contact_id", "school")


def _wrong_length(column: str, found: int, rows: int) -> InvalidArgument:
    return InvalidArgument(f"The column {column} holds {found} values for {rows} rows: send a value for every "
                           "row, or leave the column out when it is empty in every row.",
                           [FieldViolation(f"columns.{column}", f"{rows} values, or none")])


def _column(columns: pb.AccountRowColumns, name: str, rows: int) -> Sequence[Any]:
    values = getattr(columns, name)
    if not values:
        return tuple(repeat("", rows))
    if len(values) != rows:
        raise _wrong_length(name, len(values), rows)
    return list(values)


def _runs(values: Sequence[str], counts: Sequence[int], rows: int) -> list[tuple[str, ...]]:
    """The student ids cut into one tuple a row, of `counts[i]` ids each."""
    if not counts:
        if values:
            raise _wrong_length("student_id_counts", 0, rows)
        return [()] * rows
    if len(counts) != rows:
        raise _wrong_length("student_id_counts", len(counts), rows)
    if any(n < 0 for n in counts) or sum(counts) != len(values):
        raise InvalidArgument(f"The student_id_counts add up to {sum(counts)}, but student_ids holds {len(values)} "
                              "ids: give each row the number of its ids.",
                              [FieldViolation("columns.student_id_counts", "one count a row, adding up")])
    runs, start = [], 0
    for n in counts:
        runs.append(tuple(values[start:start + n]))
        start += n
    return runs


def rows_from_columns(columns: pb.AccountRowColumns, type_names: Mapping[int, str]) -> list[AccountRow]:
    """The batch's rows (raises InvalidArgument when a column's length does not match the rows)."""
    numbers = list(columns.row_number)
    rows = len(numbers)
    # An unknown type number reaches the rules as text, which report it on the row (E_USER_TYPE).
    types = [type_names.get(t, f"type {t}") if t else "" for t in _column(columns, "type", rows)]
    student_ids = _runs(list(columns.student_ids), list(columns.student_id_counts), rows)
    before = [_column(columns, name, rows) for name in _TEXT_BEFORE]
    after = [_column(columns, name, rows) for name in _TEXT_AFTER]
    return list(map(AccountRow, numbers, *before, types, student_ids, *after))


def result_columns(results: Sequence[RowResult], actions: Mapping[RowAction, int]) -> pb.AccountRowResultColumns:
    """The results of a batch sent as columns, in the order of its rows."""
    return pb.AccountRowResultColumns(
        row_number=[r.row_number for r in results],
        action=[actions[r.action] for r in results],
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
