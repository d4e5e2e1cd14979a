"""What every workbook the system writes shares: fills, fonts, cells that pass through `neutralise`, comments,
column widths, a summary sheet of counts and codes, and saving to bytes. Workbooks are written in openpyxl's
write-only mode, so 100,000 rows stream out without holding a sheet in memory."""

from __future__ import annotations

import io
from collections.abc import Sequence

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.styles.cell_style import StyleArray
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from plumbing import status_codes

from .neutralise import neutralise
from .outcomes import Action, Tally

RED = PatternFill("solid", fgColor="FFC7CE")
GREEN = PatternFill("solid", fgColor="C6EFCE")
AMBER = PatternFill("solid", fgColor="FFEB9C")
GREY = PatternFill("solid", fgColor="E7E6E6")
HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
BOLD = Font(bold=True)
TITLE = Font(bold=True, size=14)
WRAP = Alignment(wrap_text=True, vertical="top")
TOP = Alignment(vertical="top")
AUTHOR = "Parent Portal"


def new_workbook() -> Workbook:
    """An empty write-only workbook."""
    return Workbook(write_only=True)


def cell(sheet: WriteOnlyWorksheet, value: object, *, fill: PatternFill | None = None, font: Font | None = None,
         note: str | None = None, number_format: str | None = None,
         alignment: Alignment | None = None) -> WriteOnlyCell:
    """A styled cell whose value went through `neutralise`. Text enters a workbook only through this function and
    `plain` (both use `neutralise`)."""
    written = WriteOnlyCell(sheet, value=neutralise(value))
    if written.data_type == "f":  # belt and braces: a value neutralise let through can never become a formula
        written.data_type = "s"
    if note and fill is None and font is None and alignment is None and number_format is None:
        # openpyxl's write-only rows reuse an unstyled cell object for the plain values that follow it, which
        # would repeat its note on each of them: a styled cell is never reused.
        alignment = TOP
    if fill is not None or font is not None or alignment is not None or number_format is not None:
        _apply_style(sheet, written, (id(fill), id(font), id(alignment), number_format), fill, font, alignment,
                     number_format)
    if note:
        written.comment = comment(note)
    return written


# Setting a style on an openpyxl cell hashes it against the workbook's style lists each time (the costliest step of
# writing 100,000 styled cells); the resulting style array is computed once per workbook and style, then copied.
_STYLE_CACHE_ATTRIBUTE = "_portal_style_cache"


def _apply_style(sheet: WriteOnlyWorksheet, written: WriteOnlyCell, key: tuple[object, ...],
                 fill: PatternFill | None, font: Font | None, alignment: Alignment | None,
                 number_format: str | None) -> None:
    book = sheet.parent
    cache: dict[tuple[object, ...], StyleArray] = book.__dict__.setdefault(_STYLE_CACHE_ATTRIBUTE, {})
    known = cache.get(key)
    if known is not None:
        written._style = StyleArray(known)
        return
    if fill is not None:
        written.fill = fill
    if font is not None:
        written.font = font
    if alignment is not None:
        written.alignment = alignment
    if number_format is not None:
        written.number_format = number_format
    cache[key] = StyleArray(written._style)


def comment(text: str, width: int = 340) -> Comment:
    """A cell note (XML-illegal characters removed), tall enough for its text."""
    lines = sum(len(line) // 48 + 1 for line in text.splitlines() or [""])
    return Comment(ILLEGAL_CHARACTERS_RE.sub("", text), AUTHOR, width=width, height=min(60 + 18 * lines, 420))


def plain(value: object) -> object:
    """An unstyled value for a write-only row: `neutralise`d, and None (no cell at all) for empty text."""
    if value == "":
        return None
    return neutralise(value)


def set_widths(sheet: WriteOnlyWorksheet, widths: Sequence[float]) -> None:
    """Column widths (before any row is written, as write-only sheets require)."""
    for index, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width


def save(book: Workbook) -> bytes:
    """The workbook as .xlsx bytes."""
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def write_summary(book: Workbook, title: str, tally: Tally, labels: dict[Action, str],
                  lines: Sequence[str] = ()) -> None:
    """A "Summary" sheet: the title, the count of rows per action, extra lines, and each code with its count,
    meaning and fix."""
    sheet = book.create_sheet("Summary")
    set_widths(sheet, [28, 12, 60, 60])
    sheet.append([cell(sheet, title, font=TITLE)])
    sheet.append([])
    sheet.append([cell(sheet, "Rows read", font=BOLD), tally.rows])
    for action in Action:
        sheet.append([cell(sheet, labels[action].capitalize()), tally.actions.get(action, 0)])
    if lines:
        sheet.append([])
        for line in lines:
            sheet.append([cell(sheet, line)])
    if tally.codes:
        sheet.append([])
        sheet.append([cell(sheet, h, font=BOLD, fill=HEADER_FILL) for h in ("Status code", "Rows", "Meaning", "Fix")])
        for code in sorted(tally.codes, key=lambda c: (c[0] != "E", c[0] != "W", c)):
            known = _catalogue_entry(code)
            sheet.append([cell(sheet, code, fill=fill_for_code(code)), tally.codes[code],
                          cell(sheet, known.meaning if known else "", alignment=WRAP),
                          cell(sheet, known.fix if known else "", alignment=WRAP)])


def fill_for_code(code: str) -> PatternFill:
    """Red for errors, amber for warnings, grey for rows skipped on purpose."""
    return RED if code.startswith("E_") else AMBER if code.startswith("W_") else GREY


def fix_for(code: str) -> str:
    """The catalogue's fix for a code ("" for a code the catalogue does not hold)."""
    known = _catalogue_entry(code)
    return known.fix if known else ""


def _catalogue_entry(code: str) -> status_codes.StatusCode | None:
    try:
        return status_codes.lookup(code)
    except KeyError:
        return None
