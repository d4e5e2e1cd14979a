"""The status-code catalogue: one stable code per problem a row or a file can have, what it means, and the fix.

Codes are part of the public interface (staff look them up with `/portal codes`, and they are written into
annotated workbooks): add new ones freely, never rename or reuse one. Codes starting with W_ are warnings (the
row still goes ahead); S_ marks rows skipped on purpose; E_ are errors (the row is skipped until fixed).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StatusCode:
    code: str
    meaning: str
    fix: str

    @property
    def warning(self) -> bool:
        return not self.code.startswith("E_")


_CATALOGUE: dict[str, StatusCode] = {}


def define(code: str, meaning: str, fix: str) -> StatusCode:
    if code in _CATALOGUE:
        raise ValueError(f"status code {code} defined twice")
    entry = StatusCode(code, meaning, fix)
    _CATALOGUE[code] = entry
    return entry


def lookup(code: str) -> StatusCode:
    return _CATALOGUE[code]


def catalogue() -> list[StatusCode]:
    return sorted(_CATALOGUE.values(), key=lambda c: c.code)


# Row rules checked by the accounts service when it plans a row --------------------------------------------------
E_REQUIRED = define("E_REQUIRED", "A required column is empty.", "Fill in the column named in the message.")
E_USERNAME_SHORT = define(
    "E_USERNAME_SHORT", "The username (LOGONID) has fewer than 6 characters.",
    "Use at least 6 characters; usernames are not case-sensitive.")
E_USERNAME_CHARS = define(
    "E_USERNAME_CHARS", "The username contains spaces inside it, control characters or is too long.",
    "Use letters, digits and . _ - @ only, at most 150 characters.")
E_USERNAME_TAKEN = define(
    "E_USERNAME_TAKEN", "The username already belongs to another account (usernames are unique across the "
    "whole district, whatever the case, for parent, student and staff accounts alike).",
    "Choose another username, or correct the row if it is meant to be that account.")
E_PASSWORD_RULES = define(
    "E_PASSWORD_RULES", "The password breaks the rules: at least 8 characters with an upper-case letter, a "
    "lower-case letter and a digit.", "Type a stronger password, or leave PASSWORD empty to send an invitation.")
E_PASSWORD_COMMON = define(
    "E_PASSWORD_COMMON", "The password is one of the most common passwords, or is the username itself.",
    "Choose a password nobody would guess, or leave PASSWORD empty to send an invitation.")
E_EMAIL_INVALID = define(
    "E_EMAIL_INVALID", "The email address is not valid.", "Correct the address (name@example.org).")
E_EMAIL_IN_USE = define(
    "E_EMAIL_IN_USE", "The email address already belongs to an account with another username.",
    "Use that account's username, or correct the email.")
E_USER_TYPE = define(
    "E_USER_TYPE", "USER_TYPE is not one the portal knows.", "Use GUARDIAN or STUDENT (empty means GUARDIAN).")
E_TYPE_MISMATCH = define(
    "E_TYPE_MISMATCH", "The username exists with another account type (for example a staff account).",
    "Choose another username: one person cannot hold the same username as parent and staff.")
E_FLAG_VALUE = define(
    "E_FLAG_VALUE", "A yes/no column holds something other than Y or N.", "Write Y or N, or leave it empty.")
E_STUDENT_UNKNOWN = define(
    "E_STUDENT_UNKNOWN", "A student id is not in the roster.",
    "Check the id against the roster, or import the roster first.")
E_FIELD_TOO_LONG = define(
    "E_FIELD_TOO_LONG", "A value is longer than the portal stores.", "Shorten it (names 100, email 254 characters).")
E_DUPLICATE_CONFLICT = define(
    "E_DUPLICATE_CONFLICT", "The same username appears on several rows whose name, email or type disagree.",
    "Make the rows agree (siblings share one parent row's details), or use different usernames.")
E_DUPLICATE_EMAIL = define(
    "E_DUPLICATE_EMAIL", "The same email appears on several rows with different usernames.",
    "Give one person one username, or correct the email.")
W_UNCHANGED = define(
    "W_UNCHANGED", "The row changes nothing: the account already holds these details and links.",
    "Nothing to do.")
S_NO_ACCOUNT_WANTED = define(
    "S_NO_ACCOUNT_WANTED", "All parent columns of this template row are empty: no account is wanted.",
    "Nothing to do, or fill the row in to create an account.")
