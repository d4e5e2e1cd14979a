"""Batches of account rows applied in one transaction each: planned and built before the transaction, checked
and written inside it.

A batch is planned against a snapshot of what its rows mention (`read_plan`), then everything its transaction
writes is built from that plan (`prepare_batch`: account rows, links, tokens, outbox emails, audit events, the
stored answer). The transaction reads the snapshot again: when nothing it holds has changed, the prepared writes
go in as they are; otherwise the batch is planned again inside the transaction. Preparing happens in the service
or in one of its worker processes (`plan_workers`), and so does the transaction (`BatchApplier`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from plumbing.db import Database
from plumbing.errors import FieldViolation, InvalidArgument
from plumbing.gcpause import paused_gc
from services.accounts import codec, planning
from services.accounts.domain import (
    DEFAULT_ROLES,
    AccountRow,
    AccountStatus,
    AccountType,
    BatchResult,
    Call,
    TokenPurpose,
    TwoFactor,
)
from services.accounts.mutations import Audit, Mutations, account_target
from services.accounts.setpassword import (
    LinkSettings,
    LinkTarget,
    NewLinks,
    invitation_lifetimes,
    new_links,
    store_links,
)
from services.accounts.store import AccountStore, new_id

MAX_BATCH_ROWS = 5000


def account_columns(account_id: str, username: str, first_name: str, last_name: str, email: str,
                     account_type: AccountType, role: str, status: AccountStatus, must_change_password: bool,
                     two_factor: TwoFactor, password_hash: str | None, contact_id: str, now: Any) -> dict[str, Any]:
    """A new account's row, with the lower-cased keys the database compares and indexes."""
    return {
        "id": account_id, "username": username, "username_key": username.lower(), "first_name": first_name,
        "last_name": last_name, "last_name_key": last_name.lower(), "email": email, "email_key": email.lower(),
        "type": account_type.value, "role": role, "status": status.value, "must_change_password": must_change_password,
        "two_factor": two_factor.value, "password_hash": password_hash, "contact_id": contact_id, "created_at": now,
        "updated_at": now, "last_sign_in_at": None}


@dataclass(frozen=True)
class Planned:
    """A batch's plan, the snapshot of the database it was made on, and what that snapshot looked up."""

    lookups: planning.Lookups
    snapshot: planning.Snapshot
    plan: planning.Plan


@dataclass
class BatchWrites:
    """What one planned batch writes: the snapshot it was planned on, and rows for each table."""

    snapshot: planning.Snapshot
    accounts: list[dict[str, Any]]
    updates: list[dict[str, Any]]
    password_changed: list[str]
    school_pairs: list[tuple[str, str]]
    link_pairs: list[tuple[str, str]]
    links: NewLinks | None  # the invitations' tokens and emails


@dataclass
class PreparedBatch:
    """A batch's writes built before its transaction, with its audit events and its answer (and that answer
    encoded for the request's record)."""

    lookups: planning.Lookups
    writes: BatchWrites
    audit: Audit
    result: BatchResult
    reply: str


def check_batch_size(rows: int) -> None:
    if rows > MAX_BATCH_ROWS:
        raise InvalidArgument(f"A batch holds at most {MAX_BATCH_ROWS} rows; this one has {rows}: send it in "
                              "smaller batches.", [FieldViolation("rows", f"at most {MAX_BATCH_ROWS}")])


def read_plan(db: Database, store: AccountStore, rows: Sequence[AccountRow], send_invitations: bool,
              links_only: bool = False) -> Planned:
    """A batch's plan against what the database holds now, with the snapshot it was made on (nothing is
    written)."""
    lookups = planning.lookups_for(rows)
    with paused_gc():  # thousands of objects, no cycles among them
        with db.read() as session:
            snapshot = store.snapshot(session, lookups)
        return Planned(lookups, snapshot, planning.plan_rows(rows, snapshot, send_invitations, links_only))


def plan_batch(db: Database, store: AccountStore, rows: Sequence[AccountRow], send_invitations: bool,
               links_only: bool = False) -> planning.Plan:
    """A batch's plan against what the database holds now (a trial run's answer; nothing is written)."""
    return read_plan(db, store, rows, send_invitations, links_only).plan


def batch_writes(links: LinkSettings, plan: planning.Plan, snapshot: planning.Snapshot, hashes: Mapping[int, str],
                 job_id: str, audit: Audit) -> BatchWrites:
    """The rows a plan writes, with its audit events recorded; no database work."""
    now = audit.now
    new_rows, school_pairs, link_pairs, invite = [], [], [], []
    invited_schools: dict[str, set[str]] = {}  # an invitation's lifetime follows its account's schools
    for create in plan.creates:
        account_id = new_id()
        new_rows.append(account_columns(
            account_id, create.username, create.first_name, create.last_name, create.email, create.type,
            DEFAULT_ROLES[create.type], create.status, create.must_change_password, TwoFactor.OFF,
            hashes[create.password_row] if create.password_row is not None else None, create.contact_id, now))
        school_pairs += [(account_id, s) for s in create.schools]
        link_pairs += [(account_id, s) for s in create.student_ids]
        if create.invite:
            invite.append(LinkTarget(account_id, create.username, create.first_name, create.email,
                                     next(iter(create.schools), "")))
            invited_schools[account_id] = {*create.schools, *(snapshot.student_schools.get(s, "")
                                                              for s in create.student_ids)} - {""}
        audit.record("account.create", account_target(create.username), row=create.row_number, job_id=job_id,
                     username=create.username, type=create.type.value, email=create.email,
                     status=create.status.value, schools=list(create.schools), student_ids=list(create.student_ids),
                     contact_id=create.contact_id, password_set=create.password_row is not None,
                     invitation=create.invite)
    updates, password_changed = [], []
    for change in plan.updates:
        values: dict[str, Any] = {k: getattr(v, "value", v) for k, v in change.changes.items()}
        if "email" in values:
            values["email_key"] = str(values["email"]).lower()
        if "last_name" in values:
            values["last_name_key"] = str(values["last_name"]).lower()
        if change.password_row is not None:
            values["password_hash"] = hashes[change.password_row]
            password_changed.append(change.account_id)
        updates.append({"id": change.account_id, **values, "updated_at": now})
        school_pairs += [(change.account_id, s) for s in change.new_schools]
        link_pairs += [(change.account_id, s) for s in change.new_student_ids]
        detail: dict[str, Any] = {"row": change.row_number, "job_id": job_id}
        if change.changes or change.password_row is not None or change.new_schools:
            after = {k: getattr(v, "value", v) for k, v in change.changes.items()}
            if change.password_row is not None:
                after["password"] = "changed"
            if change.new_schools:
                after["schools_added"] = list(change.new_schools)
            audit.record("account.update", account_target(change.username), **detail,
                         before={k: getattr(v, "value", v) for k, v in change.before.items()}, after=after)
        if change.new_student_ids:
            audit.record("account.link", account_target(change.username), **detail,
                         added=list(change.new_student_ids))
    tokens = None
    if invite:
        lifetimes = invitation_lifetimes(snapshot.policies.for_accounts(invited_schools))
        tokens = new_links(links, invite, TokenPurpose.INVITATION, now, True, lifetimes, job_id)
    return BatchWrites(snapshot, new_rows, updates, password_changed, school_pairs, link_pairs, tokens)


def prepare_batch(links: LinkSettings, call: Call, now: datetime, planned: Planned, hashes: Mapping[int, str],
                  job_id: str) -> PreparedBatch:
    """A planned batch's writes, audit events and answer, built before its transaction (in a worker process, or
    in the service)."""
    with paused_gc():
        audit = Audit(call, now)
        writes = batch_writes(links, planned.plan, planned.snapshot, hashes, job_id, audit)
        result = BatchResult(planned.plan.results)
        return PreparedBatch(planned.lookups, writes, audit, result, codec.dump(result))


class PasswordsToHash(Exception):
    """The plan made inside a batch's transaction sets passwords the first plan did not (the database changed in
    between): the transaction is given up, so that it never waits on the hashing workers, and tried again once
    they are hashed."""

    def __init__(self, rows: Sequence[int]) -> None:
        super().__init__(f"rows {', '.join(map(str, rows))} need their passwords hashed")
        self.rows = list(rows)


class BatchApplier:
    """The write transaction of a batch, in the service or in a worker process."""

    def __init__(self, store: AccountStore, mutations: Mutations, links: LinkSettings) -> None:
        self.store = store
        self.mutations = mutations
        self.links = links

    def write(self, session: Session, writes: BatchWrites, now: datetime) -> None:
        self.store.insert_accounts(session, writes.accounts)
        self.store.update_accounts(session, writes.updates)
        self.store.revoke_tokens(session, writes.password_changed, None, now)
        self.store.add_schools(session, writes.school_pairs)
        self.store.add_links(session, writes.link_pairs, now, writes.snapshot)
        if writes.links is not None:  # new accounts: no older links to revoke
            store_links(self.store, session, writes.links)

    def plan_and_write(self, session: Session, audit: Audit, rows: Sequence[AccountRow], send_invitations: bool,
                       job_id: str, hashes: Mapping[int, str], links_only: bool = False,
                       snapshot: planning.Snapshot | None = None) -> BatchResult:
        """Plan inside the write transaction (against the snapshot it has read, or one read now) and apply that
        plan, set-based. PasswordsToHash when the plan sets a password that is not in `hashes`."""
        if snapshot is None:
            snapshot = self.store.snapshot(session, planning.lookups_for(rows))
        plan = planning.plan_rows(rows, snapshot, send_invitations, links_only)
        if missing := sorted(plan.password_rows - set(hashes)):
            raise PasswordsToHash(missing)
        self.write(session, batch_writes(self.links, plan, snapshot, hashes, job_id, audit), audit.now)
        return BatchResult(plan.results)

    def apply(self, call: Call, rows: Sequence[AccountRow], send_invitations: bool, job_id: str,
              hashes: Mapping[int, str], links_only: bool, prepared: PreparedBatch) -> BatchResult:
        """The batch's write transaction. The writes were prepared from a snapshot read before it: when the
        snapshot read inside is the same, they are written as they are; otherwise (another writer changed one of
        the batch's accounts, emails, students or contacts meanwhile) the batch is planned again here."""

        def work(session: Session, audit: Audit) -> BatchResult:
            snapshot = self.store.snapshot(session, prepared.lookups)
            if snapshot != prepared.writes.snapshot:
                return self.plan_and_write(session, audit, rows, send_invitations, job_id, hashes, links_only,
                                           snapshot)
            audit.events += prepared.audit.events
            self.write(session, prepared.writes, audit.now)
            return prepared.result

        def encode(result: BatchResult) -> str:
            return prepared.reply if result is prepared.result else codec.dump(result)

        # The whole write (row dicts, audit events, the stored reply) makes tens of thousands of objects and no
        # cycles: the collector is held until it commits.
        with paused_gc():
            return self.mutations.run(call, "BatchApplyAccountRows", BatchResult, work, now=prepared.audit.now,
                                      encode=encode)
