"""The annotated trial-run workbook: the uploaded rows as they were, two added columns STATUS and MESSAGE, bad
cells filled red with a note (code and fix), rows that go ahead green, and a "Summary" sheet.

Passwords are never repeated: a PASSWORD cell is left empty with a note. Rows keep their row numbers (blank rows
and rows above the header are kept), so "row 12" means the same row in the upload, the messages and this workbook;
and staff can fix this workbook and send it back as it is (the reader ignores STATUS and MESSAGE).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

from openpyxl.formatting.rule import FormulaRule
from openpyxl.styles import PatternFill
from openpyxl.utils import get_column_letter

from .formats import FileFormat
from .kinds import canonical_column, normalise_header
from .outcomes import TRIAL_LABELS, Action, RowOutcome, Tally, action_of
from .problems import Problem
from .rows import ParsedFile, parse_rows
from .table import Table
from .writing import (
    AMBER,
    BOLD,
    GREEN,
    GREY,
    HEADER_FILL,
    RED,
    cell,
    fix_for,
    new_workbook,
    plain,
    save,
    set_widths,
    write_summary,
)

PASSWORD_NOTE = "not repeated: type it again, or leave empty to send an invitation"
OK = "OK"
_BAD_TITLE = re.compile(r"[\[\]:*?/\\]")


def write_annotated_workbook(parsed: ParsedFile | Table, outcomes: Iterable[RowOutcome], *,
                             title: str = "Trial run", lines: Sequence[str] = ()) -> bytes:
    """The annotated workbook of a trial run as .xlsx bytes.

    `parsed` is the file as read, or just its `Table` (kept by a job: it is read again here, without a worker).
    `outcomes` is the plan (one per row it decided on); the problems the reader found (`parsed.problems`) are
    merged in, so rows the plan never saw still carry their codes. `lines` are extra summary lines (for example
    "12 rows will now get an invitation instead of a password").
    """
    if isinstance(parsed, Table):
        parsed = parse_rows(parsed)
    table = parsed.table
    width = len(table.header)
    by_row = {o.row_number: o for o in outcomes}
    found: dict[int, list[Problem]] = {}
    for problem in parsed.problems:
        found.setdefault(problem.row_number, []).append(problem)
    locate = _column_locator(parsed)
    passwords = {i for i, h in enumerate(table.header) if canonical_column(h) == "PASSWORD"}

    book = new_workbook()
    sheet = book.create_sheet(_sheet_title(parsed))
    set_widths(sheet, [min(max(len(h) + 4, 12), 40) for h in table.header] + [26, 90])
    header_row = table.header_row_number
    status_letter, message_letter = get_column_letter(width + 1), get_column_letter(width + 2)
    sheet.freeze_panes = f"A{header_row + 1}"
    last_row = header_row + len(table.rows)
    sheet.auto_filter.ref = f"A{header_row}:{message_letter}{max(last_row, header_row + 1)}"
    sheet.conditional_formatting.add(
        f"A{header_row + 1}:{message_letter}{max(last_row, header_row + 1)}",
        FormulaRule(formula=[f'LEFT(${status_letter}{header_row + 1},2)="{OK}"'], fill=GREEN))
    for _ in range(header_row - 1):
        sheet.append([])
    sheet.append([cell(sheet, h, font=BOLD, fill=HEADER_FILL) for h in table.header]
                 + [cell(sheet, "STATUS", font=BOLD, fill=HEADER_FILL),
                    cell(sheet, "MESSAGE", font=BOLD, fill=HEADER_FILL)])

    tally = Tally()
    not_repeated = 0
    for offset, row in enumerate(table.rows):
        number = table.first_row_number + offset
        outcome = by_row.get(number)
        problems = _merge(outcome.problems if outcome else (), found.get(number, ()))
        if outcome is None and not problems:
            if not any(c.strip() for c in row):
                sheet.append([])
                continue
            tally.rows += 1
            action = None
        else:
            action = outcome.action if outcome else action_of(problems)
            tally.add(action, problems)
        by_cell: dict[int, list[Problem]] = {}
        whole_row: list[Problem] = []
        for problem in problems:
            index = locate(problem.column)
            (by_cell.setdefault(index, []) if index is not None else whole_row).append(problem)
        cells: list[object] = []
        for index, value in enumerate(row):
            if index in passwords:
                if value.strip():
                    not_repeated += 1
                    cells.append(cell(sheet, None, fill=GREY, note=PASSWORD_NOTE))
                else:
                    cells.append(None)
            elif index in by_cell:
                marks = by_cell[index]
                cells.append(cell(sheet, value, fill=_fill(marks), note=_note(marks)))
            else:
                cells.append(plain(value))
        status = _status(problems)
        cells.append(cell(sheet, status, fill=_fill(problems) if problems else GREEN,
                          note=_note(whole_row) if whole_row else None))
        cells.append(plain(_message(action, problems)))
        sheet.append(cells)

    summary = list(lines)
    if not_repeated:
        summary.append(f"{not_repeated} password{'s were' if not_repeated != 1 else ' was'} not repeated: type "
                       "them again, or leave PASSWORD empty to send invitations.")
    summary.extend(w.message for w in parsed.file_warnings)
    summary.extend(parsed.notes)
    write_summary(book, title, tally, TRIAL_LABELS, summary)
    return save(book)


def _sheet_title(parsed: ParsedFile) -> str:
    name = parsed.table.sheet_name if parsed.table.file_format is FileFormat.XLSX else ""
    name = _BAD_TITLE.sub(" ", name).strip()[:31]
    return name if name and name.lower() != "summary" else "Rows"


def _column_locator(parsed: ParsedFile) -> Callable[[str], int | None]:
    by_name = {name: ref.index for name, ref in parsed.columns.items()}
    by_header = {normalise_header(h): i for i, h in enumerate(parsed.table.header) if h}

    def locate(column: str) -> int | None:
        if not column:
            return None
        if column in by_name:
            return by_name[column]
        return by_header.get(normalise_header(column))

    return locate


def _merge(planned: Sequence[Problem], read: Sequence[Problem]) -> list[Problem]:
    merged: dict[tuple[str, str], Problem] = {}
    for problem in (*planned, *read):
        merged.setdefault((problem.code, problem.column), problem)
    return sorted(merged.values(), key=lambda p: (not p.is_error, not p.is_warning, p.code))


def _status(problems: Sequence[Problem]) -> str:
    codes = ", ".join(dict.fromkeys(p.code for p in problems))
    if any(p.is_error or p.is_skip for p in problems):
        return codes
    return f"{OK}, {codes}" if codes else OK


def _message(action: Action | None, problems: Sequence[Problem]) -> str:
    parts = [TRIAL_LABELS[action].capitalize() + "."] if action is not None else []
    parts.extend(f"{p.code}: {p.message}" for p in problems)
    return " ".join(parts)


def _fill(problems: Sequence[Problem]) -> PatternFill:
    if any(p.is_error for p in problems):
        return RED
    if any(p.is_warning for p in problems):
        return AMBER
    return GREY


def _note(problems: Sequence[Problem]) -> str:
    lines = []
    for p in problems:
        fix = fix_for(p.code)
        lines.append(f"{p.code}: {p.message}" + (f"\nFix: {fix}" if fix and fix not in p.message else ""))
    return "\n".join(lines)
