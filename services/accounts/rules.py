"""The rules every username, password, email, name and flag must follow, with the sentence staff see when one
breaks. Plain functions, no I/O (apart from reading the common-passwords list once at import)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from email_validator import EmailNotValidError, validate_email

from plumbing import status_codes as sc
from services.accounts.domain import AccountType, Problem

USERNAME_MIN = 6
USERNAME_MAX = 150
PASSWORD_MIN = 8
PASSWORD_MAX = 256
NAME_MAX = 100
EMAIL_MAX = 254
TEXT_MAX = 200
ID_MAX = 64

_USERNAME_CHARS = re.compile(r"[A-Za-z0-9._@-]+")
# Control and invisible formatting characters (tabs, line breaks, zero-width spaces, direction marks, BOM).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]")
# A conservative shape of the everyday address; anything else goes to email-validator for its verdict and reason.
_PLAIN_EMAIL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{1,63}"
)
_SPECIAL_USE_DOMAINS = frozenset({"arpa", "invalid", "local", "localhost", "onion", "test"})
_TRUE = frozenset({"y", "yes", "true", "1"})
_FALSE = frozenset({"n", "no", "false", "0"})
_TYPES = {
    "guardian": AccountType.GUARDIAN, "parent": AccountType.GUARDIAN,
    "student": AccountType.STUDENT, "staff": AccountType.STAFF,
}


def _load_common_passwords() -> frozenset[str]:
    path = Path(__file__).with_name("common_passwords.txt")
    lines = (line.strip().lower() for line in path.read_text(encoding="utf-8").splitlines())
    return frozenset(line for line in lines if line and not line.startswith("#"))


COMMON_PASSWORDS = _load_common_passwords()


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def username_key(username: str) -> str:
    """The form usernames are compared in (and unique in, enforced by the database): trimmed, lower-cased."""
    return username.strip().lower()


def email_key(email: str) -> str:
    return email.strip().lower()


def has_control_chars(value: str) -> bool:
    return _CONTROL.search(value) is not None


def check_username(raw: str, field: str = "username") -> tuple[str, list[Problem]]:
    """The trimmed username and what is wrong with it (at most one problem)."""
    username = raw.strip()
    if USERNAME_MIN <= len(username) <= USERNAME_MAX and _USERNAME_CHARS.fullmatch(username):
        return username, []
    if not username:
        return "", [Problem(sc.E_REQUIRED.code, field,
                            "The username is missing: type a username of at least 6 characters.")]
    if has_control_chars(username):
        return username, [Problem(sc.E_USERNAME_CHARS.code, field,
                                  "The username contains a control character (such as a tab or a line break): "
                                  "retype it using letters a-z, digits and . _ - @ only.")]
    if any(ch.isspace() for ch in username):
        return username, [Problem(sc.E_USERNAME_CHARS.code, field,
                                  f"The username '{username}' contains a space: usernames cannot contain spaces "
                                  "(use . _ or - instead).")]
    if not _USERNAME_CHARS.fullmatch(username):
        bad = "".join(sorted({ch for ch in username if not _USERNAME_CHARS.fullmatch(ch)}))
        return username, [Problem(sc.E_USERNAME_CHARS.code, field,
                                  f"The username '{username}' contains {bad!r}: use letters a-z, digits and "
                                  ". _ - @ only.")]
    if len(username) > USERNAME_MAX:
        return username, [Problem(sc.E_USERNAME_CHARS.code, field,
                                  f"The username has {len(username)} characters: use at most {USERNAME_MAX}.")]
    if len(username) < USERNAME_MIN:
        return username, [Problem(sc.E_USERNAME_SHORT.code, field,
                                  f"The username '{username}' has only {_plural(len(username), 'character')}: "
                                  f"use at least {USERNAME_MIN} (usernames are not case-sensitive).")]
    return username, []


def check_password(password: str, username: str, field: str = "password",
                   min_length: int = PASSWORD_MIN) -> list[Problem]:
    """What is wrong with a password (empty: nothing to check; the caller decides whether one is required).
    `min_length` is the policy's minimum (never below the rules' 8)."""
    if not password:
        return []
    if len(password) > PASSWORD_MAX:
        return [Problem(sc.E_PASSWORD_RULES.code, field,
                        f"The password is {len(password)} characters long: use at most {PASSWORD_MAX}.")]
    minimum = max(PASSWORD_MIN, min_length)
    missing = []
    if len(password) < minimum:
        missing.append(f"is too short ({_plural(len(password), 'character')})")
    if not any(ch.isupper() for ch in password):
        missing.append("has no upper-case letter")
    if not any(ch.islower() for ch in password):
        missing.append("has no lower-case letter")
    if not any(ch.isdigit() for ch in password):
        missing.append("has no digit")
    if missing:
        said = missing[0] if len(missing) == 1 else ", ".join(missing[:-1]) + " and " + missing[-1]
        return [Problem(sc.E_PASSWORD_RULES.code, field,
                        f"The password needs at least {minimum} characters with an upper-case letter, a "
                        f"lower-case letter and a digit; this one {said}.")]
    if username and password.lower() == username.strip().lower():
        return [Problem(sc.E_PASSWORD_COMMON.code, field,
                        "The password is the same as the username: choose a different one.")]
    if password.lower() in COMMON_PASSWORDS:
        return [Problem(sc.E_PASSWORD_COMMON.code, field,
                        "The password is one of the most common passwords, the first ones attackers try: "
                        "choose one nobody would guess.")]
    return []


def _plain_email(email: str) -> bool:
    """True for an everyday ASCII address email-validator would accept (checked against it in the unit tests)."""
    if not _PLAIN_EMAIL.fullmatch(email):
        return False
    local, _, domain = email.rpartition("@")
    if len(local) > 64 or "--" in domain:
        return False
    # Every special-use name is a single label, so looking at the last label is enough.
    return domain.rpartition(".")[2].lower() not in _SPECIAL_USE_DOMAINS


@lru_cache(maxsize=4096)
def _email_problem(email: str) -> str:
    if _plain_email(email):
        return ""
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError as exc:
        return str(exc)
    return ""


def email_is_valid(email: str) -> bool:
    """Whether a trimmed, non-empty address passes `check_email`, quickly (the everyday shape needs no validator):
    for checking a whole roster's emails."""
    return len(email) <= EMAIL_MAX and (_plain_email(email) or not _email_problem(email))


def check_email(raw: str, field: str = "email") -> tuple[str, list[Problem]]:
    """The trimmed email (stored as given) and what is wrong with it; empty is allowed."""
    email = raw.strip()
    if not email:
        return "", []
    if len(email) > EMAIL_MAX:
        return email, [Problem(sc.E_FIELD_TOO_LONG.code, field,
                               f"The email address has {len(email)} characters: use at most {EMAIL_MAX}.")]
    reason = _email_problem(email)
    if reason:
        return email, [Problem(sc.E_EMAIL_INVALID.code, field,
                               f"The email address '{email}' is not valid: {reason} Correct it "
                               "(name@example.org).")]
    return email, []


def check_name(raw: str, field: str, label: str, required: bool = False) -> tuple[str, list[Problem]]:
    """A first or last name: trimmed, required when asked, no control characters, at most 100 characters."""
    name = raw.strip()
    if not name:
        if required:
            return "", [Problem(sc.E_REQUIRED.code, field,
                                f"The {label} is missing: a new account needs the holder's {label}.")]
        return "", []
    if has_control_chars(name):
        return name, [Problem(sc.E_NAME_CHARS.code, field,
                              f"The {label} contains a control character (such as a tab or a line break): "
                              "retype it.")]
    if len(name) > NAME_MAX:
        return name, [Problem(sc.E_FIELD_TOO_LONG.code, field,
                              f"The {label} has {len(name)} characters: shorten it to at most {NAME_MAX}.")]
    return name, []


def check_text(raw: str, field: str, label: str, limit: int = TEXT_MAX) -> tuple[str, list[Problem]]:
    """A short free text (school, role, contact id): trimmed, no control characters, bounded length."""
    if not raw:
        return "", []
    text = raw.strip()
    if has_control_chars(text):
        return text, [Problem(sc.E_NAME_CHARS.code, field,
                              f"The {label} contains a control character (such as a tab or a line break): "
                              "retype it.")]
    if len(text) > limit:
        return text, [Problem(sc.E_FIELD_TOO_LONG.code, field,
                              f"The {label} has {len(text)} characters: shorten it to at most {limit}.")]
    return text, []


def parse_flag(raw: str, field: str, label: str) -> tuple[bool | None, list[Problem]]:
    """Y/N columns: None when empty (keep or default)."""
    if not raw:
        return None, []
    value = raw.strip().lower()
    if not value:
        return None, []
    if value in _TRUE:
        return True, []
    if value in _FALSE:
        return False, []
    return None, [Problem(sc.E_FLAG_VALUE.code, field,
                          f"{label} holds '{raw.strip()}': write Y or N, or leave it empty.")]


def parse_type(raw: str, field: str = "type") -> tuple[AccountType | None, list[Problem]]:
    """An account type by name (GUARDIAN, STUDENT, STAFF; PARENT means GUARDIAN); None when empty."""
    if not raw:
        return None, []
    value = raw.strip().lower()
    if not value:
        return None, []
    found = _TYPES.get(value)
    if found is None:
        return None, [Problem(sc.E_USER_TYPE.code, field,
                              f"'{raw.strip()}' is not an account type: use GUARDIAN, STUDENT or STAFF (empty "
                              "means GUARDIAN).")]
    return found, []


def clean_ids(ids: Iterable[str]) -> tuple[str, ...]:
    """Trimmed, non-empty ids in their first order, each once."""
    seen: dict[str, None] = {}
    for raw in ids:
        value = raw.strip()
        if value:
            seen.setdefault(value, None)
    return tuple(seen)


def unknown_students_problem(unknown: Iterable[str], field: str = "student_ids") -> Problem:
    listed = sorted(unknown)
    shown = ", ".join(listed[:10]) + (f" and {len(listed) - 10} more" if len(listed) > 10 else "")
    noun = "Student id" if len(listed) == 1 else "Student ids"
    verb = "is" if len(listed) == 1 else "are"
    return Problem(sc.E_STUDENT_UNKNOWN.code, field,
                   f"{noun} {shown} {verb} not in the roster: check the id, or import the roster first.")
