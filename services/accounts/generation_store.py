"""The SQL of generating accounts from the roster: the snapshot a plan is made from (set-based: the selection as a
subquery, or IN lists in chunks, never a query per student), the re-check of a chunk before it is written, the
guardians' invitations and their lifecycle, auto-generation's pending roster changes, and plan records.

Methods take the caller's session, like the rest of the service's store (which this extends).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, delete, func, insert, literal, or_, select, true, update
from sqlalchemy.orm import Session

from plumbing.jobs import CANCELLED, SUCCEEDED
from services.accounts.domain import AccountStatus, AccountType, StudentSelector, TokenPurpose
from services.accounts.generation_rules import (
    ExistingAccount,
    RosterContact,
    RosterLink,
    RosterSnapshot,
    RosterStudent,
)
from services.accounts.models import (
    AccountRecord,
    AccountSchoolRecord,
    AccountStudentRecord,
    AutogeneratePendingRecord,
    RosterContactRecord,
    RosterRelationshipRecord,
    RosterStudentRecord,
    SetPasswordTokenRecord,
    accounts_jobs,
    accounts_outbox,
)
from services.accounts.setpassword import link_email_key
from services.accounts.store import AccountStore, _chunk_pairs, _chunks

_s = RosterStudentRecord.__table__.c
_r = RosterRelationshipRecord.__table__.c
_c = RosterContactRecord.__table__.c
_a = AccountRecord.__table__.c
_l = AccountStudentRecord.__table__.c
_t = SetPasswordTokenRecord.__table__.c
_p = AutogeneratePendingRecord.__table__.c
# Beyond this many first-initial + last-name bases, reading every username once is cheaper than LIKE queries.
PREFIX_QUERY_LIMIT = 200
# The advisory lock generation runs take on PostgreSQL (an arbitrary constant of this service).
GENERATION_LOCK = 7_101_001
INVITATION_KEY_PREFIX = link_email_key(TokenPurpose.INVITATION, "")
PREFIXES_PER_QUERY = 50


@dataclass(frozen=True)
class Scope:
    """Which students a plan looks at: by selector, or explicit ids (auto-generation), optionally only some of
    their relationships (student id, contact id)."""

    selector: StudentSelector | None = None
    student_ids: tuple[str, ...] = ()
    pairs: frozenset[tuple[str, str]] | None = None


@dataclass(frozen=True)
class InvitationRow:
    """A parent account with its latest invitation link (token fields None when it never had one)."""

    account_id: str
    username: str
    first_name: str
    last_name: str
    email: str
    status: str
    signed_in: bool
    school: str
    token_id: str | None
    issued_at: datetime | None
    expires_at: datetime | None
    used: bool
    # The invitation's email: in the outbox (emailed), and handed to notify.
    emailed: bool
    handed_over: bool

    @property
    def email_key(self) -> str:
        return link_email_key(TokenPurpose.INVITATION, self.token_id) if self.token_id else ""


@dataclass(frozen=True)
class ExpiringInvitation:
    token_id: str
    username: str
    first_name: str
    email: str
    school: str
    issued_at: datetime
    expires_at: datetime


def _student_row(row: Any) -> RosterStudent:
    return RosterStudent(row[0], row[1], row[2], row[3], row[4], row[5])


def _contact_row(row: Any) -> RosterContact:
    return RosterContact(row[0], row[1], row[2], row[3], row[4], row[5], bool(row[6]))


_STUDENT_COLUMNS = (_s.id, _s.first_name, _s.last_name, _s.grad_year, _s.group, _s.school)
_LINK_COLUMNS = (_r.student_id, _r.contact_id, _r.relationship, _r.parental_responsibility, _r.is_primary)
_CONTACT_COLUMNS = (_c.id, _c.first_name, _c.last_name, _c.email, _c.phone, _c.address, _c.no_contact)
_ACCOUNT_COLUMNS = (_a.id, _a.username, _a.first_name, _a.last_name, _a.email_key, _a.type, _a.contact_id)


class GenerationStore(AccountStore):
    """Queries of generation, the roster dashboard and invitations (the service's store, extended)."""

    # The snapshot -----------------------------------------------------------------------------------------------

    def roster_snapshot(self, session: Session, scope: Scope) -> RosterSnapshot:
        """Everything a plan needs, set-based: the students, their relationships and contacts, every contact
        sharing an email with those, the accounts of all of them (by contact id or email) with their links, and
        which candidate usernames (emails) are taken. A selector's students stay a subquery all the way (a
        semi-join per table); explicit students (auto-generation, usually few) go as IN lists in chunks."""
        connection = session.connection()
        students: dict[str, RosterStudent] = {}
        links: list[RosterLink] = []
        contact_ids: Source
        if scope.selector is not None:
            conditions = self._selected_students(scope.selector)
            for row in connection.execute(select(*_STUDENT_COLUMNS).where(*conditions).order_by(_s.id)).all():
                students[row[0]] = _student_row(row)
            selected = select(_s.id).where(*conditions) if conditions else None
            # In the primary key's order: a student's lines together, at no cost.
            query = select(*_LINK_COLUMNS).order_by(_r.student_id, _r.contact_id)
            if selected is not None:
                query = query.where(_r.student_id.in_(selected))
            links = [RosterLink(*row) for row in connection.execute(query).all()]
            contact_ids = None if selected is None else select(_r.contact_id).where(_r.student_id.in_(selected))
        else:
            for chunk in _chunks(sorted(set(scope.student_ids))):
                for row in connection.execute(select(*_STUDENT_COLUMNS).where(_s.id.in_(chunk))):
                    students[row[0]] = _student_row(row)
                links += [RosterLink(*row) for row in connection.execute(
                    select(*_LINK_COLUMNS).where(_r.student_id.in_(chunk)))]
            if scope.pairs is not None:
                links = [link for link in links if (link.student_id, link.contact_id) in scope.pairs]
            links.sort(key=lambda link: (link.student_id, link.contact_id))
            students = dict(sorted(students.items()))
            contact_ids = sorted({link.contact_id for link in links})
        contacts, emails = self._contacts(connection, contact_ids)
        accounts, taken = self._accounts(connection, contact_ids, emails, contacts)
        return RosterSnapshot(students, links, contacts, accounts, taken)

    def _contacts(self, connection: Any, contact_ids: Source) -> tuple[dict[str, RosterContact], Source]:
        """The contacts, and every other contact sharing an email with one of them; and their emails."""
        contacts: dict[str, RosterContact] = {}
        for condition in _conditions(_c.id, contact_ids):
            for row in connection.execute(select(*_CONTACT_COLUMNS).where(condition)).all():
                contacts[row[0]] = _contact_row(row)
        if contact_ids is None:
            return contacts, None
        emails: Source
        if isinstance(contact_ids, list):
            emails = sorted({c.email.strip().lower() for c in contacts.values() if c.email.strip()})
        else:
            emails = select(_c.email_key).where(_c.id.in_(contact_ids), _c.email_key != "")
        for condition in _conditions(_c.email_key, emails):
            for row in connection.execute(select(*_CONTACT_COLUMNS).where(condition)):
                contacts.setdefault(row[0], _contact_row(row))
        return contacts, emails

    def _accounts(self, connection: Any, contact_ids: Source, emails: Source,
                  contacts: dict[str, RosterContact]) -> tuple[list[ExistingAccount], set[str]]:
        """The accounts made for these contacts or holding their emails, with their links; and which of the
        contacts' emails are taken as usernames."""
        found: dict[str, ExistingAccount] = {}
        if isinstance(contact_ids, list):
            ids = sorted(contacts)
            for condition in (*_conditions(_a.contact_id, ids), *_conditions(_a.email_key, emails)):
                for row in connection.execute(select(*_ACCOUNT_COLUMNS).where(condition)):
                    found.setdefault(row[0], ExistingAccount(*row))
            link_conditions = list(_conditions(_l.account_id, sorted(found)))
        else:
            holding = None if contact_ids is None else or_(
                _a.contact_id.in_(contact_ids), _a.email_key.in_(emails),
                _a.contact_id.in_(select(_c.id).where(_c.email_key.in_(emails))))
            query = select(*_ACCOUNT_COLUMNS)
            for row in connection.execute(query if holding is None else query.where(holding)):
                if holding is not None or row[6] in contacts or row[4]:
                    found[row[0]] = ExistingAccount(*row)
            link_conditions = [_l.account_id.in_(select(_a.id).where(holding))] if holding is not None else [None]
        for condition in link_conditions:
            query = select(_l.account_id, _l.student_id)
            for account_id, student_id in connection.execute(query if condition is None else query.where(condition)):
                account = found.get(account_id)
                if account is not None:
                    account.student_ids.add(student_id)
        taken: set[str] = set()
        candidates: Source = emails if emails is not None else select(_c.email_key).where(_c.email_key != "")
        for condition in _conditions(_a.username_key, candidates):
            taken.update(connection.execute(select(_a.username_key).where(condition)).scalars())
        return list(found.values()), taken

    def usernames_with_prefixes(self, session: Session, bases: Iterable[str]) -> set[str]:
        """The username keys starting with any of these (lower-case) bases."""
        wanted = sorted(set(bases))
        if not wanted:
            return set()
        connection = session.connection()
        if len(wanted) > PREFIX_QUERY_LIMIT:
            return set(connection.execute(select(_a.username_key)).scalars())
        found: set[str] = set()
        for start in range(0, len(wanted), PREFIXES_PER_QUERY):
            part = wanted[start:start + PREFIXES_PER_QUERY]
            found.update(connection.execute(select(_a.username_key).where(
                or_(*(_a.username_key.like(_escape(base) + "%", escape="\\") for base in part)))).scalars())
        return found

    # The re-check before a chunk is written ---------------------------------------------------------------------

    def serialize_runs(self, session: Session) -> None:
        """Make generation chunks of every replica take turns (until this transaction ends), so a chunk's re-check
        sees what another run committed. SQLite's writers take turns anyway (BEGIN IMMEDIATE)."""
        if session.get_bind().dialect.name == "postgresql":
            session.execute(select(func.pg_advisory_xact_lock(GENERATION_LOCK)))

    def holders(self, session: Session, usernames: Sequence[str], emails: Sequence[str],
                contact_ids: Sequence[str]) -> tuple[set[str], set[str], set[str]]:
        """Of these username keys, email keys and contact ids: which accounts now hold (taken since the plan)."""
        taken, owned, made = set(), set(), set()
        connection = session.connection()
        for users, mails in _chunk_pairs(sorted(set(usernames)), sorted(set(emails))):
            for key, email in connection.execute(select(_a.username_key, _a.email_key).where(
                    or_(_a.username_key.in_(users), _a.email_key.in_(mails)))):
                taken.add(key)
                owned.add(email)
        for chunk in _chunks(sorted(set(contact_ids))):
            made.update(connection.execute(select(_a.contact_id).where(_a.contact_id.in_(chunk))).scalars())
        return taken, owned, made

    def existing_account_ids(self, session: Session, account_ids: Iterable[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(sorted(set(account_ids))):
            found.update(session.execute(select(_a.id).where(_a.id.in_(chunk))).scalars())
        return found

    def adopt_contacts(self, session: Session, pairs: Sequence[tuple[str, str]], now: datetime) -> None:
        """Remember the contact an account comes from, where it has none yet."""
        for account_id, contact_id in pairs:
            session.execute(update(AccountRecord.__table__).where(_a.id == account_id, _a.contact_id == "")
                            .values(contact_id=contact_id, updated_at=now))

    def touch(self, session: Session, account_ids: Sequence[str], now: datetime) -> None:
        for chunk in _chunks(sorted(set(account_ids))):
            session.execute(update(AccountRecord.__table__).where(_a.id.in_(chunk)).values(updated_at=now))

    # Invitations ------------------------------------------------------------------------------------------------

    def invitation_rows(self, session: Session, selector: StudentSelector | None, unaccepted_only: bool = False,
                        after: str = "", limit: int | None = None) -> list[InvitationRow]:
        """Parent accounts (linked to the selected students, or all) with their latest invitation, in username
        order (after the username key `after`, at most `limit`). `unaccepted_only`: only those never signed in
        whose invitation was not used, not disabled, with an email (whom a resend would reach)."""
        latest = (select(_t.id, _t.account_id, _t.created_at, _t.expires_at, _t.used_at,
                         func.row_number().over(partition_by=_t.account_id,
                                                order_by=(_t.created_at.desc(), _t.id.desc())).label("n"))
                  .where(_t.purpose == TokenPurpose.INVITATION.value).subquery())
        outbox = accounts_outbox.c
        school = (select(func.min(AccountSchoolRecord.__table__.c.school))
                  .where(AccountSchoolRecord.__table__.c.account_id == _a.id).scalar_subquery())
        query = (select(_a.id, _a.username, _a.first_name, _a.last_name, _a.email, _a.status,
                        _a.last_sign_in_at, school.label("school"), latest.c.id, latest.c.created_at,
                        latest.c.expires_at, latest.c.used_at, outbox.idempotency_key, outbox.relayed_at)
                 .select_from(AccountRecord.__table__)
                 .outerjoin(latest, and_(latest.c.account_id == _a.id, latest.c.n == 1))
                 .outerjoin(accounts_outbox, outbox.idempotency_key == literal(INVITATION_KEY_PREFIX) + latest.c.id)
                 .where(_a.type == AccountType.GUARDIAN.value)
                 .order_by(_a.username_key))
        if selector is not None:
            conditions = self._selected_students(selector)
            if selector.kind == "usernames":
                query = query.where(_a.username_key.in_([u.strip().lower() for u in selector.usernames]))
            elif conditions:
                query = query.where(_a.id.in_(select(_l.account_id).join(
                    RosterStudentRecord.__table__, _s.id == _l.student_id).where(*conditions)))
        if unaccepted_only:
            query = query.where(_a.last_sign_in_at.is_(None), _a.status != AccountStatus.DISABLED.value,
                                _a.email != "", latest.c.used_at.is_(None))
        if after:
            query = query.where(_a.username_key > after)
        if limit is not None:
            query = query.limit(limit)
        return [InvitationRow(row[0], row[1], row[2], row[3], row[4], row[5], row[6] is not None, row[7] or "",
                              row[8], row[9], row[10], row[11] is not None, row[12] is not None, row[13] is not None)
                for row in session.execute(query)]

    def expiring_invitations(self, session: Session, now: datetime, until: datetime) -> list[ExpiringInvitation]:
        """Emailed invitations still valid that expire before `until`, of parents who never signed in."""
        outbox = accounts_outbox.c
        school = (select(func.min(AccountSchoolRecord.__table__.c.school))
                  .where(AccountSchoolRecord.__table__.c.account_id == _a.id).scalar_subquery())
        query = (select(_t.id, _a.username, _a.first_name, _a.email, school, _t.created_at, _t.expires_at)
                 .join(AccountRecord.__table__, _a.id == _t.account_id)
                 .join(accounts_outbox, outbox.idempotency_key == literal(INVITATION_KEY_PREFIX) + _t.id)
                 .where(_t.purpose == TokenPurpose.INVITATION.value, _t.used_at.is_(None), _t.revoked_at.is_(None),
                        _t.expires_at > now, _t.expires_at <= until, _a.last_sign_in_at.is_(None),
                        _a.status != AccountStatus.DISABLED.value, _a.email != "")
                 .order_by(_t.expires_at))
        return [ExpiringInvitation(row[0], row[1], row[2], row[3], row[4] or "", row[5], row[6])
                for row in session.execute(query)]

    # Auto-generation --------------------------------------------------------------------------------------------

    def note_pending(self, session: Session, pairs: Iterable[tuple[str, str]], now: datetime) -> None:
        rows = [{"student_id": student_id, "contact_id": contact_id, "job_id": "", "created_at": now}
                for student_id, contact_id in pairs]
        for start in range(0, len(rows), 5000):
            session.execute(insert(AutogeneratePendingRecord.__table__), rows[start:start + 5000])

    def pending_ready(self, session: Session, quiet_since: datetime) -> int | None:
        """The last pending change when the newest one is older than `quiet_since` (the roster has been quiet),
        else None."""
        row = session.execute(select(func.max(_p.id), func.max(_p.created_at)).where(_p.job_id == "")).first()
        if row is None or row[0] is None or row[1] > quiet_since:
            return None
        return int(row[0])

    def claim_pending(self, session: Session, up_to: int, job_id: str) -> int:
        result = session.execute(update(AutogeneratePendingRecord.__table__)
                                 .where(_p.job_id == "", _p.id <= up_to).values(job_id=job_id))
        return int(result.rowcount)  # type: ignore[attr-defined]

    def pending_scope(self, session: Session, job_id: str) -> Scope:
        """The students and relationships a claim covers: its pairs, and every relationship of its contacts."""
        pairs: set[tuple[str, str]] = set()
        contacts: set[str] = set()
        for student_id, contact_id in session.execute(select(_p.student_id, _p.contact_id)
                                                      .where(_p.job_id == job_id)):
            if student_id:
                pairs.add((student_id, contact_id))
            else:
                contacts.add(contact_id)
        for chunk in _chunks(sorted(contacts)):
            pairs.update((student_id, contact_id) for student_id, contact_id in session.execute(
                select(_r.student_id, _r.contact_id).where(_r.contact_id.in_(chunk))))
        return Scope(student_ids=tuple(sorted({s for s, _ in pairs})), pairs=frozenset(pairs))

    def drop_pending(self, session: Session, job_id: str) -> None:
        session.execute(delete(AutogeneratePendingRecord.__table__).where(_p.job_id == job_id))

    # Plan records (jobs of kind generate_plan) -------------------------------------------------------------------

    def end_plan_record(self, session: Session, job_id: str, summary: str, result: dict[str, Any],
                        now: datetime) -> None:
        session.execute(update(accounts_jobs).where(accounts_jobs.c.id == job_id).values(
            state=SUCCEEDED, summary=summary, result=json.dumps(result), updated_at=now, ended_at=now))

    def old_plans(self, session: Session, kind: str, before: datetime) -> list[str]:
        return list(session.execute(select(accounts_jobs.c.id).where(
            accounts_jobs.c.kind == kind, accounts_jobs.c.state == SUCCEEDED,
            accounts_jobs.c.created_at < before)).scalars())

    def expire_plans(self, session: Session, job_ids: Sequence[str], now: datetime) -> None:
        for chunk in _chunks(job_ids):
            session.execute(update(accounts_jobs).where(accounts_jobs.c.id.in_(chunk)).values(
                state=CANCELLED, summary="The plan expired: plan again.", result=json.dumps({"files": []}),
                updated_at=now))


# Where a set of keys comes from: a subquery, a list (sent as IN lists in chunks), or None (every row).
Source = Select[Any] | list[str] | None


def _conditions(column: Any, source: Source) -> list[Any]:
    """`column IN source` as WHERE conditions: one per chunk of a list, one for a subquery, none for everything."""
    if source is None:
        return [true()]
    if isinstance(source, list):
        return [column.in_(chunk) for chunk in _chunks(source)]
    return [column.in_(source)]


def _escape(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
