"""The rules of a password reset, one account or thousands: which accounts a selection means, who is skipped and
why, what each one is sent, and the passwords generated when staff insist on emailing one. Pure: no I/O."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from services.accounts import rules
from services.accounts.domain import AccountFilter, AccountStatus, AccountType, TwoFactor


class Outcome(StrEnum):
    INVITATION = "invitation"  # never had a password: a new invitation link (7 days)
    RESET = "reset"  # a reset link (1 hour)
    PASSWORD = "password"  # a generated password, must-change-password set
    SKIPPED = "skipped"


SKIP_REASONS = {
    "ACCOUNT_DISABLED": "the account is disabled: enable it first",
    "NO_EMAIL": "the account has no email address: add one first",
    "ACCOUNT_NOT_FOUND": "no account has this username",
}
SELECTOR_KINDS = ("all", "school", "group", "grad_year", "last_name_prefix", "usernames")
GENERATED_LENGTH = 12
# No look-alikes (0/O, 1/l/I) in a password a parent types from an email.
_UPPER = "ABCDEFGHJKLMNPQRSTUVWXYZ"
_LOWER = "abcdefghijkmnpqrstuvwxyz"
_DIGITS = "23456789"


@dataclass(frozen=True)
class ResetSpec:
    """A reset as staff asked for it: which accounts, whether two-factor is turned on, and a generated password
    instead of a link."""

    where: AccountFilter
    enable_two_factor: bool = False
    send_password: bool = False
    # Usernames asked for by name (those that match no account are reported as skipped).
    usernames: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        w = self.where
        return {"type": w.type.value if w.type else "", "school": w.school, "group": w.group,
                "grad_year": w.grad_year, "last_name_prefix": w.last_name_prefix,
                "never_signed_in": w.never_signed_in, "usernames": list(self.usernames),
                "enable_two_factor": self.enable_two_factor, "send_password": self.send_password}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ResetSpec:
        usernames = tuple(str(u) for u in data.get("usernames", []))  # type: ignore[attr-defined]
        where = AccountFilter(
            type=AccountType(data["type"]) if data.get("type") else None, school=str(data.get("school", "")),
            group=str(data.get("group", "")), grad_year=int(data.get("grad_year", 0)),  # type: ignore[call-overload]
            last_name_prefix=str(data.get("last_name_prefix", "")),
            never_signed_in=bool(data.get("never_signed_in", False)), usernames=usernames)
        return cls(where, bool(data.get("enable_two_factor")), bool(data.get("send_password")), usernames)


def selection(kind: str, value: str = "", usernames: Sequence[str] = (), never_signed_in: bool = False
              ) -> AccountFilter:
    """The accounts a selector means. Usernames name accounts of any type; every other kind means parent accounts
    (all of them, or those linked to students of a school, group, graduation year or last-name prefix)."""
    if kind == "usernames":
        names = tuple(dict.fromkeys(u.strip() for u in usernames if u.strip()))
        return AccountFilter(usernames=names, never_signed_in=never_signed_in)
    where = AccountFilter(type=AccountType.GUARDIAN, never_signed_in=never_signed_in)
    if kind == "grad_year":
        return replace(where, grad_year=int(value))
    if kind in ("school", "group", "last_name_prefix"):
        return replace(where, **{kind: value.strip()})
    return where


@dataclass(frozen=True)
class Candidate:
    """What a reset needs to know of one selected account."""

    id: str
    username: str
    first_name: str
    last_name: str
    email: str
    status: AccountStatus
    two_factor: TwoFactor
    has_password: bool
    school: str = ""

    @property
    def key(self) -> str:
        return rules.username_key(self.username)

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


@dataclass(frozen=True)
class Decision:
    candidate: Candidate
    outcome: Outcome
    reason: str = ""
    two_factor_on: bool = False

    @property
    def message(self) -> str:
        return SKIP_REASONS.get(self.reason, "")


def decide(candidate: Candidate, spec: ResetSpec) -> Decision:
    """What the reset does to one account: skipped (disabled, no email), or what it is sent."""
    if candidate.status == AccountStatus.DISABLED:
        return Decision(candidate, Outcome.SKIPPED, "ACCOUNT_DISABLED")
    if not candidate.email:
        return Decision(candidate, Outcome.SKIPPED, "NO_EMAIL")
    two_factor_on = spec.enable_two_factor and candidate.two_factor == TwoFactor.OFF
    if spec.send_password:
        return Decision(candidate, Outcome.PASSWORD, two_factor_on=two_factor_on)
    never_set = candidate.status == AccountStatus.INVITED and not candidate.has_password
    return Decision(candidate, Outcome.INVITATION if never_set else Outcome.RESET, two_factor_on=two_factor_on)


def not_found(usernames: Iterable[str], found_keys: set[str]) -> list[Decision]:
    """Skipped decisions for usernames asked for by name that match no account (in the order asked)."""
    missing = []
    for name in dict.fromkeys(u.strip() for u in usernames if u.strip()):
        if rules.username_key(name) not in found_keys:
            missing.append(Decision(Candidate("", name, "", "", "", AccountStatus.ACTIVE, TwoFactor.OFF, False),
                                    Outcome.SKIPPED, "ACCOUNT_NOT_FOUND"))
    return missing


def generated_password(username: str) -> str:
    """A random password the password rules accept (upper, lower, digit, 12 characters, no look-alikes)."""
    alphabet = _UPPER + _LOWER + _DIGITS
    while True:
        chars = [secrets.choice(_UPPER), secrets.choice(_LOWER), secrets.choice(_DIGITS)]
        chars += [secrets.choice(alphabet) for _ in range(GENERATED_LENGTH - len(chars))]
        secrets.SystemRandom().shuffle(chars)
        password = "".join(chars)
        if not rules.check_password(password, username):
            return password
