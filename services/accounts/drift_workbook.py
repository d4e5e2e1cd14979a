"""The contact-drift workbook `/portal drift` posts: one row per field that differs, what the account holds and what
applying sets, and why applying would wait. openpyxl write-only; text neutralised."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from zoneinfo import ZoneInfo

from openpyxl import Workbook

from plumbing.sheets import header_cells, saved
from plumbing.workbooks import neutralise
from services.accounts.drift_rules import Drift

COLUMNS = ("Username", "Contact id", "Field", "The account holds", "The contact holds (Apply sets)",
           "Cannot apply because", "Contact changed")


def _local(value: datetime | None, zone: ZoneInfo) -> datetime | None:
    return value.astimezone(zone).replace(tzinfo=None) if value is not None else None


def drift_workbook(drifts: Iterable[Drift], zone: ZoneInfo) -> tuple[bytes, int]:
    """The workbook and how many accounts it lists."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Contact drift")
    sheet.freeze_panes = "A2"
    sheet.append(header_cells(sheet, COLUMNS))
    accounts = 0
    for drift in drifts:
        accounts += 1
        pair = drift.pair
        changed = _local(pair.contact_updated_at, zone)
        for field in drift.fields:
            sheet.append([neutralise(pair.username), neutralise(pair.contact_id), field.field.replace("_", " "),
                          neutralise(field.account_value), neutralise(field.contact_value), neutralise(drift.blocked),
                          changed])
    return saved(workbook), accounts
