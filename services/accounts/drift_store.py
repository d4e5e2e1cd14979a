"""The SQL of contact drift: parent accounts side by side with the roster contacts they came from, narrowed in SQL
to the pairs that may differ (drift_rules decides exactly), and the accounts that hold an email or a username."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, or_, select
from sqlalchemy.orm import Session

from services.accounts import rules
from services.accounts.domain import AccountType
from services.accounts.drift_rules import SCHEME_EMAIL, Pair
from services.accounts.models import AccountRecord, RosterContactRecord

CHUNK = 5000
_a, _c = AccountRecord, RosterContactRecord
_COLUMNS = (_a.id, _a.username, _a.first_name, _a.last_name, _a.email, _a.contact_id, _c.first_name, _c.last_name,
            _c.email, _c.updated_at, _a.updated_at)


def _maybe_drifting(scheme: str) -> Any:
    """Pairs whose email, names (or, under the email scheme, email-like username) may differ."""
    differs = [and_(_c.email_key != "", _a.email_key != _c.email_key),
               and_(_c.first_name != "", _a.first_name != _c.first_name),
               and_(_c.last_name != "", _a.last_name != _c.last_name)]
    if scheme == SCHEME_EMAIL:
        wanted = case((_c.email_key != "", _c.email_key), else_=_a.email_key)
        differs.append(and_(_a.username_key.contains("@"), _a.username_key != wanted))
    return or_(*differs)


def _pairs(query: Any) -> Iterable[Pair]:
    return (Pair(*row) for row in query)


def pairs(session: Session, scheme: str, *, as_of: datetime | None = None, usernames: Sequence[str] = (),
          contact_ids: Sequence[str] = (), prefilter: bool = True) -> list[Pair]:
    """Parent accounts with their contacts, in username order: those that may drift (unless `prefilter` is off),
    changed up to `as_of`, of these usernames or contacts when given."""
    query = (select(*_COLUMNS).join(_c, _c.id == _a.contact_id)
             .where(_a.contact_id != "", _a.type == AccountType.GUARDIAN.value).order_by(_a.username_key))
    if prefilter:
        query = query.where(_maybe_drifting(scheme))
    if as_of is not None:
        query = query.where(_c.updated_at <= as_of, _a.updated_at <= as_of)
    keys = sorted({rules.username_key(u) for u in usernames if u.strip()})
    if usernames:
        found: list[Pair] = []
        for start in range(0, len(keys), CHUNK):
            found += _pairs(session.execute(query.where(_a.username_key.in_(keys[start:start + CHUNK]))))
        return sorted(found, key=lambda p: p.username.lower())
    if contact_ids:
        found = []
        ids = sorted(set(contact_ids))
        for start in range(0, len(ids), CHUNK):
            found += _pairs(session.execute(query.where(_a.contact_id.in_(ids[start:start + CHUNK]))))
        return sorted(found, key=lambda p: p.username.lower())
    return list(_pairs(session.execute(query)))


def _holders(session: Session, column: Any, keys: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
    found: dict[str, list[tuple[str, str]]] = defaultdict(list)
    wanted = sorted({k for k in keys if k})
    for start in range(0, len(wanted), CHUNK):
        for account_id, username, key in session.execute(
                select(_a.id, _a.username, column).where(column.in_(wanted[start:start + CHUNK]))):
            found[key].append((account_id, username))
    return found


def email_owners(session: Session, email_keys: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
    """Email key -> (account id, username) of every account holding it."""
    return _holders(session, _a.email_key, email_keys)


def username_holders(session: Session, username_keys: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
    """Username key -> (account id, username) of the account holding it."""
    return _holders(session, _a.username_key, username_keys)
