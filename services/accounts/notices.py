"""The notices a parent gets when staff (or a roster change) change what they sign in with: the username, or the
email address. A changed email is told at both addresses, so the parent hears of it even if the new address is
wrong or someone else's. Outbox rows ("notice" template) for the caller's transaction; no I/O here."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AccountChange:
    """What changed on one account that its holder must hear of."""

    first_name: str
    old_username: str
    new_username: str
    old_email: str
    new_email: str
    # Who changed it, in words: "The school office", "The school's records".
    by: str = "The school office"
    school: str = ""

    @property
    def username_changed(self) -> bool:
        return self.old_username != self.new_username

    @property
    def email_changed(self) -> bool:
        return self.old_email.strip().lower() != self.new_email.strip().lower()


def _body(change: AccountChange, school_name: str) -> str:
    lines = [f"Dear {change.first_name or 'parent'},", "",
             f"{change.by} changed your {school_name} parent portal account:"]
    if change.username_changed:
        lines.append(f"- your username is now {change.new_username} (it was {change.old_username}): use the new "
                     "username to sign in;")
    if change.email_changed:
        lines.append(f"- its email address is now {change.new_email or '(none)'} (it was "
                     f"{change.old_email or '(none)'}): emails from the portal go there from now on;")
    lines += ["", "Your password and your children's details are unchanged. If you did not expect this change, "
                  "contact the school office.", "", school_name]
    return "\n".join(lines)


def change_notices(change: AccountChange, school_name: str) -> list[dict[str, Any]]:
    """The outbox emails for one change: none when neither the username nor the email changed; else one to the
    account's email, and one to the old email too when the email changed."""
    if not (change.username_changed or change.email_changed):
        return []
    recipients = [change.new_email.strip()]
    if change.email_changed:
        recipients.append(change.old_email.strip())
    subject = (f"Your {school_name} parent portal "
               + ("username and email address have" if change.username_changed and change.email_changed
                  else "username has" if change.username_changed else "email address has") + " changed")
    data = {"subject": subject, "body": _body(change, school_name), "school_name": school_name}
    base = uuid.uuid4().hex
    return [{"key": f"accounts-notice-{base}-{index}", "template": "notice", "to": address, "data": data,
             "school": change.school}
            for index, address in enumerate(dict.fromkeys(a for a in recipients if a))]
