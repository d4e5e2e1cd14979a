"""The portal-usage workbook (openpyxl write-only: rows stream to disk, memory stays flat).

A "Summary" sheet has one row per selected parent, those who never signed in included: username, name, email,
linked students, number of sign-ins in the range, first and last sign-in. Then, as the seed describes, one sheet
per parent (user, email, linked learners, date and time of each sign-in); or, over the configured number of
parents, one "Sign-ins" sheet with a row per sign-in and an autofilter (continued on "Sign-ins (2)" past Excel's
row limit). Times are the school's wall-clock times; text is neutralised against formulas.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.utils import get_column_letter

from plumbing.sheets import MAX_ROWS, SheetNames, header_cells
from plumbing.workbooks import neutralise
from services.accounts.usage_rules import local
from services.accounts.usage_store import Parent, Usage

SUMMARY_COLUMNS = ("Username", "Name", "Email", "Linked students", "Sign-ins", "First sign-in", "Last sign-in")
PARENT_COLUMNS = ("User", "Email", "Linked learner(s)", "Date", "Time")
SIGN_IN_COLUMNS = ("Username", "Name", "Email", "Linked learner(s)", "Date", "Time")
NO_SIGN_INS = "no sign-ins in this period"
PROGRESS_EVERY = 20_000

Progress = Callable[[int], None]


@dataclass
class UsageTally:
    parents: int = 0
    never: int = 0
    sign_ins: int = 0
    per_parent_sheets: bool = True


@dataclass(frozen=True)
class UsageSource:
    """Where the rows come from (the job hands in its store queries, a test or a benchmark anything alike)."""

    parent_pages: Iterable[Sequence[Parent]]
    usage: Callable[[Sequence[str]], dict[str, Usage]]
    learners: Callable[[Sequence[str]], dict[str, list[str]]]
    sign_ins: Iterable[tuple[str, datetime]]


def _text(value: str) -> str:
    return str(neutralise(value))


def write_usage(workbook: Workbook, source: UsageSource, zone: ZoneInfo, per_parent: bool,
                progress: Progress | None = None) -> UsageTally:
    tally = UsageTally(per_parent_sheets=per_parent)
    summary = workbook.create_sheet("Summary")
    summary.freeze_panes = "A2"
    summary.append(header_cells(summary, SUMMARY_COLUMNS))
    sign_in_sheet = None if per_parent else workbook.create_sheet("Sign-ins")
    # Each parent's cells, neutralised once: (username, name, email, learners).
    known: dict[str, tuple[str, str, str, str]] = {}
    in_order: list[Parent] = []
    for page in source.parent_pages:
        ids = [p.id for p in page]
        usage, learners = source.usage(ids), source.learners(ids)
        for parent in page:
            cells = (_text(parent.username), _text(parent.name), _text(parent.email),
                     _text(", ".join(learners.get(parent.id, ()))))
            known[parent.id] = cells
            used = usage.get(parent.id, Usage())
            summary.append([*cells, used.count, local(used.first, zone) if used.first else None,
                            local(used.last, zone) if used.last else None])
            tally.parents += 1
            tally.never += used.count == 0
        if per_parent:
            in_order.extend(page)
    summary.auto_filter.ref = f"A1:{get_column_letter(len(SUMMARY_COLUMNS))}{tally.parents + 1}"
    stream = iter(source.sign_ins)
    if per_parent:
        _parent_sheets(workbook, in_order, known, stream, zone, tally, progress)
    else:
        assert sign_in_sheet is not None
        _sign_in_sheets(workbook, sign_in_sheet, known, stream, zone, tally, progress)
    return tally


def _parent_sheets(workbook: Workbook, parents: Sequence[Parent], known: dict[str, tuple[str, str, str, str]],
                   stream: Iterator[tuple[str, datetime]], zone: ZoneInfo, tally: UsageTally,
                   progress: Progress | None) -> None:
    """One sheet per parent, in username order; the sign-ins arrive in the same order, so one pass merges them."""
    names = SheetNames()
    pending = next(stream, None)
    for parent in parents:
        user, _name, email, learners = known[parent.id]
        title = f"{parent.name} ({parent.username})" if parent.name else parent.username
        sheet = workbook.create_sheet(names.take(title, "Parent"))
        sheet.freeze_panes = "A2"
        sheet.append(header_cells(sheet, PARENT_COLUMNS))
        rows = 0
        while pending is not None and pending[0] == parent.id:
            moment = local(pending[1], zone)
            sheet.append([user, email, learners, moment.date(), moment.time()])
            rows += 1
            pending = next(stream, None)
        if not rows:
            sheet.append([user, email, learners, NO_SIGN_INS, None])
        # Finished now: its temporary file is closed (hundreds of sheets never hold hundreds of open files).
        sheet.close()
        tally.sign_ins += rows
        if progress is not None:
            progress(tally.sign_ins)


def _sign_in_sheets(workbook: Workbook, first: Any, known: dict[str, tuple[str, str, str, str]],
                    stream: Iterator[tuple[str, datetime]], zone: ZoneInfo, tally: UsageTally,
                    progress: Progress | None) -> None:
    """A row per sign-in (parent by parent, in time order), continued on "Sign-ins (2)"... past Excel's limit."""
    last = get_column_letter(len(SIGN_IN_COLUMNS))

    def start(sheet: Any) -> Any:
        sheet.freeze_panes = "A2"
        sheet.append(header_cells(sheet, SIGN_IN_COLUMNS))
        return sheet

    def end(sheet: Any, count: int) -> None:
        sheet.auto_filter.ref = f"A1:{last}{count + 1}"
        sheet.close()

    sheet, rows, number = start(first), 0, 1
    append = sheet.append
    for account_id, moment in stream:
        if rows == MAX_ROWS - 1:
            end(sheet, rows)
            number += 1
            sheet, rows = start(workbook.create_sheet(f"Sign-ins ({number})")), 0
            append = sheet.append
        wall = local(moment, zone)
        append([*known[account_id], wall.date(), wall.time()])
        rows += 1
        tally.sign_ins += 1
        if progress is not None and tally.sign_ins % PROGRESS_EVERY == 0:
            progress(tally.sign_ins)
    end(sheet, rows)
