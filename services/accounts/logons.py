"""`/portal logons`: every parent logon of a selection as a workbook, answered at once (streamed from the database
into a write-only workbook, then to the caller in chunks)."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

from plumbing.db import Database
from services.accounts.domain import AccountFilter, Clock
from services.accounts.logons_store import logon_chunks
from services.accounts.logons_workbook import logons_workbook
from services.accounts.store import AccountStore

_UNSAFE = re.compile(r"[^A-Za-z0-9]+")


def _described(where: AccountFilter) -> str:
    for label, value in (("school", where.school), ("group", where.group), ("grad", where.grad_year or ""),
                         ("lastname", where.last_name_prefix)):
        if value:
            return f"{label}-{_UNSAFE.sub('-', str(value)).strip('-').lower()}"
    return "all"


class LogonsExport:
    def __init__(self, db: Database, store: AccountStore, zone: ZoneInfo, clock: Clock) -> None:
        self.db = db
        self.store = store
        self.zone = zone
        self.clock = clock

    def _export(self, where: AccountFilter) -> tuple[str, bytes, int]:
        now = self.clock()
        with self.db.read() as session:
            data, count = logons_workbook(logon_chunks(session, self.store, where), now, self.zone)
        filename = f"parent-logons-{_described(where)}-{now.astimezone(self.zone):%Y-%m-%d}.xlsx"
        return filename, data, count

    async def export(self, where: AccountFilter) -> tuple[str, bytes, int]:
        """The workbook's file name, its bytes and how many logons it lists."""
        return await self.db.run(self._export, where)
