"""What every workbook any service writes shares: text passes through `neutralise`, so no cell can run as a
formula. (The imports service's writers and the accounts service's reports both use it; neither imports the
other.)"""

from __future__ import annotations

from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
NEUTRALISING_PREFIX = "'"
# Excel refuses a cell longer than this.
MAX_CELL_CHARS = 32_767


def neutralise(value: object) -> object:
    """A value safe to write into a cell: text starting with = + - @ tab or CR gets a leading apostrophe (so Excel,
    or a CSV export of the sheet, never evaluates it), characters XML cannot hold are dropped, and text is cut to
    the length Excel accepts. Values that are not text are returned unchanged.

    The imports reader (`values.clean`) removes that apostrophe again, so a neutralised workbook reads back as
    written.
    """
    if not isinstance(value, str):
        return value
    text = value
    if ILLEGAL_CHARACTERS_RE.search(text):
        text = ILLEGAL_CHARACTERS_RE.sub("", text)
    if text.startswith(FORMULA_TRIGGERS):
        text = NEUTRALISING_PREFIX + text
    if len(text) > MAX_CELL_CHARS:
        text = text[: MAX_CELL_CHARS - 1] + "…"
    return text

