"""Contact drift: where a parent account no longer matches the roster contact it came from. Plain functions and
dataclasses, no I/O.

An account drifts when its contact's email or names changed in the roster and the account still holds the old
ones (or staff changed the account and the roster still says otherwise). Under the email username scheme, a
username that is an email address other than the account's email drifts too: applying gives the account the new
email as its username (only when that is a valid username nobody else holds). A contact whose email was removed
leaves the account's email alone: an account is never emptied by drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.accounts import rules

EMAIL, FIRST_NAME, LAST_NAME, USERNAME = "email", "first_name", "last_name", "username"
FIELDS = (EMAIL, FIRST_NAME, LAST_NAME, USERNAME)
SCHEME_EMAIL = "email"
# Contact columns of a roster file, by drifting field (the trial run's warnings name them).
ROSTER_COLUMNS = {EMAIL: "CONTACT_EMAIL", FIRST_NAME: "CONTACT_FIRST_NAME", LAST_NAME: "CONTACT_LAST_NAME",
                  USERNAME: "CONTACT_EMAIL"}


@dataclass(frozen=True)
class Pair:
    """An account and the roster contact it came from, as they stand."""

    account_id: str
    username: str
    first_name: str
    last_name: str
    email: str
    contact_id: str
    contact_first_name: str
    contact_last_name: str
    contact_email: str
    contact_updated_at: datetime | None = None
    account_updated_at: datetime | None = None


@dataclass(frozen=True)
class DriftField:
    field: str
    account_value: str
    # What applying sets.
    contact_value: str


@dataclass(frozen=True)
class Drift:
    pair: Pair
    fields: tuple[DriftField, ...]
    # Why applying cannot work as things stand ("" when it can).
    blocked: str = ""

    def new(self, name: str) -> str | None:
        return next((f.contact_value for f in self.fields if f.field == name), None)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.field for f in self.fields)


def drift_of(pair: Pair, scheme: str) -> tuple[DriftField, ...]:
    """The fields of the account that differ from its contact (empty: it matches)."""
    fields: list[DriftField] = []
    contact_email = pair.contact_email.strip()
    if contact_email and rules.email_key(contact_email) != rules.email_key(pair.email):
        fields.append(DriftField(EMAIL, pair.email, contact_email))
    for name, mine, theirs in ((FIRST_NAME, pair.first_name, pair.contact_first_name),
                               (LAST_NAME, pair.last_name, pair.contact_last_name)):
        if theirs.strip() and theirs.strip() != mine.strip():
            fields.append(DriftField(name, mine, theirs.strip()))
    email = contact_email or pair.email.strip()
    if scheme == SCHEME_EMAIL and "@" in pair.username and email and \
            rules.username_key(pair.username) != rules.email_key(email):
        username, problems = rules.check_username(email)
        if not problems:
            fields.append(DriftField(USERNAME, pair.username, username))
    return tuple(fields)


def blocked_reason(drift: Drift, email_owner: str | None, username_holder: str | None) -> str:
    """Why applying must wait: the new email or username belongs to another account."""
    reasons = []
    if drift.new(EMAIL) is not None and email_owner:
        reasons.append(f"the email {drift.new(EMAIL)} belongs to the account {email_owner}")
    if drift.new(USERNAME) is not None and username_holder:
        reasons.append(f"the username {drift.new(USERNAME)} is taken by the account {username_holder}")
    return " and ".join(reasons)


def account_values(drift: Drift) -> dict[str, Any]:
    """The columns applying changes (with the lower-cased keys the database compares)."""
    values: dict[str, Any] = {}
    for field in drift.fields:
        values[field.field] = field.contact_value
        if field.field == EMAIL:
            values["email_key"] = rules.email_key(field.contact_value)
        elif field.field == LAST_NAME:
            values["last_name_key"] = field.contact_value.lower()
        elif field.field == USERNAME:
            values["username_key"] = rules.username_key(field.contact_value)
    return values


def describe(drift: Drift) -> str:
    """"email a@x -> b@y; username a@x -> b@y" for staff."""
    return "; ".join(f"{f.field.replace('_', ' ')} {f.account_value or '(none)'} -> {f.contact_value}"
                     for f in drift.fields)


def first_owner(owners: Mapping[str, list[tuple[str, str]]], key: str, account_id: str) -> str | None:
    """The username of an account other than `account_id` among the owners of a key."""
    return next((username for owner_id, username in owners.get(key, ()) if owner_id != account_id), None)
