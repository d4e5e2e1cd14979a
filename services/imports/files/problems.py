"""A problem found on one row (or on the header row): status code, column and a sentence saying how to fix it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One status code on one row. `column` is the canonical column name ("LOGONID") or "" for the whole row;
    `letter` is the spreadsheet column letter when known. Codes: E_ error (row skipped until fixed), W_ warning
    (row goes ahead), S_ skipped on purpose."""

    row_number: int
    code: str
    column: str
    message: str
    letter: str = ""

    @property
    def is_error(self) -> bool:
        return self.code.startswith("E_")

    @property
    def is_warning(self) -> bool:
        return self.code.startswith("W_")

    @property
    def is_skip(self) -> bool:
        return self.code.startswith("S_")
