"""Sign-in throttling rules: how many failures within a window lock a username or a source, and for how long.

The counters themselves live in the database (replicas share them); these functions only compute the next state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Limit:
    """`failures` failed attempts within `window` lock the key for `lockout`."""

    failures: int
    window: timedelta
    lockout: timedelta


@dataclass(frozen=True)
class ThrottleRules:
    # Per username as typed (lower-cased), whether or not such an account exists: throttling then reveals nothing.
    per_username: Limit = Limit(5, timedelta(minutes=15), timedelta(minutes=15))
    # Per source address: many usernames tried from one place.
    per_source: Limit = Limit(30, timedelta(minutes=15), timedelta(minutes=15))


@dataclass(frozen=True)
class Counter:
    failures: int = 0
    window_start: datetime | None = None
    locked_until: datetime | None = None


def retry_after(counter: Counter, now: datetime) -> int:
    """Seconds until the key accepts another attempt (0: not locked)."""
    if counter.locked_until is None or counter.locked_until <= now:
        return 0
    return max(1, math.ceil((counter.locked_until - now).total_seconds()))


def after_failure(counter: Counter, limit: Limit, now: datetime) -> Counter:
    """The counter after one more failure: a new window once the old one has passed; locked at the limit."""
    if counter.window_start is None or now - counter.window_start >= limit.window:
        counter = Counter(0, now, None)
    failures = counter.failures + 1
    locked_until = now + limit.lockout if failures >= limit.failures else counter.locked_until
    return Counter(failures, counter.window_start, locked_until)


def after_lockout_passed(counter: Counter, now: datetime) -> Counter:
    """A lock that has run out is lifted and its failures forgotten."""
    if counter.locked_until is not None and counter.locked_until <= now:
        return Counter()
    return counter
