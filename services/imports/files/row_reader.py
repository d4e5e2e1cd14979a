"""Walking the data rows of a table: the cleaned values of the columns a kind reads, and problems naming row,
column and letter."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from operator import itemgetter

from plumbing import status_codes as sc

from .kinds import HeaderMatch
from .problems import Problem
from .table import Table
from .values import BadValue, clean

# First characters after which a cell needs more than strip(): an apostrophe `neutralise` added, invisible spaces.


_NEEDS_CLEANING = frozenset("'\u200b\ufeff \xa0\t\r\n")


class RowReader:
    """Walks the non-blank data rows of a table and builds problems that name row, column and letter."""

    def __init__(self, table: Table, match: HeaderMatch) -> None:
        self.table = table
        self.columns = match.columns
        self.data_rows = 0
        self._given_cache: dict[tuple[str, ...], dict[tuple[bool, ...], frozenset[str]]] = {}

    def label(self, column: str) -> str:
        ref = self.columns.get(column)
        return f"{column} (column {ref.letter})" if ref else column

    def rows(self, fields: Sequence[str]) -> Iterator[tuple[int, list[str], list[str]]]:
        """(row number, cleaned values of `fields` in order, raw row) for every row with any value."""
        present = [self.columns[f].index for f in fields if f in self.columns]
        absent = [position for position, f in enumerate(fields) if f not in self.columns]
        pick = itemgetter(*present) if len(present) > 1 else (lambda row: (row[present[0]],))
        special = _NEEDS_CLEANING
        first = self.table.first_row_number
        for offset, row in enumerate(self.table.rows):
            if not any(row):
                continue
            values = [clean(v) if v[:1] in special else v.strip() for v in pick(row)]
            for position in absent:
                values.insert(position, "")
            if not any(values) and not any(c.strip() for c in row):
                continue
            self.data_rows += 1
            yield first + offset, values, row

    def given(self, fields: tuple[str, ...], values: list[str]) -> frozenset[str]:
        cache = self._given_cache.setdefault(fields, {})
        key = tuple(map(bool, values))
        found = cache.get(key)
        if found is None:
            found = cache[key] = frozenset(f for f, v in zip(fields, values, strict=True) if v)
        return found

    def problem(self, row_number: int, code: str, column: str, message: str) -> Problem:
        ref = self.columns.get(column)
        return Problem(row_number, code, column, message, ref.letter if ref else "")

    def required(self, row_number: int, column: str) -> Problem:
        return self.problem(row_number, sc.E_REQUIRED.code, column,
                            f"{self.label(column)} is empty: fill it in, or clear the whole row if it is not wanted.")

    def bad(self, row_number: int, column: str, error: BadValue) -> Problem:
        return self.problem(row_number, error.code, column, error.message)
