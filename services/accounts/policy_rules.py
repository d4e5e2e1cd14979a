"""Policies of the district and of each school, and the permissions of a link between a parent and a student.

A policy sets some of five values; a value it leaves unset is not set by it. A school's value overrides the
district's, and the district's overrides the built-in default. An account belongs to the schools of its own and of
its students; with several schools, each value is the strictest of theirs (must change password beats not, required
two-factor beats optional beats off, the longest minimum password, the shortest invitation, the fewest default
permissions). Plain functions and dataclasses, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from plumbing import status_codes as sc
from services.accounts.domain import Problem

PERMISSIONS = ("grades", "attendance", "reports", "messages")
TWO_FACTOR_LEVELS = ("off", "optional", "required")
KEYS = ("must_change_password", "two_factor", "min_password_length", "invite_expiry_days", "default_permissions")
MIN_PASSWORD_RANGE = (8, 64)
INVITE_DAYS_RANGE = (1, 60)
DISTRICT = "district"
BUILT_IN_SOURCE = "built-in default"
_PERMISSION_WORDS = ", ".join(PERMISSIONS[:-1]) + " or " + PERMISSIONS[-1]


@dataclass(frozen=True)
class PolicyValues:
    """The values one policy sets (None: not set by it)."""

    must_change_password: bool | None = None
    two_factor: str | None = None
    min_password_length: int | None = None
    invite_expiry_days: int | None = None
    default_permissions: tuple[str, ...] | None = None

    def get(self, key: str) -> Any:
        return getattr(self, key)

    def with_values(self, **values: Any) -> PolicyValues:
        return replace(self, **values)

    @property
    def empty(self) -> bool:
        return all(self.get(key) is None for key in KEYS)


BUILT_IN = PolicyValues(must_change_password=True, two_factor="optional", min_password_length=8,
                        invite_expiry_days=7, default_permissions=PERMISSIONS)


@dataclass(frozen=True)
class StoredPolicy:
    """A policy as saved: the district's (school empty) or a school's."""

    school: str
    values: PolicyValues
    updated_at: datetime | None = None
    updated_by: str = ""


@dataclass(frozen=True)
class Effective:
    """Every value as it applies, where each comes from, and the schools considered."""

    values: PolicyValues
    sources: Mapping[str, str]
    schools: tuple[str, ...] = ()

    @property
    def must_change_password(self) -> bool:
        return bool(self.values.must_change_password)

    @property
    def two_factor(self) -> str:
        return self.values.two_factor or BUILT_IN.two_factor or "optional"

    @property
    def min_password_length(self) -> int:
        return self.values.min_password_length or MIN_PASSWORD_RANGE[0]

    @property
    def invite_expiry_days(self) -> int:
        return self.values.invite_expiry_days or INVITE_DAYS_RANGE[0]

    @property
    def default_permissions(self) -> tuple[str, ...]:
        return self.values.default_permissions if self.values.default_permissions is not None else PERMISSIONS


def school_key(school: str) -> str:
    return school.strip().lower()


def _stricter(key: str, first: Any, second: Any) -> bool:
    """Whether `second` is stricter than `first` for this key."""
    if key == "must_change_password":
        return bool(second) and not first
    if key == "two_factor":
        return TWO_FACTOR_LEVELS.index(second) > TWO_FACTOR_LEVELS.index(first)
    if key == "min_password_length":
        return int(second) > int(first)
    return int(second) < int(first)  # invite_expiry_days


@dataclass(frozen=True)
class PolicyBook:
    """Every saved policy: the district's values and the schools' by school key (the table is small)."""

    district: PolicyValues = PolicyValues()
    schools: Mapping[str, PolicyValues] = field(default_factory=dict)
    names: Mapping[str, str] = field(default_factory=dict)

    def _one(self, school: str) -> tuple[PolicyValues, dict[str, str]]:
        own = self.schools.get(school_key(school), PolicyValues()) if school.strip() else PolicyValues()
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for key in KEYS:
            for layer, source in ((own, school.strip()), (self.district, DISTRICT), (BUILT_IN, BUILT_IN_SOURCE)):
                if layer.get(key) is not None:
                    values[key], sources[key] = layer.get(key), source
                    break
        return PolicyValues(**values), sources

    def for_school(self, school: str) -> Effective:
        values, sources = self._one(school)
        return Effective(values, sources, (school.strip(),) if school.strip() else ())

    def for_schools(self, schools: Iterable[str]) -> Effective:
        """The strictest of the schools' values; the district's alone when there is no school."""
        names = sorted({s.strip() for s in schools if s.strip()}, key=str.lower)
        if not names:
            values, sources = self._one("")
            return Effective(values, sources)
        chosen: dict[str, Any] = {}
        sources: dict[str, str] = {}
        permission_sources: list[str] = []
        for name in names:
            values, found = self._one(name)
            for key in KEYS[:-1]:
                if key not in chosen or _stricter(key, chosen[key], values.get(key)):
                    chosen[key], sources[key] = values.get(key), found[key]
            # Default permissions: only what every school grants.
            granted = set(values.default_permissions or ())
            kept = granted if "default_permissions" not in chosen else set(chosen["default_permissions"]) & granted
            chosen["default_permissions"] = decode_permissions(",".join(kept))
            if found["default_permissions"] not in permission_sources:
                permission_sources.append(found["default_permissions"])
        sources["default_permissions"] = " and ".join(permission_sources)
        return Effective(PolicyValues(**chosen), sources, tuple(names))

    def for_accounts(self, schools: Mapping[str, Iterable[str]]) -> dict[str, Effective]:
        """The policy of each account, from its schools (account id -> school names). A batch of thousands of
        accounts has a handful of school sets: each set is worked out once."""
        by_schools: dict[frozenset[str], Effective] = {}
        found = {}
        for account_id, names in schools.items():
            key = frozenset(names)
            if key not in by_schools:
                by_schools[key] = self.for_schools(key)
            found[account_id] = by_schools[key]
        return found


def book_of(policies: Iterable[StoredPolicy]) -> PolicyBook:
    district = PolicyValues()
    schools: dict[str, PolicyValues] = {}
    names: dict[str, str] = {}
    for policy in policies:
        if not policy.school:
            district = policy.values
        else:
            schools[school_key(policy.school)] = policy.values
            names[school_key(policy.school)] = policy.school
    return PolicyBook(district, schools, names)


# Permissions ----------------------------------------------------------------------------------------------------

def encode_permissions(names: Iterable[str]) -> str:
    """Permission names as stored: known names only, in the canonical order, comma separated."""
    wanted = set(names)
    return ",".join(name for name in PERMISSIONS if name in wanted)


def decode_permissions(text: str | None) -> tuple[str, ...]:
    wanted = {part.strip() for part in (text or "").split(",")}
    return tuple(name for name in PERMISSIONS if name in wanted)


def check_permissions(names: Sequence[str], field_name: str) -> tuple[tuple[str, ...], list[Problem]]:
    """Permission names (any case) in the canonical order, and a problem naming each unknown one."""
    cleaned = [name.strip().lower() for name in names if name.strip()]
    unknown = [name for name in cleaned if name not in PERMISSIONS]
    if unknown:
        listed = ", ".join(f"'{name}'" for name in unknown)
        verb = "is not a permission" if len(unknown) == 1 else "are not permissions"
        return (), [Problem(sc.E_PERMISSION_UNKNOWN.code, field_name,
                            f"{listed} {verb}: use {_PERMISSION_WORDS} (for example +grades -messages).")]
    return decode_permissions(",".join(cleaned)), []


def changed_permissions(current: Sequence[str], grant: Sequence[str], revoke: Sequence[str]) -> tuple[str, ...]:
    """The permissions after turning `grant` on and `revoke` off."""
    return decode_permissions(",".join((set(current) | set(grant)) - set(revoke)))


# Checking what staff set -------------------------------------------------------------------------------------------

def _out_of_range(key: str, value: int, bounds: tuple[int, int], unit: str) -> Problem:
    return Problem(sc.E_POLICY_VALUE.code, f"policy.{key}",
                   f"{key} must be from {bounds[0]} to {bounds[1]} {unit}; {value} is out of range: choose a "
                   f"number from {bounds[0]} to {bounds[1]}.")


def check_values(values: PolicyValues, keys: Iterable[str]) -> list[Problem]:
    """What is wrong with the values of these keys (unset values are fine: they clear the key)."""
    problems: list[Problem] = []
    for key in keys:
        value = values.get(key) if key in KEYS else None
        if key not in KEYS:
            problems.append(Problem(sc.E_POLICY_VALUE.code, "update_mask",
                                    f"'{key}' is not a policy setting: use {', '.join(KEYS)}."))
        elif value is None:
            continue
        elif key == "two_factor" and value not in TWO_FACTOR_LEVELS:
            problems.append(Problem(sc.E_POLICY_VALUE.code, "policy.two_factor",
                                    f"two_factor must be off, optional or required, not '{value}'."))
        elif key == "min_password_length" and not MIN_PASSWORD_RANGE[0] <= value <= MIN_PASSWORD_RANGE[1]:
            problems.append(_out_of_range(key, value, MIN_PASSWORD_RANGE, "characters"))
        elif key == "invite_expiry_days" and not INVITE_DAYS_RANGE[0] <= value <= INVITE_DAYS_RANGE[1]:
            problems.append(_out_of_range(key, value, INVITE_DAYS_RANGE, "days"))
        elif key == "default_permissions":
            problems += check_permissions(list(value), "policy.default_permissions")[1]
    return problems


def describe(key: str, value: Any) -> str:
    """A value as staff read it."""
    if value is None:
        return "-"
    if key == "must_change_password":
        return "yes" if value else "no"
    if key == "default_permissions":
        return ", ".join(value) if value else "none"
    if key == "invite_expiry_days":
        return f"{value} day{'s' if value != 1 else ''}"
    return str(value)
