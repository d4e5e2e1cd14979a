"""Helpers for the workbooks reports write (openpyxl write-only mode): sheet names Excel accepts, bold header rows,
and saving through a temporary file. Text goes through `plumbing.workbooks.neutralise`."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

from plumbing.workbooks import neutralise

SHEET_NAME_MAX = 31
# Excel's limit of rows on one sheet.
MAX_ROWS = 1_048_576
_FORBIDDEN = re.compile(r"[\[\]:*?/\\\x00-\x1f\x7f]")
# Names Excel keeps for itself (compared case-insensitively).
_RESERVED = frozenset({"history"})
_BOLD = Font(bold=True)


class SheetNames:
    """Hands out sheet names Excel accepts: at most 31 characters, none of [ ] : * ? / \\, no apostrophe at either
    end, not blank, not a reserved name, and unique in the workbook whatever the case (a clash gets " (2)",
    " (3)"... within the 31 characters)."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    @staticmethod
    def clean(wanted: str, fallback: str = "Sheet") -> str:
        name = _FORBIDDEN.sub("_", wanted).strip().strip("'").strip()
        name = name[:SHEET_NAME_MAX].rstrip().rstrip("'").rstrip()
        if not name or name.lower() in _RESERVED:
            name = (name + " " if name else "") + fallback
        return name[:SHEET_NAME_MAX]

    def take(self, wanted: str, fallback: str = "Sheet") -> str:
        base = self.clean(wanted, fallback)
        name, number = base, 1
        while name.lower() in self._taken:
            number += 1
            suffix = f" ({number})"
            name = base[:SHEET_NAME_MAX - len(suffix)].rstrip().rstrip("'") + suffix
        self._taken.add(name.lower())
        return name


def header_cells(sheet: Any, names: Sequence[str]) -> list[WriteOnlyCell]:
    """A bold header row for a write-only sheet."""
    cells = []
    for name in names:
        cell = WriteOnlyCell(sheet, value=neutralise(name))
        cell.font = _BOLD
        cells.append(cell)
    return cells


def saved(workbook: Workbook) -> bytes:
    """The workbook as .xlsx bytes, written through a temporary file (its rows were streamed to disk already)."""
    with tempfile.TemporaryFile(suffix=".xlsx") as handle:
        workbook.save(handle)
        handle.seek(0)
        return handle.read()
