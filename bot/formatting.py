"""Small formatting rules shared by commands: dates in the school's time zone, enum names in plain words."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from google.protobuf.timestamp_pb2 import Timestamp


def when(stamp: Timestamp, zone: ZoneInfo, never: str = "never") -> str:
    if not stamp.seconds and not stamp.nanos:
        return never
    return stamp.ToDatetime().replace(tzinfo=ZoneInfo("UTC")).astimezone(zone).strftime("%Y-%m-%d %H:%M")


def enum_word(name: str, prefix: str) -> str:
    """ACCOUNT_STATUS_ACTIVE -> "active"."""
    word = name.removeprefix(prefix).lower().replace("_", " ")
    return "" if word == "unspecified" else word
