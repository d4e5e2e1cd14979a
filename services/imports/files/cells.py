"""Cell values rendered as text the way staff see them, so ids, years and flags can be read uniformly."""

from __future__ import annotations

import datetime

# Excel keeps 15 significant digits: an integer at or beyond this may already have lost digits.
EXACT_LIMIT = 1e15


def cell_text(value: object) -> str:
    """A cell as text: 1234.0 -> "1234", True -> "TRUE", dates as ISO 8601, an inexact huge number in scientific
    notation ("1.23456789012346e+15", which id columns then refuse), text unchanged."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[return-value]
    if kind is float:
        number: float = value  # type: ignore[assignment]
        if number.is_integer():
            return str(int(number)) if abs(number) < EXACT_LIMIT else f"{number:.15g}"
        return repr(number)
    if kind is bool:
        return "TRUE" if value else "FALSE"
    if kind is int:
        return str(value)
    if kind is datetime.datetime:
        moment: datetime.datetime = value  # type: ignore[assignment]
        if moment.time() == datetime.time(0):
            return moment.date().isoformat()
        return moment.isoformat(sep=" ")
    if kind in (datetime.date, datetime.time):
        return value.isoformat()  # type: ignore[attr-defined]
    if value is None:
        return ""
    return str(value)
