"""Reading a `Table` as its kind: typed rows, the within-file checks that need no database, and warnings.

Required columns, ids, flags and types are checked per row; duplicates across rows (the same LOGONID on several
rows is one account when the rows agree, a conflict when they do not; one email for two usernames; repeated roster
pairs) across the file; template rows that want no account are skipped. Every row keeps its Excel row number and
every `Problem` names its column and letter. Username, password and email syntax are the accounts service's rules
and are not checked here. The row types live in `records`, one module per kind builds them.
"""

from __future__ import annotations

from dataclasses import dataclass

from plumbing import status_codes as sc
from plumbing.gcpause import paused_gc

from .errors import DuplicateColumn, MissingColumns, UnknownKind
from .formats import FileFormat
from .kinds import ColumnRef, HeaderMatch, Kind, kinds_help, match_header
from .link_rows import read_link_rows
from .parent_rows import merge_parent_accounts, read_parent_rows
from .problems import Problem
from .records import AnyRow, ParentAccount, ParentAccountRow, RosterRow, StaffRow, StudentLinkRow
from .roster_rows import read_roster_rows
from .row_reader import RowReader
from .staff_rows import read_staff_rows
from .table import Table

__all__ = ["AnyRow", "ParentAccount", "ParentAccountRow", "ParsedFile", "RosterRow", "StaffRow", "StudentLinkRow",
           "merge_parent_accounts", "parse_rows"]


_BUILDERS = {Kind.PARENT_ACCOUNTS: read_parent_rows, Kind.STAFF: read_staff_rows, Kind.STUDENT_LINKS: read_link_rows,
             Kind.ROSTER: read_roster_rows}


@dataclass(frozen=True)
class ParsedFile:
    """A file read and checked: its kind, the table as read, where each column is, the valid rows (in row order,
    no E_ problem; warnings allowed), every row problem (in row order), and warnings about the file as a whole.

    For parent-accounts files `accounts` holds the merged accounts (one per LOGONID) the valid rows describe.
    """

    kind: Kind
    table: Table
    columns: dict[str, ColumnRef]
    rows: tuple[AnyRow, ...]
    problems: tuple[Problem, ...]
    file_warnings: tuple[Problem, ...]
    notes: tuple[str, ...]
    accounts: tuple[ParentAccount, ...]
    data_rows: int

    def letter(self, column: str) -> str:
        """The spreadsheet letter of a canonical column ("" when the file has no such column)."""
        ref = self.columns.get(column)
        return ref.letter if ref else ""

    def error_rows(self) -> set[int]:
        """Row numbers with at least one E_ problem."""
        return {p.row_number for p in self.problems if p.is_error}


def parse_rows(table: Table) -> ParsedFile:
    """Read a `Table` as its kind: typed rows, row problems, file warnings. Refuses a header that lacks columns
    of its kind or names one column twice."""
    with paused_gc():
        return _parse_rows(table)


def _parse_rows(table: Table) -> ParsedFile:
    match = match_header(table.header)
    if match is None:
        raise UnknownKind("The header row matches none of the kinds of file the portal reads: rename the headers to "
                          "one kind's columns below, or start from the upload template.\n" + kinds_help())
    _refuse_bad_header(match)
    reader = RowReader(table, match)
    rows, problems, accounts = _BUILDERS[match.kind](reader)
    kind = Kind.ONEROSTER if table.file_format is FileFormat.ONEROSTER else match.kind
    problems.sort(key=lambda p: p.row_number)
    warnings = tuple(
        Problem(table.header_row_number, sc.W_COLUMN_IGNORED.code, ref.header,
                f"Column {ref.letter} '{ref.header}' is not read in a {match.spec.title} file and was ignored.",
                ref.letter)
        for ref in match.ignored)
    notes = tuple(f"Column {ref.letter} '{ref.header}' was read as {ref.name}." for ref in match.synonyms)
    return ParsedFile(kind, table, dict(match.columns), tuple(rows), tuple(problems), warnings, notes,
                      tuple(accounts), reader.data_rows)


def _refuse_bad_header(match: HeaderMatch) -> None:
    if match.missing:
        raise MissingColumns(
            f"This looks like a {match.spec.title} file but lacks the column"
            f"{'s' if len(match.missing) > 1 else ''} {', '.join(match.missing)}: add "
            f"{'them' if len(match.missing) > 1 else 'it'} to the header row (cells may stay empty where allowed) "
            f"and send the file again. The columns are: {match.spec.describe()}.")
    if match.duplicates:
        first, second = match.duplicates[0]
        raise DuplicateColumn(
            f"Columns {first.letter} '{first.header}' and {second.letter} '{second.header}' both mean {first.name}: "
            "delete or rename one of them, and send the file again.")
