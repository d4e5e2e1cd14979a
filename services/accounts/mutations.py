"""How every mutation runs: in one transaction with its audit events, answered once per request_id.

A mutation with a request_id claims the id first (its record is written in the same transaction as the change). A
retried call finds the record and gets the first answer back, decoded from JSON, and nothing new is written. Two
calls racing with one id: the second waits on the first's claim (the primary key), then reads its answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy.orm import Session

from plumbing.db import Database
from plumbing.errors import FailedPrecondition, NotFound
from services.accounts import codec
from services.accounts.domain import Account, Call, Clock
from services.accounts.store import AccountStore, RequestClaimed

R = TypeVar("R")
# One encoder for every audit event (json.dumps with options builds a new one per call: a batch records thousands).
_detail_json = json.JSONEncoder(default=str, sort_keys=True).encode
ATTEMPTS = 3


def account_or_404(store: AccountStore, session: Session, username: str) -> Account:
    """The account a call names by username (any case), or NOT_FOUND."""
    account = store.account_by_username(session, username)
    if account is None:
        raise NotFound(f"No account has the username '{username.strip()}'.", reason="ACCOUNT_NOT_FOUND")
    return account


def account_target(username: str) -> str:
    """The audit target of an account: its username in lower case, so a search finds it whatever the case."""
    return f"account:{username.strip().lower()}"


@dataclass
class Audit:
    """Collects the audit events of one mutation; they are written with it."""

    call: Call
    now: datetime
    events: list[dict[str, Any]] = field(default_factory=list)

    def record(self, action: str, target: str, **detail: Any) -> None:
        self.events.append({
            "time": self.now, "actor_id": self.call.actor_id[:100], "actor_name": self.call.actor_name[:200],
            "action": action, "target": target[:300], "request_id": (self.call.request_id or self.call.trace_id)[:200],
            "detail": _detail_json(detail),
        })


@dataclass(frozen=True)
class Stored(Generic[R]):
    """The answer kept for a request id."""

    value: R


class Mutations:
    def __init__(self, db: Database, store: AccountStore, clock: Clock) -> None:
        self.db = db
        self.store = store
        self.clock = clock

    @staticmethod
    def _decode(call: Call, method: str, kind: type[R], found: tuple[str, str | None]) -> Stored[R] | None:
        stored_method, reply = found
        if stored_method != method:
            raise FailedPrecondition(
                f"The request id '{call.request_id}' was already used for a {stored_method} call: give this "
                f"{method} call a new request id.", reason="REQUEST_ID_REUSED")
        if reply is None:
            return None
        return Stored(codec.load(kind, reply))

    def replay(self, call: Call, method: str, kind: type[R]) -> Stored[R] | None:
        """The stored answer for the call's request id, if any (a read, before costly work such as hashing)."""
        if not call.request_id:
            return None
        with self.db.read() as session:
            found = self.store.find_reply(session, call.request_id)
        return self._decode(call, method, kind, found) if found else None

    def run(self, call: Call, method: str, kind: type[R], work: Callable[[Session, Audit], R],
            now: datetime | None = None, encode: Callable[[R], str] = codec.dump) -> R:
        """Do `work` in one transaction with its audit events and idempotency record, or replay the first answer.
        Work prepared before the transaction passes the time it was prepared for (`now`), and may pass its answer
        already encoded for the record (`encode`)."""
        for _attempt in range(ATTEMPTS):
            try:
                with self.db.transaction() as session:
                    at = now or self.clock()
                    if call.request_id:
                        found = self.store.find_reply(session, call.request_id)
                        if found is not None:
                            stored = self._decode(call, method, kind, found)
                            if stored is not None:
                                return stored.value
                        self.store.claim_request(session, call.request_id, method, at)
                    audit = Audit(call, at)
                    result = work(session, audit)
                    self.store.add_audit(session, audit.events)
                    if call.request_id:
                        self.store.save_reply(session, call.request_id, encode(result))
                    return result
            except RequestClaimed:
                continue
        raise FailedPrecondition(f"Another call with the request id '{call.request_id}' is still running: try "
                                 "again in a moment.", reason="REQUEST_IN_PROGRESS")
