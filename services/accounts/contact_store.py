"""The SQL of contact cards and staff clashes: roster contacts by id or email with their students and relationships,
the accounts made for them, and staff accounts whose email a parent also has."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.accounts import rules
from services.accounts.domain import AccountType
from services.accounts.generation_rules import ExistingAccount, RosterContact, RosterLink, RosterStudent
from services.accounts.models import (
    AccountRecord,
    AccountStudentRecord,
    RosterContactRecord,
    RosterRelationshipRecord,
    RosterStudentRecord,
)

CHUNK = 5000


def _chunks(values: Iterable[str]) -> Iterable[list[str]]:
    ordered = sorted(set(values))
    for start in range(0, len(ordered), CHUNK):
        yield ordered[start:start + CHUNK]


def _contact(r: RosterContactRecord) -> RosterContact:
    return RosterContact(r.id, r.first_name, r.last_name, r.email, r.phone, r.address, r.no_contact)


def contacts_by_ids(session: Session, ids: Iterable[str]) -> dict[str, RosterContact]:
    found: dict[str, RosterContact] = {}
    for chunk in _chunks(ids):
        found.update((r.id, _contact(r)) for r in session.scalars(
            select(RosterContactRecord).where(RosterContactRecord.id.in_(chunk))))
    return found


def contacts_by_emails(session: Session, email_keys: Iterable[str]) -> dict[str, RosterContact]:
    found: dict[str, RosterContact] = {}
    for chunk in _chunks(k for k in email_keys if k):
        found.update((r.id, _contact(r)) for r in session.scalars(
            select(RosterContactRecord).where(RosterContactRecord.email_key.in_(chunk))))
    return found


def find_contacts(session: Session, contact_id_or_email: str) -> list[RosterContact]:
    """The contact with this id, or every contact record with this email address, by id."""
    value = contact_id_or_email.strip()
    found = contacts_by_ids(session, [value])
    if not found and "@" in value:
        found = contacts_by_emails(session, [rules.email_key(value)])
    return [found[key] for key in sorted(found)]


def relationships(session: Session, contact_ids: Iterable[str]) -> tuple[list[RosterLink], dict[str, RosterStudent]]:
    """The contacts' relationships (by student name) and their students."""
    r, s = RosterRelationshipRecord, RosterStudentRecord
    links: list[RosterLink] = []
    students: dict[str, RosterStudent] = {}
    for chunk in _chunks(contact_ids):
        for rel, student in session.execute(select(r, s).join(s, s.id == r.student_id).where(r.contact_id.in_(chunk))
                                            .order_by(s.last_name_key, s.first_name, s.id, r.contact_id)):
            links.append(RosterLink(rel.student_id, rel.contact_id, rel.relationship, rel.parental_responsibility,
                                    rel.is_primary))
            students[student.id] = RosterStudent(student.id, student.first_name, student.last_name,
                                                 student.grad_year, student.group, student.school)
    return links, students


def accounts_of(session: Session, contact_ids: Iterable[str], email_keys: Iterable[str],
                student_ids: Sequence[str]) -> list[ExistingAccount]:
    """Accounts made for these contacts or holding these emails, with their links to these students."""
    a = AccountRecord
    records: dict[str, AccountRecord] = {}
    for chunk in _chunks(contact_ids):
        records.update((r.id, r) for r in session.scalars(select(a).where(a.contact_id.in_(chunk))))
    for chunk in _chunks(k for k in email_keys if k):
        records.update((r.id, r) for r in session.scalars(select(a).where(a.email_key.in_(chunk))))
    linked: dict[str, set[str]] = defaultdict(set)
    for chunk in _chunks(records):
        for account_id, student_id in session.execute(
                select(AccountStudentRecord.account_id, AccountStudentRecord.student_id)
                .where(AccountStudentRecord.account_id.in_(chunk),
                       AccountStudentRecord.student_id.in_(list(student_ids)))):
            linked[account_id].add(student_id)
    return [ExistingAccount(r.id, r.username, r.first_name, r.last_name, r.email_key, r.type, r.contact_id,
                            linked.get(r.id, set())) for r in records.values()]


def link_permissions(session: Session, account_id: str) -> dict[str, str]:
    """Student id -> stored permissions of an account's links."""
    return dict(session.execute(select(AccountStudentRecord.student_id, AccountStudentRecord.permissions)
                                .where(AccountStudentRecord.account_id == account_id)).all())


# Staff clashes ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StaffAccount:
    id: str
    username: str
    email: str
    keys: tuple[str, ...]


def staff_accounts(session: Session) -> list[StaffAccount]:
    """Staff accounts with an email, each with the keys a parent may share: its email, and its username when that
    is an email address."""
    a = AccountRecord
    found = []
    for account_id, username, email, email_key, username_key in session.execute(
            select(a.id, a.username, a.email, a.email_key, a.username_key)
            .where(a.type == AccountType.STAFF.value).order_by(a.username_key)):
        keys = tuple(dict.fromkeys(k for k in (email_key, username_key if "@" in username_key else "") if k))
        if keys:
            found.append(StaffAccount(account_id, username, email, keys))
    return found


def guardians_by_emails(session: Session, email_keys: Iterable[str]) -> list[tuple[str, str, str, str]]:
    """(account id, username, email key, contact id) of parent accounts holding these emails."""
    a = AccountRecord
    found = []
    for chunk in _chunks(k for k in email_keys if k):
        found += list(session.execute(select(a.id, a.username, a.email_key, a.contact_id).where(
            a.email_key.in_(chunk), a.type == AccountType.GUARDIAN.value)).all())
    return found


def responsible_contacts(session: Session, contact_ids: Iterable[str]) -> dict[str, set[str]]:
    """Contact id -> schools of the students the contact has parental responsibility for."""
    r, s = RosterRelationshipRecord, RosterStudentRecord
    found: dict[str, set[str]] = defaultdict(set)
    for chunk in _chunks(contact_ids):
        for contact_id, school in session.execute(select(r.contact_id, s.school).join(s, s.id == r.student_id)
                                                  .where(r.contact_id.in_(chunk), r.parental_responsibility)):
            found[contact_id].add(school)
    return found


def guardians_of_contacts(session: Session, contact_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Contact id -> (account id, username) of the parent account made for it."""
    a = AccountRecord
    found: dict[str, tuple[str, str]] = {}
    for chunk in _chunks(contact_ids):
        for account_id, username, contact_id in session.execute(
                select(a.id, a.username, a.contact_id).where(a.contact_id.in_(chunk),
                                                             a.type == AccountType.GUARDIAN.value)
                .order_by(a.username_key)):
            found.setdefault(contact_id, (account_id, username))
    return found
