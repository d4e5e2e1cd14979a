"""The upload log workbook: one row per uploaded row with what was done (added, updated, linked, unchanged,
skipped or not uploaded) and its codes, and a "Summary" sheet of counts. Never holds a password."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from openpyxl.utils import get_column_letter

from .outcomes import LOG_LABELS, Action, LogEntry, Tally
from .writing import (
    AMBER,
    BOLD,
    GREEN,
    GREY,
    HEADER_FILL,
    RED,
    WRAP,
    cell,
    new_workbook,
    plain,
    save,
    set_widths,
    write_summary,
)

LOG_HEADER = ("ROW", "ACTION", "LOGONID", "NAME", "EMAIL", "STUDENT_IDS", "CODES", "MESSAGE")
_ACTION_FILLS = {Action.CREATE: GREEN, Action.UPDATE: GREEN, Action.LINK: GREEN, Action.UNCHANGED: GREY,
                 Action.SKIP: GREY, Action.ERROR: RED}


def write_upload_log(entries: Iterable[LogEntry], *, title: str = "Upload log", lines: Sequence[str] = ()) -> bytes:
    """The log of an upload as .xlsx bytes: entries in row order on a "Log" sheet, then a "Summary" sheet."""
    ordered = sorted(entries, key=lambda e: e.row_number)
    book = new_workbook()
    sheet = book.create_sheet("Log")
    set_widths(sheet, [8, 22, 30, 30, 34, 24, 28, 90])
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(LOG_HEADER))}{max(len(ordered) + 1, 2)}"
    sheet.append([cell(sheet, h, font=BOLD, fill=HEADER_FILL) for h in LOG_HEADER])
    tally = Tally()
    for entry in ordered:
        tally.add(entry.action, entry.problems)
        codes = ", ".join(dict.fromkeys(p.code for p in entry.problems))
        warned = any(p.is_warning for p in entry.problems) and entry.action is not Action.ERROR
        message = " ".join([entry.detail] * bool(entry.detail) + [f"{p.code}: {p.message}" for p in entry.problems])
        sheet.append([
            entry.row_number,
            cell(sheet, LOG_LABELS[entry.action], fill=AMBER if warned else _ACTION_FILLS[entry.action]),
            plain(entry.logonid), plain(entry.name), plain(entry.email), plain("; ".join(entry.student_ids)),
            cell(sheet, codes, fill=RED) if entry.action is Action.ERROR and codes else plain(codes),
            cell(sheet, message, alignment=WRAP) if len(message) > 90 else plain(message),
        ])
    write_summary(book, title, tally, LOG_LABELS, lines)
    return save(book)
