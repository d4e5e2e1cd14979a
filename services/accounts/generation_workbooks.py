"""The workbooks of generation: the plan (every student and contact with what will happen), the report of a run
(every account created or updated, every skip with its reason, what changed since the plan), and the lists of the
roster dashboard. openpyxl write-only mode; every text passes through `neutralise`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from openpyxl import Workbook

from plumbing import status_codes as sc
from plumbing.sheets import SheetNames, header_cells, saved
from plumbing.workbooks import neutralise
from services.accounts.roster_dashboard import DUPLICATE_HEADERS, RosterList

LINE_HEADERS = ("Student id", "Student", "Contact id", "Contact", "Relationship", "Email", "Action", "Username",
                "Code", "Note")
ACTION_WORDS = {"create": "will be created", "link": "exists, will be linked", "complete": "already complete",
                "skip": "skipped"}
DONE_WORDS = {"create": "created", "link": "linked", "complete": "already complete", "skip": "skipped"}
COUNT_LABELS = (
    ("students", "Students selected"), ("lines", "Student-contact lines"),
    ("accounts_to_create", "Accounts to create"), ("accounts_gaining_students", "Existing accounts gaining a student"),
    ("links_to_add", "Student links to add"), ("complete", "Lines already complete"),
    ("skipped_lines", "Lines skipped"), ("skipped_contacts", "Contacts skipped"),
    ("students_without_account", "Students with no contact getting an account"),
    ("possible_duplicates", "Possible duplicate contacts"),
)
RUN_LABELS = (
    ("created", "Accounts created"), ("linked_accounts", "Existing accounts that gained students"),
    ("links", "Student links added"), ("invitations", "Invitations queued"),
    ("changed_since_plan", "Lines that changed since the plan"), ("conflicts", "Not done: changed during the run"),
)


def _sheet(book: Workbook, names: SheetNames, title: str, headers: Sequence[str],
           rows: Iterable[Sequence[Any]], widths: Sequence[int] = ()) -> None:
    from openpyxl.utils import get_column_letter

    sheet = book.create_sheet(names.take(title))
    for index, width in enumerate(widths or [18] * len(headers), start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    sheet.freeze_panes = "A2"
    sheet.append(header_cells(sheet, headers))
    for row in rows:
        sheet.append([neutralise(value) for value in row])


def _summary(book: Workbook, names: SheetNames, title: str, sentence: str, counts: Sequence[tuple[str, int]],
             reasons: Mapping[str, int], extra: Sequence[str] = ()) -> None:
    rows: list[Sequence[Any]] = [(sentence, ""), *((line, "") for line in extra), ("", "")]
    rows += [(label, value) for label, value in counts]
    if reasons:
        rows += [("", ""), ("Skipped, by reason", "")]
        rows += [(f"{code}: {sc.lookup(code).meaning}", number) for code, number in reasons.items()]
    _sheet(book, names, "Summary", (title, ""), rows, (90, 14))


def plan_workbook(title: str, sentence: str, counts: Mapping[str, Any], lines: Iterable[Sequence[Any]],
                  duplicates: Iterable[Sequence[Any]]) -> bytes:
    """Summary, every line of the plan, and the possible duplicates."""
    book, names = Workbook(write_only=True), SheetNames()
    _summary(book, names, title, sentence, [(label, counts.get(key, 0)) for key, label in COUNT_LABELS],
             counts.get("reasons", {}))
    _sheet(book, names, "Plan", LINE_HEADERS,
           ((*row[:6], ACTION_WORDS.get(row[6], row[6]), *row[7:]) for row in lines),
           (12, 24, 12, 24, 14, 30, 20, 30, 24, 60))
    _sheet(book, names, "Possible duplicates", DUPLICATE_HEADERS, duplicates, (24, 40, 40, 24, 40, 20))
    return saved(book)


ACCOUNT_HEADERS = ("Username", "First name", "Last name", "Email", "Done", "Students added", "Invitation")
CHANGE_HEADERS = ("Student id", "Contact id", "Planned", "Now", "Applied", "What happened")


def report_workbook(title: str, sentence: str, tally: Mapping[str, Any], accounts: Iterable[Sequence[Any]],
                    lines: Sequence[Sequence[Any]], changes: Iterable[Sequence[Any]],
                    conflicts: Iterable[Sequence[Any]], duplicates: Iterable[Sequence[Any]]) -> bytes:
    """The success/failure report of a run: accounts created or updated, skips with reasons, what changed."""
    book, names = Workbook(write_only=True), SheetNames()
    reasons: dict[str, int] = {}
    for row in lines:
        if row[6] == "skip":
            reasons[row[8]] = reasons.get(row[8], 0) + 1
    _summary(book, names, title, sentence, [(label, tally.get(key, 0)) for key, label in RUN_LABELS],
             dict(sorted(reasons.items())))
    _sheet(book, names, "Accounts", ACCOUNT_HEADERS, accounts, (30, 16, 20, 30, 26, 40, 12))
    _sheet(book, names, "Skipped", LINE_HEADERS,
           ((*row[:6], DONE_WORDS["skip"], *row[7:]) for row in lines if row[6] == "skip"),
           (12, 24, 12, 24, 14, 30, 12, 20, 24, 60))
    _sheet(book, names, "Changed since plan", CHANGE_HEADERS, changes, (12, 12, 14, 14, 10, 80))
    _sheet(book, names, "Not done", ("Username", "Why"), conflicts, (30, 80))
    _sheet(book, names, "Possible duplicates", DUPLICATE_HEADERS, duplicates, (24, 40, 40, 24, 40, 20))
    return saved(book)


def list_workbook(found: RosterList) -> bytes:
    book = Workbook(write_only=True)
    _sheet(book, SheetNames(), found.title, found.headers, found.rows, [24] * len(found.headers))
    return saved(book)
