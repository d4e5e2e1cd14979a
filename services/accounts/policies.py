"""Policies of the district and of each school: read, changed (audited, confirmed in chat), and as they apply to
one account or one school. The rules are in policy_rules.py, the SQL in policy_store.py."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from plumbing import status_codes as sc
from plumbing.db import Database
from plumbing.errors import FieldViolation, InvalidArgument
from services.accounts import policy_store
from services.accounts.domain import Call, Problem
from services.accounts.mutations import Audit, Mutations, account_or_404
from services.accounts.policy_rules import KEYS, Effective, PolicyValues, StoredPolicy, check_values, school_key
from services.accounts.store import AccountStore


def policy_target(school: str) -> str:
    """The audit target of a policy."""
    return f"policy:school:{school_key(school)}" if school.strip() else "policy:district"


def _refuse(problems: Sequence[Problem]) -> InvalidArgument:
    return InvalidArgument(" ".join(p.message for p in problems), [FieldViolation(p.field, p.message)
                                                                   for p in problems], reason=problems[0].code)


class Policies:
    def __init__(self, db: Database, store: AccountStore, mutations: Mutations) -> None:
        self.db = db
        self.store = store
        self.mutations = mutations

    def _school(self, session: Session, school: str) -> str:
        """The school's name as the roster spells it; an unknown school is the caller's mistake."""
        name = policy_store.known_school(session, school)
        if name is None:
            known = policy_store.school_names(session)
            listed = ", ".join(known[:20]) + (f" and {len(known) - 20} more" if len(known) > 20 else "")
            message = (f"No student or account belongs to a school called '{school.strip()}': check the name as the "
                       "roster spells it" + (f" (the schools are {listed})." if known else " (the roster is empty)."))
            raise InvalidArgument(message, [FieldViolation("policy.school", message)], reason=sc.E_SCHOOL_UNKNOWN.code)
        return name

    # Reading ----------------------------------------------------------------------------------------------------

    def _list(self) -> tuple[StoredPolicy, list[StoredPolicy]]:
        with self.db.read() as session:
            found = policy_store.load_policies(session)
        district = next((p for p in found if not p.school), StoredPolicy("", PolicyValues()))
        schools = sorted((p for p in found if p.school and not p.values.empty), key=lambda p: p.school.lower())
        return district, schools

    async def list(self) -> tuple[StoredPolicy, list[StoredPolicy]]:
        return await self.db.run(self._list)

    def _get(self, school: str) -> StoredPolicy:
        with self.db.read() as session:
            name = self._school(session, school) if school.strip() else ""
            return policy_store.policy(session, name) or StoredPolicy(name, PolicyValues())

    async def get(self, school: str) -> StoredPolicy:
        return await self.db.run(self._get, school)

    def _effective(self, username: str, school: str) -> Effective:
        with self.db.read() as session:
            if username.strip():
                account = account_or_404(self.store, session, username)
                return policy_store.effective_for_accounts(session, [account.id])[account.id]
            if not school.strip():
                return policy_store.load_book(session).for_schools(())
            return policy_store.load_book(session).for_school(self._school(session, school))

    async def effective(self, username: str = "", school: str = "") -> Effective:
        """The policy of an account (the strictest of its schools'), of a school, or of the district."""
        return await self.db.run(self._effective, username, school)

    # Changing ---------------------------------------------------------------------------------------------------

    def _update(self, session: Session, audit: Audit | None, school: str, values: PolicyValues,
                keys: Sequence[str]) -> StoredPolicy:
        name = self._school(session, school) if school.strip() else ""
        current = policy_store.policy(session, name) or StoredPolicy(name, PolicyValues())
        changed = current.values.with_values(**{key: values.get(key) for key in keys})
        if audit is None:
            return StoredPolicy(name, changed, current.updated_at, current.updated_by)
        policy_store.save_policy(session, name, changed, audit.now, audit.call.actor_name or audit.call.actor_id)
        before = {key: current.values.get(key) for key in keys if current.values.get(key) != changed.get(key)}
        after = {key: changed.get(key) for key in before}
        if before:
            audit.record("policy.update", policy_target(name), school=name or "district", before=before, after=after)
        saved = policy_store.policy(session, name)
        assert saved is not None
        return saved

    def _check(self, keys: Sequence[str], values: PolicyValues) -> list[str]:
        wanted = list(dict.fromkeys(key.removeprefix("policy.") for key in keys))
        if not wanted:
            raise InvalidArgument(f"Say which settings to change in update_mask: {', '.join(KEYS)}.",
                                  [FieldViolation("update_mask", "no setting to change")], reason=sc.E_REQUIRED.code)
        if problems := check_values(values, wanted):
            raise _refuse(problems)
        return wanted

    def _dry_update(self, school: str, values: PolicyValues, keys: Sequence[str]) -> StoredPolicy:
        with self.db.read() as session:
            return self._update(session, None, school, values, keys)

    async def update(self, call: Call, school: str, values: PolicyValues, keys: Sequence[str],
                     validate_only: bool) -> StoredPolicy:
        """Set (or clear: a key whose value is None) the named keys of the district's or a school's policy."""
        wanted = self._check(keys, values)
        if validate_only:
            return await self.db.run(self._dry_update, school, values, wanted)
        return await self.db.run(self.mutations.run, call, "UpdatePolicy", StoredPolicy,
                                 lambda session, audit: self._update(session, audit, school, values, wanted))
