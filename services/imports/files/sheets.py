"""Reading a workbook (python-calamine) or CSV text into a `Table`. These functions run inside the worker process:
they trust nothing and refuse with a `FileRefused` when a limit is passed or no header row is recognised."""

from __future__ import annotations

import csv
import io

from python_calamine import CalamineError, CalamineWorkbook, PasswordError, SheetTypeEnum, SheetVisibleEnum

from .cells import cell_text
from .csvtext import decode_text, sniff_delimiter
from .errors import CorruptFile, EmptyFile, PasswordProtected, TooManyColumns, TooManyRows, UnknownKind
from .formats import FileFormat
from .kinds import kinds_help, match_header
from .limits import Limits
from .table import Table

# The header row may sit below a title: it is looked for in the first rows of each sheet.
HEADER_SCAN_ROWS = 10


def read_workbook(data: bytes, limits: Limits) -> Table:
    """The first sheet (visible sheets first) whose header row is recognisable, every cell as text.

    Formulas are read as their cached values (a formula never calculated reads as empty); macros are never read.
    """
    try:
        book = CalamineWorkbook.from_filelike(io.BytesIO(data))
        order = _sheet_order(book)
    except PasswordError:
        raise PasswordProtected(
            "The workbook is protected with a password, so it cannot be read: remove the password in Excel, save, "
            "and send the file again.") from None
    except CalamineError as exc:
        raise CorruptFile(_damaged(exc)) from None
    first_seen: list[str] | None = None
    for index in order:
        try:
            sheet = book.get_sheet_by_index(index)
            end = sheet.end
            if end is None:
                continue
            head = sheet.to_python(skip_empty_area=False, nrows=HEADER_SCAN_ROWS)
        except CalamineError as exc:
            raise CorruptFile(_damaged(exc)) from None
        header_at = None
        for number, row in enumerate(head, start=1):
            cells = [cell_text(v).strip() for v in row]
            if first_seen is None and any(cells):
                first_seen = cells
            if match_header(cells) is not None:
                header_at = number
                break
        if header_at is None:
            continue
        last_row, last_column = end[0] + 1, end[1] + 1
        _check_size(last_row - header_at, last_column, limits, f"The sheet '{sheet.name}'")
        grid = sheet.to_python(skip_empty_area=False)
        del sheet
        header = _trim([cell_text(v).strip() for v in grid[header_at - 1]])
        rows = grid[header_at:]
        del grid
        _to_text(rows, len(header))
        return Table(FileFormat.XLSX, book.sheet_names[index], header_at, header, rows)
    if first_seen is None:
        raise EmptyFile("The workbook holds no rows on any sheet: send the file that holds the rows.")
    raise UnknownKind(_unknown_message(first_seen))


def read_csv(data: bytes, limits: Limits) -> Table:
    """CSV text (UTF-8 with or without BOM, UTF-16, else Windows-1252; comma, semicolon or tab) as a `Table`."""
    text, encoding = decode_text(data)
    delimiter = sniff_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] | None = None
    header_at = 0
    first_seen: list[str] | None = None
    rows: list[list[str]] = []
    try:
        for row in reader:
            if header is None:
                header_at += 1
                cells = [c.strip() for c in row]
                if first_seen is None and any(cells):
                    first_seen = cells
                if match_header(cells) is not None:
                    header = _trim(cells)
                    if len(row) > limits.max_columns:
                        _check_size(0, len(row), limits, "The CSV file")
                elif header_at >= HEADER_SCAN_ROWS:
                    break
                continue
            rows.append(row)
            if len(rows) > limits.max_rows:
                raise TooManyRows(
                    f"The CSV file has more than {limits.max_rows:,} rows below its header, the most the portal "
                    "reads in one file: split the rows over several files (and delete empty rows below the data).")
    except csv.Error as exc:
        raise CorruptFile(
            f"The CSV file cannot be read ({exc}): look for a quote that is never closed or a cell far too long, "
            "or save the file again from Excel as CSV UTF-8, and send it again.") from None
    if header is None:
        if first_seen is None:
            raise EmptyFile("The CSV file holds no rows: send the file that holds the rows.")
        raise UnknownKind(_unknown_message(first_seen))
    width = len(header)
    for row in rows:
        if len(row) > limits.max_columns:
            _check_size(0, len(row), limits, "The CSV file")
        if len(row) < width:
            row.extend([""] * (width - len(row)))
        elif len(row) > width:
            del row[width:]
    _trim_trailing_blank_rows(rows)
    return Table(FileFormat.CSV, "", header_at, header, rows, encoding=encoding, delimiter=delimiter)


def _sheet_order(book: CalamineWorkbook) -> list[int]:
    """Worksheets in workbook order, visible ones first (chart and macro sheets are skipped)."""
    sheets = [(i, m) for i, m in enumerate(book.sheets_metadata) if m.typ == SheetTypeEnum.WorkSheet]
    visible = [i for i, m in sheets if m.visible == SheetVisibleEnum.Visible]
    return visible + [i for i, m in sheets if m.visible != SheetVisibleEnum.Visible]


def _check_size(data_rows: int, columns: int, limits: Limits, what: str) -> None:
    if data_rows > limits.max_rows:
        raise TooManyRows(
            f"{what} has {data_rows:,} rows below its header, more than the {limits.max_rows:,} the portal reads in "
            "one file: split the rows over several files (and delete empty rows below the data).")
    if columns > limits.max_columns:
        raise TooManyColumns(
            f"{what} has {columns:,} columns, more than the {limits.max_columns:,} the portal reads: delete the "
            "columns the import does not need (a stray value far to the right counts too), save, and send it again.")


def _to_text(rows: list[list[object]], width: int) -> None:
    """Render every cell as text in place, cut each row to `width` cells, and drop trailing blank rows."""
    for row in rows:
        if len(row) > width:
            del row[width:]
        elif len(row) < width:
            row.extend([""] * (width - len(row)))
        for i, value in enumerate(row):
            if value.__class__ is not str:
                row[i] = cell_text(value)
    _trim_trailing_blank_rows(rows)  # type: ignore[arg-type]


def _trim(cells: list[str]) -> list[str]:
    end = len(cells)
    while end and not cells[end - 1]:
        end -= 1
    return cells[:end]


def _trim_trailing_blank_rows(rows: list[list[str]]) -> None:
    while rows and not any(c.strip() for c in rows[-1]):
        rows.pop()


def _damaged(exc: Exception) -> str:
    return (f"The workbook is damaged and cannot be read ({type(exc).__name__}): open it in Excel, save a fresh copy "
            "(Save As .xlsx), and send that copy.")


def _unknown_message(found: list[str]) -> str:
    shown = ", ".join(c for c in found if c)[:300]
    return ("The header row matches none of the kinds of file the portal reads: rename the headers to one kind's "
            "columns below, or start from the upload template (headers found: " + shown + ").\n" + kinds_help())
