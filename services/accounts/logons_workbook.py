"""The logons workbook (the Parent Logons seed's list of "all existing credentials"): one row per parent logon with
its students and their permissions, two-factor, the state of its invitation, when it was created and last used.
Rows stream into openpyxl's write-only mode (constant memory whatever the district's size); text is neutralised
against formulas; dates are in the school's time zone."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from zoneinfo import ZoneInfo

from openpyxl import Workbook

from plumbing.sheets import header_cells, saved
from plumbing.workbooks import neutralise
from services.accounts.logons_store import LogonRow
from services.accounts.policy_rules import decode_permissions

COLUMNS = ("Username", "First name", "Last name", "Email", "Status", "Students and what the parent may see",
           "Two-factor", "Invitation", "Created", "Last sign-in")
WIDTHS = (28, 16, 18, 32, 10, 90, 12, 30, 17, 17)
TWO_FACTOR_WORDS = {"off": "off", "required": "required (enrols at next sign-in)", "enrolled": "on"}


def _local(value: datetime | None, zone: ZoneInfo) -> datetime | None:
    return value.astimezone(zone).replace(tzinfo=None) if value is not None else None


def invitation_word(row: LogonRow, now: datetime, zone: ZoneInfo) -> str:
    """Where the account's invitation stands, in words."""
    if row.last_sign_in_at is not None:
        return "accepted (signed in)"
    if row.has_password:
        return "accepted (password set)"
    invitation = row.invitation
    if invitation is None:
        return "not sent"
    if invitation.used_at is not None:
        return "accepted"
    if invitation.revoked_at is not None:
        return "withdrawn"
    day = invitation.expires_at.astimezone(zone).strftime("%Y-%m-%d")
    return f"expired {day}" if invitation.expires_at <= now else f"sent, valid until {day}"


def students_text(row: LogonRow) -> str:
    """"N1 Sam Smith (North High): grades, attendance; N2 ...": each linked student with its permissions."""
    parts = []
    for student in row.students:
        where = f" ({student.school})" if student.school else ""
        parts.append(f"{student.id} {student.name}{where}: "
                     f"{', '.join(decode_permissions(student.permissions)) or 'nothing'}")
    return "; ".join(parts)


def logons_workbook(chunks: Iterable[list[LogonRow]], now: datetime, zone: ZoneInfo) -> tuple[bytes, int]:
    """The workbook and how many logons it lists."""
    from openpyxl.utils import get_column_letter

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Parent logons")
    for index, width in enumerate(WIDTHS, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    sheet.freeze_panes = "A2"
    sheet.append(header_cells(sheet, COLUMNS))
    count = 0
    for chunk in chunks:
        for row in chunk:
            count += 1
            sheet.append([neutralise(row.username), neutralise(row.first_name), neutralise(row.last_name),
                          neutralise(row.email), row.status, neutralise(students_text(row)),
                          TWO_FACTOR_WORDS.get(row.two_factor, row.two_factor), invitation_word(row, now, zone),
                          _local(row.created_at, zone), _local(row.last_sign_in_at, zone)])
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(COLUMNS))}{count + 1}"
    return saved(workbook), count
