"""Single cell values read from a row: trimming, ids, id lists, yes/no flags, user types and years.

Each parser returns the normalised value or raises `BadValue` carrying the status code of what is wrong.
"""

from __future__ import annotations

import re

from plumbing import status_codes

from .neutralise import FORMULA_TRIGGERS, NEUTRALISING_PREFIX

_SCIENTIFIC = re.compile(r"[+-]?\d+(?:[.,]\d*)?[eE][+-]?\d+")
_WHOLE_NUMBER_TEXT = re.compile(r"(\d+)\.0+")
_ID_SEPARATORS = re.compile(r"[;,]")
_YEAR = re.compile(r"(\d{4})(?:\.0+|-\d{2}-\d{2}(?: .*)?)?")
_INVISIBLE = "\u200b\ufeff"

FLAG_VALUES: dict[str, bool | None] = {
    "Y": True, "YES": True, "TRUE": True, "1": True,
    "N": False, "NO": False, "FALSE": False, "0": False,
    "": None,
}
USER_TYPES = {"GUARDIAN": "GUARDIAN", "PARENT": "GUARDIAN", "STUDENT": "STUDENT"}
DEFAULT_USER_TYPE = "GUARDIAN"


class BadValue(Exception):
    """A cell holds a value its column cannot take; `code` is the status code, the message says how to fix it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def clean(text: str) -> str:
    """Trim spaces (non-breaking and zero-width ones too) and undo `neutralise` (a leading apostrophe before = + -
    @ tab or CR that a workbook written by the portal added)."""
    value = text.strip()
    if value and value[0] in "'\u200b\ufeff":
        value = value.strip(_INVISIBLE).strip()
        if len(value) > 1 and value[0] == NEUTRALISING_PREFIX and value[1] in FORMULA_TRIGGERS:
            value = value[1:]
    return value


def parse_id(text: str, column: str) -> str:
    """An id as text: "1234.0" -> "1234", leading zeros of text kept; scientific notation refused."""
    if not text or (text.isdigit() and text.isascii()):
        return text
    whole = _WHOLE_NUMBER_TEXT.fullmatch(text)
    if whole:
        return whole.group(1)
    if _SCIENTIFIC.fullmatch(text):
        raise BadValue(status_codes.E_ID_SCIENTIFIC.code, _scientific_message(text, column))
    return text


def check_not_scientific(text: str, column: str) -> str:
    """The text itself, unless Excel turned it into scientific notation (for usernames, which keep their form)."""
    if text and text[0].isdigit() and _SCIENTIFIC.fullmatch(text):
        raise BadValue(status_codes.E_ID_SCIENTIFIC.code, _scientific_message(text, column))
    return text


def parse_ids(text: str, column: str) -> tuple[str, ...]:
    """Ids separated by ; or , (each normalised as `parse_id`), without repeats, in their order."""
    if not text:
        return ()
    if _SCIENTIFIC.fullmatch(text):
        raise BadValue(status_codes.E_ID_SCIENTIFIC.code, _scientific_message(text, column))
    if ";" not in text and "," not in text:
        return (parse_id(text, column),)
    found: dict[str, None] = {}
    for part in _ID_SEPARATORS.split(text):
        part = part.strip()
        if part:
            found[parse_id(part, column)] = None
    return tuple(found)


def parse_flag(text: str, column: str) -> bool | None:
    """Y/YES/TRUE/1 -> True, N/NO/FALSE/0 -> False, empty -> None (any case)."""
    try:
        return FLAG_VALUES[text.upper()]
    except KeyError:
        raise BadValue(status_codes.E_FLAG_VALUE.code,
                       f"{column} holds '{_short(text)}', not Y or N: write Y or N, or leave it empty.") from None


def parse_user_type(text: str, column: str = "USER_TYPE") -> str:
    """GUARDIAN (also PARENT, and the default when empty) or STUDENT."""
    if not text:
        return DEFAULT_USER_TYPE
    try:
        return USER_TYPES[text.upper()]
    except KeyError:
        raise BadValue(status_codes.E_USER_TYPE.code,
                       f"{column} holds '{_short(text)}': write GUARDIAN or STUDENT (empty means GUARDIAN).") from None


def parse_year(text: str, column: str = "GRAD_YEAR") -> int | None:
    """A four-digit year (also read from "2031.0" or a date in that year); empty -> None."""
    if not text:
        return None
    match = _YEAR.fullmatch(text)
    if match and 1900 <= int(match.group(1)) <= 2200:
        return int(match.group(1))
    raise BadValue(status_codes.E_YEAR_INVALID.code,
                   f"{column} holds '{_short(text)}', not a year: write a four-digit year such as 2031, or leave it "
                   "empty.")


def _scientific_message(text: str, column: str) -> str:
    return (f"{column} holds '{_short(text)}': Excel turned this id into scientific notation and its last digits "
            "are lost; format the column as Text, type or paste the full id again, and send the file again.")


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
