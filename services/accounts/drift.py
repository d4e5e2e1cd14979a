"""Contact drift: list, export and apply the differences between parent accounts and the roster contacts they came
from; and, after a roster import changes contacts, report them (PORTAL_CONTACT_CHANGES=report) or apply them
(=update). Applying updates the account and emails the parent at the old and the new address, audited with the
staff member (or "roster import") who caused it. The rules are in drift_rules.py, the SQL in drift_store.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from plumbing.db import Database
from plumbing.errors import FieldViolation, InvalidArgument
from services.accounts import drift_store, paging, rules
from services.accounts.domain import Call, Clock, Contact, KeptAccount, RosterDrift
from services.accounts.drift_rules import (
    EMAIL,
    USERNAME,
    Drift,
    Pair,
    account_values,
    blocked_reason,
    drift_of,
    first_owner,
)
from services.accounts.drift_workbook import drift_workbook
from services.accounts.mutations import Audit, Mutations, account_target
from services.accounts.notices import AccountChange, change_notices
from services.accounts.store import AccountStore

SHOWN = 100
REPORT, UPDATE = "report", "update"


@dataclass(frozen=True)
class DriftSettings:
    """PORTAL_CONTACT_CHANGES, PORTAL_USERNAME_SCHEME, and what the notices and workbooks need."""

    mode: str = REPORT
    scheme: str = "email"
    school_name: str = "Parent Portal"
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))


@dataclass(frozen=True)
class DriftPage:
    items: tuple[Drift, ...]
    next_token: str
    total: int
    as_of: datetime


@dataclass(frozen=True)
class Applied:
    applied_count: int = 0
    applied: tuple[Drift, ...] = ()
    not_applied_count: int = 0
    not_applied: tuple[KeptAccount, ...] = ()


def _drifts(session: Session, found: Sequence[Pair], scheme: str) -> list[Drift]:
    """The pairs that drift, with why applying would wait (set-based lookups of who holds the new values)."""
    drifts = [Drift(pair, fields) for pair in found if (fields := drift_of(pair, scheme))]
    emails = drift_store.email_owners(session, [rules.email_key(d.new(EMAIL) or "") for d in drifts])
    names = drift_store.username_holders(session, [rules.username_key(d.new(USERNAME) or "") for d in drifts])
    return [Drift(d.pair, d.fields, blocked_reason(
        d, first_owner(emails, rules.email_key(d.new(EMAIL) or ""), d.pair.account_id),
        first_owner(names, rules.username_key(d.new(USERNAME) or ""), d.pair.account_id))) for d in drifts]


class ContactDrift:
    def __init__(self, db: Database, store: AccountStore, mutations: Mutations, settings: DriftSettings,
                 clock: Clock, emails_queued: Callable[[], None]) -> None:
        self.db = db
        self.store = store
        self.mutations = mutations
        self.settings = settings
        self.clock = clock
        self.emails_queued = emails_queued

    # Listing ----------------------------------------------------------------------------------------------------

    def _list(self, usernames: Sequence[str], as_of: datetime, size: int, token: str) -> DriftPage:
        kind = paging.list_kind("drift", (tuple(sorted(u.lower() for u in usernames)), as_of.isoformat()))
        position = paging.decode(kind, token)
        scheme = self.settings.scheme
        with self.db.read() as session:
            # Every pair SQL says may drift, decided by the rules: the total is exact, the page a slice of it.
            drifting = [p for p in drift_store.pairs(session, scheme, as_of=as_of, usernames=usernames)
                        if drift_of(p, scheme)]
            after = str(position[0]) if position else None
            rest = [p for p in drifting if after is None or p.username.lower() > after]
            drifts = _drifts(session, rest[:size], scheme)
        next_token = paging.encode(kind, rest[size - 1].username.lower()) if len(rest) > size else ""
        return DriftPage(tuple(drifts), next_token, len(drifting), as_of)

    async def list(self, usernames: Sequence[str], as_of: datetime | None, page_size: int,
                   page_token: str) -> DriftPage:
        return await self.db.run(self._list, usernames, as_of or self.clock(), paging.page_size(page_size),
                                 page_token)

    def _workbook(self, usernames: Sequence[str], as_of: datetime) -> tuple[str, bytes]:
        with self.db.read() as session:
            drifts = _drifts(session, drift_store.pairs(session, self.settings.scheme, as_of=as_of,
                                                        usernames=usernames), self.settings.scheme)
        data, _count = drift_workbook(drifts, self.settings.zone)
        stamp = as_of.astimezone(self.settings.zone).strftime("%Y-%m-%d-%H%M")
        return f"contact-drift-{stamp}.xlsx", data

    async def workbook(self, usernames: Sequence[str], as_of: datetime | None) -> tuple[str, bytes]:
        return await self.db.run(self._workbook, usernames, as_of or self.clock())

    # Applying ---------------------------------------------------------------------------------------------------

    def apply_drifts(self, session: Session, audit: Audit, drifts: Sequence[Drift], via: str,
                     by: str) -> tuple[list[Drift], list[KeptAccount]]:
        """Apply what can be applied, in the caller's transaction, with notices and audit events."""
        applied: list[Drift] = []
        kept: list[KeptAccount] = []
        claimed: set[str] = set()
        updates = []
        emails = []
        for drift in drifts:
            pair = drift.pair
            wanted = {rules.email_key(drift.new(EMAIL) or ""), rules.username_key(drift.new(USERNAME) or "")} - {""}
            if drift.blocked:
                kept.append(KeptAccount(pair.username, f"not applied: {drift.blocked}"))
                continue
            if wanted & claimed:
                kept.append(KeptAccount(pair.username, "not applied: another account in this change takes the same "
                                                       "email or username"))
                continue
            claimed |= wanted
            values = account_values(drift)
            updates.append({"id": pair.account_id, **values, "updated_at": audit.now})
            after = {k: v for k, v in values.items() if not k.endswith("_key")}
            audit.record("account.update", account_target(drift.new(USERNAME) or pair.username), via=via,
                         contact_id=pair.contact_id, before={f.field: f.account_value for f in drift.fields},
                         after=after)
            emails += change_notices(AccountChange(
                drift.new("first_name") or pair.first_name, pair.username, drift.new(USERNAME) or pair.username,
                pair.email, drift.new(EMAIL) or pair.email, by=by), self.settings.school_name)
            applied.append(drift)
        self.store.update_accounts(session, updates)
        self.store.enqueue_emails(session, emails)
        return applied, kept

    def _apply(self, session: Session, audit: Audit, usernames: Sequence[str], apply_all: bool,
               as_of: datetime) -> Applied:
        scheme = self.settings.scheme
        chosen = () if apply_all else usernames
        drifts = _drifts(session, drift_store.pairs(session, scheme, as_of=as_of, usernames=chosen), scheme)
        later = {p.username.lower(): p for p in drift_store.pairs(session, scheme, usernames=chosen)}
        applied, kept = self.apply_drifts(session, audit, drifts, "contact drift", "The school office")
        listed = {d.pair.username.lower() for d in drifts}
        for key, pair in later.items():
            if key not in listed:
                kept.append(KeptAccount(pair.username, "not applied: the account or its contact changed after the "
                                                       "list you confirmed; run /portal drift again"))
        if not apply_all:
            known = self.store.accounts_by_usernames(session, usernames)
            for name in dict.fromkeys(u.strip() for u in usernames if u.strip()):
                key = rules.username_key(name)
                if key in listed or key in later:
                    continue
                reason = ("no account has this username" if key not in known
                          else "nothing to apply: it matches its contact (or has no contact)")
                kept.append(KeptAccount(name, reason))
        return Applied(len(applied), tuple(applied[:SHOWN]), len(kept), tuple(kept[:SHOWN]))

    async def apply(self, call: Call, usernames: Sequence[str], apply_all: bool, as_of: datetime | None) -> Applied:
        if not apply_all and not any(u.strip() for u in usernames):
            raise InvalidArgument("Name the accounts to update (usernames), or ask for all of them.",
                                  [FieldViolation("usernames", "required")])
        moment = as_of or self.clock()
        result = await self.db.run(self.mutations.run, call, "ApplyContactDrift", Applied,
                                   lambda session, audit: self._apply(session, audit, usernames, apply_all, moment))
        if result.applied_count:
            self.emails_queued()
        return result

    # After a roster import --------------------------------------------------------------------------------------

    def roster_preview(self, session: Session, contacts: Sequence[Contact]) -> tuple[RosterDrift, ...]:
        """What a roster batch's contacts would do to their accounts (a trial run: nothing is written)."""
        incoming = {c.id: c for c in contacts}
        found = drift_store.pairs(session, self.settings.scheme, contact_ids=list(incoming), prefilter=False)
        notes = []
        for pair in found:
            contact = incoming[pair.contact_id]
            fields = drift_of(Pair(pair.account_id, pair.username, pair.first_name, pair.last_name, pair.email,
                                   pair.contact_id, contact.first_name, contact.last_name, contact.email),
                              self.settings.scheme)
            if fields:
                notes.append(RosterDrift(pair.contact_id, pair.username, tuple(f.field for f in fields),
                                         self.settings.mode == UPDATE))
        return tuple(notes)

    def after_roster_change(self, session: Session, audit: Audit,
                            contact_ids: Sequence[str]) -> tuple[RosterDrift, ...]:
        """The accounts of contacts a roster batch changed that no longer match: reported, or (update) updated."""
        if not contact_ids:
            return ()
        scheme = self.settings.scheme
        drifts = _drifts(session, drift_store.pairs(session, scheme, contact_ids=contact_ids), scheme)
        if self.settings.mode != UPDATE:
            return tuple(RosterDrift(d.pair.contact_id, d.pair.username, d.names, False) for d in drifts)
        applied, _kept = self.apply_drifts(session, audit, drifts, "roster import", "The school's records")
        done = {d.pair.account_id for d in applied}
        return tuple(RosterDrift(d.pair.contact_id, d.pair.username, d.names, d.pair.account_id in done)
                     for d in drifts)
