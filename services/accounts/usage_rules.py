"""The rules of a usage report: the date range (inclusive, in the school's time zone) and its bounds in UTC, and
sign-in times as the school reads them. Pure: no I/O."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from plumbing.errors import FieldViolation, InvalidArgument

MAX_DAYS = 3 * 366


def parse_day(text: str, field: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidArgument(f"'{text.strip()}' is not a date: write it as YYYY-MM-DD, e.g. 2026-09-01.",
                              [FieldViolation(field, "expected YYYY-MM-DD")]) from None


def check_range(start: date, end: date) -> None:
    if end < start:
        raise InvalidArgument(f"The report ends ({end}) before it starts ({start}): swap the dates.",
                              [FieldViolation("end_date", "before start_date")])
    if (end - start).days >= MAX_DAYS:
        raise InvalidArgument(f"A usage report covers at most {MAX_DAYS} days: choose a shorter range.",
                              [FieldViolation("end_date", f"at most {MAX_DAYS} days after start_date")])


def utc_bounds(start: date, end: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """[from, to) in UTC: midnight at the start of `start` to midnight after `end`, in the school's time zone."""
    low = datetime.combine(start, time(0), tzinfo=zone).astimezone(UTC)
    high = datetime.combine(end + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return low, high


def local(moment: datetime, zone: ZoneInfo) -> datetime:
    """A stored (UTC) time as the school's wall-clock time, without a zone (what a spreadsheet cell holds), to the
    second."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone).replace(tzinfo=None, microsecond=0)
