"""The accounts service's storage: every query it makes, and the one place SQL lives.

Methods take the caller's session, so one operation (its rows, its audit events, its outbox emails and its
idempotency record) commits or rolls back as one transaction. Work on many records is set-based: IN lists in
chunks and bulk inserts/updates, never a query per row.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Table, and_, any_, bindparam, delete, exists, func, insert, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from plumbing.bulk import Lookup, insert_many
from plumbing.outbox import enqueue_emails, enqueue_rows
from services.accounts import rules
from services.accounts.domain import (
    Account,
    AccountFilter,
    AccountStatus,
    AccountType,
    AuditEvent,
    Contact,
    Relationship,
    SignIn,
    Student,
    StudentContact,
    StudentLink,
    StudentSelector,
    TokenPurpose,
    TwoFactor,
)
from services.accounts.models import (
    ALL_PERMISSIONS,
    AccountRecord,
    AccountSchoolRecord,
    AccountStudentRecord,
    AuditEventRecord,
    IdempotencyRecord,
    RecoveryCodeRecord,
    RosterContactRecord,
    RosterRelationshipRecord,
    RosterStudentRecord,
    SetPasswordTokenRecord,
    SignInRecord,
    ThrottleRecord,
    TotpSecretRecord,
    accounts_outbox,
)
from services.accounts.planning import KnownAccount, KnownContact, Lookups, Snapshot
from services.accounts.policy_rules import decode_permissions
from services.accounts.policy_store import default_link_permissions, links_of, load_book
from services.accounts.throttling import Counter

CHUNK = 5000
T = TypeVar("T")


class UsernameTaken(Exception):
    """The database refused a second account with the same (lower-cased) username."""


class RequestClaimed(Exception):
    """Another call with the same request_id is being or has been answered."""


_id_lock = threading.Lock()
_last_ms = 0
_sequence = 0


def new_id() -> str:
    """A UUIDv7-style id: the time in milliseconds first, then a counter and 62 random bits. Ids made later sort
    later, so bulk inserts append to the end of each id index instead of dirtying a random page per row."""
    global _last_ms, _sequence
    ms = time.time_ns() // 1_000_000
    with _id_lock:
        if ms > _last_ms:
            _last_ms, _sequence = ms, secrets.randbits(11)
        else:
            ms, _sequence = _last_ms, _sequence + 1
            if _sequence >= 1 << 12:  # 4,096 ids in one millisecond: borrow the next one
                _last_ms, _sequence = _last_ms + 1, 0
                ms = _last_ms
    value = (ms << 80) | (0x7 << 76) | (_sequence << 64) | (0b10 << 62) | secrets.randbits(62)
    return f"{value:032x}"


def _chunks(values: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    batch: list[T] = []
    for value in values:
        batch.append(value)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _chunk_pairs(first: list[T], second: list[T], size: int = CHUNK) -> Iterator[tuple[list[T], list[T]]]:
    """Both lists in chunks side by side (for `a IN (...) OR b IN (...)` queries); at least one pair."""
    count = max(1, -(-len(first) // size), -(-len(second) // size))
    for index in range(count):
        yield first[index * size:(index + 1) * size], second[index * size:(index + 1) * size]


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


@dataclass(frozen=True)
class Credentials:
    """What sign-in needs of an account."""

    account_id: str
    username: str
    password_hash: str | None
    status: AccountStatus
    two_factor: TwoFactor
    must_change_password: bool
    totp_secret: str | None
    totp_confirmed: bool
    totp_last_step: int


@dataclass(frozen=True)
class TokenRecord:
    id: str
    account_id: str
    username: str
    purpose: TokenPurpose
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class TotpState:
    secret: str
    confirmed: bool
    last_step: int


_TYPES = {t.value: t for t in AccountType}
_STATUSES = {s.value: s for s in AccountStatus}


def _expanding(column: Any, name: str) -> Any:
    """`column IN (?, ?, ...)`: one placeholder per value (SQLite)."""
    return column.in_(bindparam(name, expanding=True))


def _any(column: Any, name: str) -> Any:
    """`column = ANY(%s)` with one array parameter (PostgreSQL): the statement's text stays the same whatever the
    number of values, so the driver prepares it once instead of parsing thousands of placeholders each time."""
    return column == any_(bindparam(name, type_=postgresql.ARRAY(column.type)))


_a = AccountRecord.__table__.c
_c = RosterContactRecord.__table__.c
_l = AccountStudentRecord.__table__.c
_s = RosterStudentRecord.__table__.c
_sc = AccountSchoolRecord.__table__.c


def _snapshot_statements(member: Callable[[Any, str], Any]) -> dict[str, Any]:
    """The statements of a planning snapshot, with `member(column, name)` for "column is one of the values"."""
    return {
        "accounts": select(_a.id, _a.username, _a.username_key, _a.first_name, _a.last_name, _a.email, _a.email_key,
                           _a.type, _a.status, _a.must_change_password, _a.contact_id, _a.last_sign_in_at)
        .where(or_(member(_a.username_key, "usernames"), member(_a.email_key, "emails"))),
        "schools": select(_sc.account_id, _sc.school).where(member(_sc.account_id, "ids")),
        "links": select(_l.account_id, _l.student_id, _s.school)
        .outerjoin(RosterStudentRecord.__table__, _s.id == _l.student_id).where(member(_l.account_id, "ids")),
        "students": select(_s.id, _s.school).where(member(_s.id, "ids")),
        "contacts": select(_c.id, _c.email_key, _c.no_contact).where(or_(member(_c.id, "ids"),
                                                                          member(_c.email_key, "emails"))),
    }


# Built once per dialect.
_SNAPSHOTS = {"sqlite": {name: Lookup(statement) for name, statement in _snapshot_statements(_expanding).items()},
              "postgresql": {name: Lookup(statement) for name, statement in _snapshot_statements(_any).items()}}


class AccountStore:
    """Queries of the accounts service. Stateless: every method works in the session it is given."""

    # Idempotency ------------------------------------------------------------------------------------------------

    def find_reply(self, session: Session, request_id: str) -> tuple[str, str | None] | None:
        row = session.execute(select(IdempotencyRecord.method, IdempotencyRecord.reply)
                              .where(IdempotencyRecord.request_id == request_id)).first()
        return (row.method, row.reply) if row else None

    def claim_request(self, session: Session, request_id: str, method: str, now: datetime) -> None:
        """Take the request id for this transaction; a concurrent twin waits for it, then gets RequestClaimed."""
        try:
            session.execute(insert(IdempotencyRecord.__table__).values(
                request_id=request_id, method=method, reply=None, created_at=now))
        except IntegrityError as exc:
            raise RequestClaimed(request_id) from exc

    def save_reply(self, session: Session, request_id: str, reply: str) -> None:
        session.execute(update(IdempotencyRecord.__table__).where(IdempotencyRecord.request_id == request_id)
                        .values(reply=reply))

    def prune(self, session: Session, replies_before: datetime, now: datetime, idle_before: datetime) -> int:
        """Forget answers to request ids older than `replies_before`, and throttle counters neither locked nor
        touched since `idle_before`. Returns how many rows went."""
        t = ThrottleRecord
        gone = session.execute(delete(IdempotencyRecord.__table__)
                               .where(IdempotencyRecord.created_at < replies_before)).rowcount  # type: ignore[attr-defined]
        gone += session.execute(delete(t.__table__).where(
            or_(t.locked_until.is_(None), t.locked_until < now),
            or_(t.window_start.is_(None), t.window_start < idle_before))).rowcount  # type: ignore[attr-defined]
        return int(gone)

    # Audit ------------------------------------------------------------------------------------------------------

    def add_audit(self, session: Session, events: Sequence[Mapping[str, Any]]) -> None:
        if events:
            insert_many(session, AuditEventRecord.__table__, events)

    def list_audit(self, session: Session, target: str, actor_id: str, before_id: int | None,
                   limit: int) -> list[tuple[int, AuditEvent]]:
        query = select(AuditEventRecord).order_by(AuditEventRecord.id.desc()).limit(limit)
        if target:
            query = query.where(AuditEventRecord.target == target)
        if actor_id:
            query = query.where(AuditEventRecord.actor_id == actor_id)
        if before_id is not None:
            query = query.where(AuditEventRecord.id < before_id)
        return [(r.id, AuditEvent(r.time, r.actor_id, r.actor_name, r.action, r.target, r.request_id, r.detail))
                for r in session.scalars(query)]

    # Outbox -----------------------------------------------------------------------------------------------------

    def enqueue_emails(self, session: Session, emails: list[dict[str, Any]]) -> int:
        return enqueue_emails(session, accounts_outbox, emails)

    def enqueue_outbox_rows(self, session: Session, rows: list[dict[str, Any]]) -> int:
        """Rows made beforehand by `plumbing.outbox.outbox_rows`."""
        return enqueue_rows(session, accounts_outbox, rows)

    # Accounts: reading ------------------------------------------------------------------------------------------

    def _views(self, session: Session, records: Sequence[AccountRecord]) -> list[Account]:
        ids = [r.id for r in records]
        schools: dict[str, list[str]] = defaultdict(list)
        for chunk in _chunks(ids):
            for account_id, school in session.execute(
                    select(AccountSchoolRecord.account_id, AccountSchoolRecord.school)
                    .where(AccountSchoolRecord.account_id.in_(chunk)).order_by(AccountSchoolRecord.school)):
                schools[account_id].append(school)
        links = {account_id: tuple(StudentLink(student_id, decode_permissions(permissions), school)
                                   for student_id, permissions, school in found)
                 for account_id, found in links_of(session, ids).items()}
        return [
            Account(
                id=r.id, username=r.username, first_name=r.first_name, last_name=r.last_name, email=r.email,
                type=AccountType(r.type), status=AccountStatus(r.status), schools=tuple(schools[r.id]),
                role=r.role, must_change_password=r.must_change_password, two_factor=TwoFactor(r.two_factor),
                has_password=r.password_hash is not None,
                student_ids=tuple(link.student_id for link in links.get(r.id, ())),
                contact_id=r.contact_id, created_at=r.created_at, updated_at=r.updated_at,
                last_sign_in_at=r.last_sign_in_at, links=links.get(r.id, ()),
            )
            for r in records
        ]

    def account(self, session: Session, account_id: str) -> Account | None:
        record = session.get(AccountRecord, account_id, populate_existing=True)
        return self._views(session, [record])[0] if record else None

    def account_by_username(self, session: Session, username: str) -> Account | None:
        record = session.scalars(select(AccountRecord)
                                 .where(AccountRecord.username_key == rules.username_key(username))).first()
        return self._views(session, [record])[0] if record else None

    def accounts_by_usernames(self, session: Session, usernames: Iterable[str]) -> dict[str, Account]:
        """The accounts of these usernames (any case), by lower-cased username."""
        keys = sorted({rules.username_key(u) for u in usernames})
        found: dict[str, Account] = {}
        for chunk in _chunks(keys):
            records = list(session.scalars(select(AccountRecord).where(AccountRecord.username_key.in_(chunk))))
            found.update({a.username.lower(): a for a in self._views(session, records)})
        return found

    def account_by_email(self, session: Session, email: str) -> Account | None:
        record = session.scalars(select(AccountRecord).where(AccountRecord.email_key == rules.email_key(email))
                                 .order_by(AccountRecord.username_key)).first()
        return self._views(session, [record])[0] if record else None

    def email_owner(self, session: Session, email: str, except_id: str = "") -> str | None:
        """Username of an account (other than `except_id`) holding this email, compared case-insensitively."""
        query = select(AccountRecord.username).where(AccountRecord.email_key == rules.email_key(email))
        if except_id:
            query = query.where(AccountRecord.id != except_id)
        return session.scalars(query.limit(1)).first()

    def _filtered(self, query: Any, where: AccountFilter) -> Any:
        conditions: list[ColumnElement[bool]] = []
        if where.type is not None:
            conditions.append(AccountRecord.type == where.type.value)
        if where.status is not None:
            conditions.append(AccountRecord.status == where.status.value)
        if where.last_name_prefix:
            conditions.append(AccountRecord.last_name_key.like(_like_prefix(where.last_name_prefix.lower()),
                                                               escape="\\"))
        if where.never_signed_in:
            conditions.append(AccountRecord.last_sign_in_at.is_(None))
        if where.usernames:
            conditions.append(AccountRecord.username_key.in_([rules.username_key(u) for u in where.usernames]))
        if where.linked_student_id:
            conditions.append(exists().where(AccountStudentRecord.account_id == AccountRecord.id,
                                             AccountStudentRecord.student_id == where.linked_student_id))
        student_conditions = []
        if where.group:
            student_conditions.append(RosterStudentRecord.group_key == where.group.strip().lower())
        if where.grad_year:
            student_conditions.append(RosterStudentRecord.grad_year == where.grad_year)
        if student_conditions:
            conditions.append(exists().where(AccountStudentRecord.account_id == AccountRecord.id,
                                             AccountStudentRecord.student_id == RosterStudentRecord.id,
                                             *student_conditions))
        if where.school:
            key = where.school.strip().lower()
            conditions.append(or_(
                exists().where(AccountSchoolRecord.account_id == AccountRecord.id,
                               AccountSchoolRecord.school_key == key),
                exists().where(AccountStudentRecord.account_id == AccountRecord.id,
                               AccountStudentRecord.student_id == RosterStudentRecord.id,
                               RosterStudentRecord.school_key == key),
            ))
        return query.where(*conditions) if conditions else query

    def matching(self, query: Any, where: AccountFilter) -> Any:
        """`query` (a select over accounts) narrowed to the accounts matching `where`: for callers that stream or
        page a selection their own way (bulk resets, usage reports)."""
        return self._filtered(query, where)

    def list_accounts(self, session: Session, where: AccountFilter, after_key: str | None,
                      limit: int) -> tuple[list[Account], int]:
        """One page in username order (after `after_key`), and how many accounts match in all."""
        total = session.scalar(self._filtered(select(func.count()).select_from(AccountRecord), where)) or 0
        query = self._filtered(select(AccountRecord), where).order_by(AccountRecord.username_key).limit(limit)
        if after_key is not None:
            query = query.where(AccountRecord.username_key > after_key)
        return self._views(session, list(session.scalars(query))), int(total)

    def credentials(self, session: Session, username: str) -> Credentials | None:
        row = session.execute(
            select(AccountRecord.id, AccountRecord.username, AccountRecord.password_hash, AccountRecord.status,
                   AccountRecord.two_factor, AccountRecord.must_change_password, TotpSecretRecord.secret,
                   TotpSecretRecord.confirmed_at, TotpSecretRecord.last_step)
            .outerjoin(TotpSecretRecord, TotpSecretRecord.account_id == AccountRecord.id)
            .where(AccountRecord.username_key == rules.username_key(username))).first()
        if row is None:
            return None
        return Credentials(row.id, row.username, row.password_hash, AccountStatus(row.status),
                           TwoFactor(row.two_factor), row.must_change_password, row.secret,
                           row.confirmed_at is not None, row.last_step or 0)

    # Accounts: writing ------------------------------------------------------------------------------------------

    def insert_accounts(self, session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
        """Bulk insert; a username taken meanwhile (the unique index on its lower-cased form) is UsernameTaken."""
        if not rows:
            return
        try:
            insert_many(session, AccountRecord.__table__, rows)
        except IntegrityError as exc:
            if "username_key" in str(exc.orig):
                raise UsernameTaken(str(exc.orig)) from exc
            raise

    def update_account(self, session: Session, account_id: str, values: Mapping[str, Any]) -> None:
        try:
            session.execute(update(AccountRecord.__table__).where(AccountRecord.id == account_id).values(**values))
        except IntegrityError as exc:
            if "username_key" in str(exc.orig):
                raise UsernameTaken(str(exc.orig)) from exc
            raise

    def update_accounts(self, session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
        """Bulk update by primary key: each row holds `id` and the columns it changes."""
        by_shape: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            by_shape[tuple(sorted(row))].append({("b_" + k): v for k, v in row.items()})
        table = AccountRecord.__table__
        for shape, batch in by_shape.items():
            statement = update(table).where(table.c.id == bindparam("b_id")).values(
                {name: bindparam("b_" + name) for name in shape if name != "id"})
            session.execute(statement, batch)

    def delete_accounts(self, session: Session, account_ids: Sequence[str]) -> None:
        """Delete accounts with their links, schools, tokens and two-factor secrets. Sign-ins stay (the usage
        history), detached from the account."""
        for chunk in _chunks(account_ids):
            session.execute(update(SignInRecord.__table__).where(SignInRecord.account_id.in_(chunk))
                            .values(account_id=None))
            for model in (AccountStudentRecord, AccountSchoolRecord, SetPasswordTokenRecord, TotpSecretRecord,
                          RecoveryCodeRecord):
                session.execute(delete(model.__table__).where(model.__table__.c.account_id.in_(chunk)))
            session.execute(delete(AccountRecord.__table__).where(AccountRecord.id.in_(chunk)))

    def _insert_ignoring_duplicates(self, session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        insert_many(session, table, rows, ignore_duplicates=True)

    def add_schools(self, session: Session, pairs: Iterable[tuple[str, str]]) -> None:
        rows = [{"account_id": a, "school": s, "school_key": s.lower()} for a, s in pairs]
        self._insert_ignoring_duplicates(session, AccountSchoolRecord.__table__, rows)

    def remove_schools(self, session: Session, account_id: str, schools: Sequence[str]) -> None:
        if schools:
            session.execute(delete(AccountSchoolRecord.__table__).where(
                AccountSchoolRecord.account_id == account_id, AccountSchoolRecord.school.in_(list(schools))))

    def add_links(self, session: Session, pairs: Iterable[tuple[str, str]], now: datetime,
                  snapshot: Snapshot | None = None) -> None:
        """New links with their school's default permissions; a link that exists keeps its own. A batch passes
        its snapshot, which knows the students' schools and the policies."""
        pairs = list(pairs)
        if not pairs:
            return
        known, book = (snapshot.student_schools, snapshot.policies) if snapshot is not None else (None, None)
        defaults = default_link_permissions(session, {s for _, s in pairs}, known, book)
        rows = [{"account_id": a, "student_id": s, "created_at": now,
                 "permissions": defaults.get(s, ALL_PERMISSIONS)} for a, s in pairs]
        self._insert_ignoring_duplicates(session, AccountStudentRecord.__table__, rows)

    def remove_links(self, session: Session, account_id: str, student_ids: Sequence[str]) -> None:
        self.remove_link_pairs(session, [(account_id, s) for s in student_ids])

    def remove_link_pairs(self, session: Session, pairs: Sequence[tuple[str, str]]) -> None:
        """Remove (account id, student id) links, set-based."""
        link = AccountStudentRecord
        for chunk in _chunks(pairs):
            session.execute(delete(link.__table__).where(tuple_(link.account_id, link.student_id).in_(chunk)))

    # Planning ---------------------------------------------------------------------------------------------------

    def snapshot(self, session: Session, lookups: Lookups) -> Snapshot:
        """Everything planning needs about the keys a batch mentions, in five set-based queries. This is the hot
        path of a trial run: statements built once per dialect (`_SNAPSHOTS`), run as `Lookup`s on the session's
        connection (raw rows on SQLite)."""
        connection = session.connection()
        statements = _SNAPSHOTS[connection.dialect.name]
        usernames, emails = sorted(lookups.username_keys), sorted(lookups.email_keys)
        found: dict[str, Any] = {}
        for users, mails in _chunk_pairs(usernames, emails):
            for row in statements["accounts"].rows(connection, {"usernames": users, "emails": mails}):
                found[row[0]] = row
        email_owners: dict[str, list[str]] = defaultdict(list)
        known = []
        for row in found.values():
            if row[6] and row[6] in lookups.email_keys:
                email_owners[row[6]].append(row[1])
            if row[2] in lookups.username_keys:
                known.append(row)
        schools: dict[str, set[str]] = defaultdict(set)
        links: dict[str, set[str]] = defaultdict(set)
        linked_schools: dict[str, set[str]] = defaultdict(set)
        for chunk in _chunks([row[0] for row in known]):
            for account_id, school in statements["schools"].rows(connection, {"ids": chunk}):
                schools[account_id].add(school)
            for account_id, student_id, school in statements["links"].rows(connection, {"ids": chunk}):
                links[account_id].add(student_id)
                if school:
                    linked_schools[account_id].add(school)
        accounts = {
            row[2]: KnownAccount(
                id=row[0], username=row[1], first_name=row[3], last_name=row[4], email=row[5],
                type=_TYPES[row[7]], status=_STATUSES[row[8]], must_change_password=bool(row[9]),
                contact_id=row[10], signed_in=row[11] is not None, schools=frozenset(schools.get(row[0], ())),
                student_ids=frozenset(links.get(row[0], ())),
                student_schools=frozenset(linked_schools.get(row[0], ())))
            for row in known}

        students: dict[str, str] = {}
        for chunk in _chunks(sorted(lookups.student_ids)):
            students.update(statements["students"].rows(connection, {"ids": chunk}).all())

        contact_ids = sorted(set(lookups.contact_ids) | {k.contact_id for k in accounts.values() if k.contact_id})
        contacts: dict[str, KnownContact] = {}
        by_email: dict[str, list[str]] = defaultdict(list)
        for ids, mails in _chunk_pairs(contact_ids, emails):
            for contact_id, email, no_contact in statements["contacts"].rows(connection,
                                                                             {"ids": ids, "emails": mails}):
                if contact_id not in contacts:
                    contacts[contact_id] = KnownContact(contact_id, email, bool(no_contact))
                    if email and email in lookups.email_keys:
                        by_email[email].append(contact_id)
        return Snapshot(
            accounts=accounts, email_owners={k: tuple(v) for k, v in email_owners.items()},
            students=frozenset(students), contacts=contacts,
            contacts_by_email={k: tuple(sorted(v)) for k, v in by_email.items()},
            student_schools=students, policies=load_book(session),
        )

    # Roster -----------------------------------------------------------------------------------------------------

    def existing_students(self, session: Session, ids: Iterable[str]) -> dict[str, Student]:
        found: dict[str, Student] = {}
        for chunk in _chunks(sorted(set(ids))):
            for r in session.scalars(select(RosterStudentRecord).where(RosterStudentRecord.id.in_(chunk))):
                found[r.id] = Student(r.id, r.first_name, r.last_name, r.grad_year, r.group, r.school, r.status)
        return found

    def existing_contacts(self, session: Session, ids: Iterable[str]) -> dict[str, Contact]:
        found: dict[str, Contact] = {}
        for chunk in _chunks(sorted(set(ids))):
            for r in session.scalars(select(RosterContactRecord).where(RosterContactRecord.id.in_(chunk))):
                found[r.id] = Contact(r.id, r.first_name, r.last_name, r.email, r.phone, r.address, r.no_contact)
        return found

    def existing_relationships(self, session: Session,
                               pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Relationship]:
        found: dict[tuple[str, str], Relationship] = {}
        r = RosterRelationshipRecord
        for chunk in _chunks(sorted(set(pairs))):
            for rec in session.scalars(select(r).where(tuple_(r.student_id, r.contact_id).in_(chunk))):
                found[(rec.student_id, rec.contact_id)] = Relationship(
                    rec.student_id, rec.contact_id, rec.relationship, rec.parental_responsibility, rec.is_primary)
        return found

    @staticmethod
    def _student_columns(student: Student) -> dict[str, Any]:
        return {"id": student.id, "first_name": student.first_name, "last_name": student.last_name,
                "last_name_key": student.last_name.lower(), "grad_year": student.grad_year, "group": student.group,
                "group_key": student.group.lower(), "school": student.school, "school_key": student.school.lower(),
                "status": student.status}

    @staticmethod
    def _contact_columns(contact: Contact) -> dict[str, Any]:
        return {"id": contact.id, "first_name": contact.first_name, "last_name": contact.last_name,
                "email": contact.email, "email_key": rules.email_key(contact.email), "phone": contact.phone,
                "address": contact.address, "no_contact": contact.no_contact}

    @staticmethod
    def _relationship_columns(link: Relationship) -> dict[str, Any]:
        return {"student_id": link.student_id, "contact_id": link.contact_id, "relationship": link.relationship,
                "parental_responsibility": link.parental_responsibility, "is_primary": link.primary}

    def _upsert(self, session: Session, table: Table, new: list[dict[str, Any]], changed: list[dict[str, Any]],
                keys: Sequence[str]) -> None:
        if new:
            session.execute(insert(table), new)
        if changed:
            columns = [c for c in changed[0] if c not in keys]
            statement = update(table).where(*[table.c[k] == bindparam("k_" + k) for k in keys]).values(
                {c: bindparam("v_" + c) for c in columns})
            session.execute(statement, [{**{"k_" + k: row[k] for k in keys},
                                         **{"v_" + c: row[c] for c in columns}} for row in changed])

    def save_roster(self, session: Session, now: datetime,
                    students: tuple[Sequence[Student], Sequence[Student]],
                    contacts: tuple[Sequence[Contact], Sequence[Contact]],
                    relationships: tuple[Sequence[Relationship], Sequence[Relationship]]) -> None:
        """Insert the new and update the changed records ((new, changed) pairs); nothing is ever deleted."""
        new_s, changed_s = students
        self._upsert(session, RosterStudentRecord.__table__,
                     [{**self._student_columns(s), "created_at": now, "updated_at": now} for s in new_s],
                     [{**self._student_columns(s), "updated_at": now} for s in changed_s], ["id"])
        new_c, changed_c = contacts
        self._upsert(session, RosterContactRecord.__table__,
                     [{**self._contact_columns(c), "created_at": now, "updated_at": now} for c in new_c],
                     [{**self._contact_columns(c), "updated_at": now} for c in changed_c], ["id"])
        new_r, changed_r = relationships
        self._upsert(session, RosterRelationshipRecord.__table__,
                     [{**self._relationship_columns(r), "updated_at": now} for r in new_r],
                     [{**self._relationship_columns(r), "updated_at": now} for r in changed_r],
                     ["student_id", "contact_id"])

    def _selected_students(self, selector: StudentSelector) -> list[ColumnElement[bool]]:
        s = RosterStudentRecord
        value = selector.value.strip().lower()
        conditions: list[ColumnElement[bool]] = []
        if selector.kind == "school":
            conditions.append(s.school_key == value)
        elif selector.kind == "group":
            conditions.append(s.group_key == value)
        elif selector.kind == "grad_year":
            conditions.append(s.grad_year == int(selector.value))
        elif selector.kind == "last_name_prefix":
            conditions.append(s.last_name_key.like(_like_prefix(value), escape="\\"))
        elif selector.kind == "usernames":
            keys = [rules.username_key(u) for u in selector.usernames]
            conditions.append(exists().where(AccountStudentRecord.student_id == s.id,
                                             AccountStudentRecord.account_id == AccountRecord.id,
                                             AccountRecord.username_key.in_(keys)))
        if selector.never_signed_in:
            conditions.append(exists().where(AccountStudentRecord.student_id == s.id,
                                             AccountStudentRecord.account_id == AccountRecord.id,
                                             AccountRecord.last_sign_in_at.is_(None)))
        return conditions

    def search_students(self, session: Session, selector: StudentSelector, student_id: str, contact_id: str,
                        contact_email: str, after: tuple[str, str] | None,
                        limit: int) -> tuple[list[Student], int]:
        s = RosterStudentRecord
        conditions = self._selected_students(selector)
        if student_id:
            conditions.append(s.id == student_id)
        if contact_id or contact_email:
            related = [RosterRelationshipRecord.student_id == s.id]
            if contact_id:
                related.append(RosterRelationshipRecord.contact_id == contact_id)
            if contact_email:
                related += [RosterRelationshipRecord.contact_id == RosterContactRecord.id,
                            RosterContactRecord.email_key == rules.email_key(contact_email)]
            conditions.append(exists().where(*related))
        total = session.scalar(select(func.count()).select_from(s).where(*conditions)) or 0
        query = select(s).where(*conditions).order_by(s.last_name_key, s.id).limit(limit)
        if after is not None:
            query = query.where(tuple_(s.last_name_key, s.id) > tuple_(*after))
        students = [Student(r.id, r.first_name, r.last_name, r.grad_year, r.group, r.school, r.status)
                    for r in session.scalars(query)]
        return students, int(total)

    def student_contacts(self, session: Session, student_ids: Sequence[str]) -> dict[str, list[StudentContact]]:
        """Each student's contacts with the relationship, and the username of the account made for the contact."""
        r, c = RosterRelationshipRecord, RosterContactRecord
        found: dict[str, list[StudentContact]] = defaultdict(list)
        rows = []
        for chunk in _chunks(student_ids):
            rows += list(session.execute(select(r, c).join(c, c.id == r.contact_id)
                                         .where(r.student_id.in_(chunk)).order_by(r.student_id, c.last_name, c.id)))
        contact_ids = sorted({row[1].id for row in rows})
        usernames: dict[str, str] = {}
        for chunk in _chunks(contact_ids):
            for contact_id, username in session.execute(
                    select(AccountRecord.contact_id, AccountRecord.username)
                    .where(AccountRecord.contact_id.in_(chunk)).order_by(AccountRecord.username_key)):
                usernames.setdefault(contact_id, username)
        for rel, con in rows:
            contact = Contact(con.id, con.first_name, con.last_name, con.email, con.phone, con.address, con.no_contact)
            found[rel.student_id].append(StudentContact(contact, rel.relationship, rel.parental_responsibility,
                                                        rel.is_primary, usernames.get(con.id, "")))
        return found

    def contact(self, session: Session, contact_id: str) -> Contact | None:
        return self.existing_contacts(session, [contact_id]).get(contact_id)

    def contacts_by_email(self, session: Session, email: str) -> list[Contact]:
        found = session.scalars(select(RosterContactRecord.id)
                                .where(RosterContactRecord.email_key == rules.email_key(email)))
        return list(self.existing_contacts(session, found).values())

    # Set-password tokens ----------------------------------------------------------------------------------------

    def revoke_tokens(self, session: Session, account_ids: Sequence[str], purpose: TokenPurpose | None,
                      now: datetime) -> None:
        """Revoke the accounts' unused tokens (of one purpose, or all)."""
        t = SetPasswordTokenRecord
        for chunk in _chunks(account_ids):
            conditions = [t.account_id.in_(chunk), t.used_at.is_(None), t.revoked_at.is_(None)]
            if purpose is not None:
                conditions.append(t.purpose == purpose.value)
            session.execute(update(t.__table__).where(*conditions).values(revoked_at=now))

    def insert_tokens(self, session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
        """Rows of id, account_id, purpose, token_hash, created_at, expires_at."""
        if rows:
            insert_many(session, SetPasswordTokenRecord.__table__, rows)

    def token(self, session: Session, token_hash: str) -> TokenRecord | None:
        t = SetPasswordTokenRecord
        row = session.execute(select(t, AccountRecord.username).join(AccountRecord, AccountRecord.id == t.account_id)
                              .where(t.token_hash == token_hash)).first()
        if row is None:
            return None
        rec = row[0]
        return TokenRecord(rec.id, rec.account_id, row.username, TokenPurpose(rec.purpose), rec.expires_at,
                           rec.used_at, rec.revoked_at)

    def use_token(self, session: Session, token_id: str, now: datetime) -> bool:
        """Mark a token used; False when someone else used (or revoked) it first."""
        t = SetPasswordTokenRecord
        result = session.execute(update(t.__table__).where(t.id == token_id, t.used_at.is_(None),
                                                           t.revoked_at.is_(None)).values(used_at=now))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    # Sign-ins and throttling ------------------------------------------------------------------------------------

    def record_sign_in(self, session: Session, account_id: str | None, username: str, now: datetime,
                       success: bool, outcome: str, source: str) -> None:
        session.execute(insert(SignInRecord.__table__).values(
            account_id=account_id, username_key=rules.username_key(username)[:150], time=now, success=success,
            outcome=outcome, source=source[:100]))

    def list_sign_ins(self, session: Session, username: str, start: datetime | None, end: datetime | None,
                      successful_only: bool, before: tuple[datetime, int] | None,
                      limit: int) -> list[tuple[int, SignIn]]:
        s = SignInRecord
        query = (select(s.id, s.time, s.success, s.source, s.username_key, AccountRecord.username)
                 .outerjoin(AccountRecord, AccountRecord.id == s.account_id)
                 .order_by(s.time.desc(), s.id.desc()).limit(limit))
        if username:
            # The account's sign-ins under any of its names, and attempts on that name by no current account.
            key = rules.username_key(username)
            holder = select(AccountRecord.id).where(AccountRecord.username_key == key).scalar_subquery()
            query = query.where(or_(s.account_id == holder, and_(s.account_id.is_(None), s.username_key == key)))
        if start is not None:
            query = query.where(s.time >= start)
        if end is not None:
            query = query.where(s.time < end)
        if successful_only:
            query = query.where(s.success.is_(True))
        if before is not None:
            query = query.where(or_(s.time < before[0], and_(s.time == before[0], s.id < before[1])))
        return [(row.id, SignIn(row.username or row.username_key, row.time, row.success, row.source))
                for row in session.execute(query)]

    def signed_in(self, session: Session, account_id: str, now: datetime, activate: bool,
                  new_hash: str | None) -> None:
        values: dict[str, Any] = {"last_sign_in_at": now}
        if activate:
            values["status"] = AccountStatus.ACTIVE.value
        if new_hash is not None:
            values["password_hash"] = new_hash
        session.execute(update(AccountRecord.__table__).where(AccountRecord.id == account_id).values(**values))

    def counters(self, session: Session, keys: Sequence[str], lock: bool = False) -> dict[str, Counter]:
        """Throttle counters of the keys (zero when absent); `lock` holds them until the transaction ends."""
        if lock:
            self._insert_ignoring_duplicates(session, ThrottleRecord.__table__,
                                             [{"key": k, "failures": 0} for k in keys])
        query = select(ThrottleRecord).where(ThrottleRecord.key.in_(list(keys)))
        if lock:
            query = query.with_for_update()
        found = {r.key: Counter(r.failures, r.window_start, r.locked_until)
                 for r in session.scalars(query.execution_options(populate_existing=True))}
        return {k: found.get(k, Counter()) for k in keys}

    def save_counters(self, session: Session, counters: Mapping[str, Counter]) -> None:
        for key, counter in counters.items():
            session.execute(update(ThrottleRecord.__table__).where(ThrottleRecord.key == key).values(
                failures=counter.failures, window_start=counter.window_start, locked_until=counter.locked_until))

    # Two-factor -------------------------------------------------------------------------------------------------

    def totp(self, session: Session, account_id: str) -> TotpState | None:
        row = session.get(TotpSecretRecord, account_id, populate_existing=True)
        return TotpState(row.secret, row.confirmed_at is not None, row.last_step) if row else None

    def start_enrolment(self, session: Session, account_id: str, secret: str, code_hashes: Sequence[str],
                        now: datetime) -> None:
        """A pending secret (replacing any earlier pending one) and fresh recovery codes."""
        session.execute(delete(TotpSecretRecord.__table__).where(TotpSecretRecord.account_id == account_id))
        session.execute(insert(TotpSecretRecord.__table__).values(
            account_id=account_id, secret=secret, confirmed_at=None, created_at=now, last_step=0))
        session.execute(delete(RecoveryCodeRecord.__table__).where(RecoveryCodeRecord.account_id == account_id))
        session.execute(insert(RecoveryCodeRecord.__table__),
                        [{"account_id": account_id, "code_hash": h, "used_at": None} for h in code_hashes])

    def confirm_enrolment(self, session: Session, account_id: str, step: int, now: datetime) -> None:
        session.execute(update(TotpSecretRecord.__table__).where(TotpSecretRecord.account_id == account_id)
                        .values(confirmed_at=now, last_step=step))

    def use_totp_step(self, session: Session, account_id: str, step: int) -> bool:
        """Record the step of an accepted code; False when that step (or a later one) was used already."""
        t = TotpSecretRecord
        result = session.execute(update(t.__table__).where(t.account_id == account_id, t.last_step < step)
                                 .values(last_step=step))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def use_recovery_code(self, session: Session, account_id: str, code_hash: str, now: datetime) -> bool:
        r = RecoveryCodeRecord
        result = session.execute(update(r.__table__).where(r.account_id == account_id, r.code_hash == code_hash,
                                                           r.used_at.is_(None)).values(used_at=now))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def remove_two_factor(self, session: Session, account_id: str) -> None:
        session.execute(delete(TotpSecretRecord.__table__).where(TotpSecretRecord.account_id == account_id))
        session.execute(delete(RecoveryCodeRecord.__table__).where(RecoveryCodeRecord.account_id == account_id))
