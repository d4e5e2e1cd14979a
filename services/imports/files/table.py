"""The table read out of a file: its header row and data rows as text, with the Excel row numbers they came from."""

from __future__ import annotations

from dataclasses import dataclass

from .formats import FileFormat


@dataclass
class Table:
    """Rows as read, every cell as text (numbers, dates and booleans already rendered, see `cells.cell_text`).

    `rows[i]` is Excel row `header_row_number + 1 + i`; every row is exactly `len(header)` cells wide; blank rows
    inside the data are kept (so numbering stays true) and trailing blank rows are dropped.
    """

    file_format: FileFormat
    sheet_name: str
    header_row_number: int
    header: list[str]
    rows: list[list[str]]
    encoding: str = ""  # CSV only: the text encoding found
    delimiter: str = ""  # CSV only: the delimiter found

    def row_number(self, index: int) -> int:
        """The 1-based row number staff see in Excel for `rows[index]`."""
        return self.header_row_number + 1 + index

    @property
    def first_row_number(self) -> int:
        return self.header_row_number + 1
