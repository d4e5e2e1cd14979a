"""Contact cards: a roster contact with its students, relationships and parental responsibility, and its account, or
why it has none. The reason is what generation would say (generation_rules.plan_generation over the contact's
students, the contacts sharing its email and their accounts), so the card and `/portal generate` never disagree."""

from __future__ import annotations

from dataclasses import dataclass

from plumbing import status_codes as sc
from plumbing.db import Database
from plumbing.errors import FieldViolation, InvalidArgument, NotFound
from services.accounts import contact_store, rules
from services.accounts.domain import Contact
from services.accounts.generation_rules import (
    COMPLETE,
    CREATE,
    GUARDIAN,
    LINK,
    SKIP,
    WHO_ALL,
    ExistingAccount,
    PlanLine,
    RosterContact,
    RosterSnapshot,
    plan_generation,
)
from services.accounts.policy_rules import decode_permissions

NOT_GENERATED, NO_STUDENTS = "NOT_GENERATED", "NO_STUDENTS"


@dataclass(frozen=True)
class CardStudent:
    student_id: str
    first_name: str
    last_name: str
    school: str
    grad_year: int
    group: str
    relationship: str
    parental_responsibility: bool
    primary: bool
    linked: bool
    permissions: tuple[str, ...] = ()


@dataclass(frozen=True)
class ContactCard:
    contact: Contact
    students: tuple[CardStudent, ...]
    account_username: str = ""
    no_account_code: str = ""
    no_account_reason: str = ""


def _no_account(code: str, note: str) -> str:
    meaning = sc.lookup(code).meaning if code.startswith("S_") else ""
    return " ".join(part for part in (meaning, note) if part)


class ContactCards:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _lookup(self, value: str) -> list[ContactCard]:
        with self.db.read() as session:
            contacts = contact_store.find_contacts(session, value)
            if not contacts:
                raise NotFound(f"No roster contact has the id or email address '{value.strip()}': check it (a "
                               "contact id as the roster file's CONTACT_ID, or an email), or import the roster "
                               "first.", reason="CONTACT_NOT_FOUND")
            ids = [c.id for c in contacts]
            links, students = contact_store.relationships(session, ids)
            emails = {rules.email_key(c.email) for c in contacts if c.email.strip()}
            everyone: dict[str, RosterContact] = {**contact_store.contacts_by_emails(session, emails),
                                                  **{c.id: c for c in contacts}}
            accounts = contact_store.accounts_of(session, everyone, emails, list(students))
            own = {a.contact_id: a for a in sorted(accounts, key=lambda a: a.username.lower())
                   if a.type == GUARDIAN and a.contact_id in ids}
            plan = plan_generation(RosterSnapshot(students, links, everyone, accounts), WHO_ALL)
            permissions = {c: contact_store.link_permissions(session, a.id) for c, a in own.items()}
        cards = []
        for contact in contacts:
            account = own.get(contact.id)
            mine = [line for line in plan.lines if line.contact_id == contact.id]
            granted = permissions.get(contact.id, {})
            shown = tuple(CardStudent(
                link.student_id, students[link.student_id].first_name, students[link.student_id].last_name,
                students[link.student_id].school, students[link.student_id].grad_year,
                students[link.student_id].group, link.relationship, link.parental_responsibility, link.primary,
                link.student_id in granted, decode_permissions(granted.get(link.student_id)))
                for link in links if link.contact_id == contact.id)
            card = ContactCard(Contact(contact.id, contact.first_name, contact.last_name, contact.email,
                                       contact.phone, contact.address, contact.no_contact), shown)
            cards.append(self._account_part(card, account, mine))
        return cards

    @staticmethod
    def _account_part(card: ContactCard, account: ExistingAccount | None, lines: list[PlanLine]) -> ContactCard:
        if account is not None:
            return ContactCard(card.contact, card.students, account.username)
        held = next((line for line in lines if line.action in (LINK, COMPLETE)), None)
        if held is not None:
            return ContactCard(card.contact, card.students, held.username)
        if any(line.action == CREATE for line in lines):
            return ContactCard(card.contact, card.students, "", NOT_GENERATED,
                               "Not generated yet: the contact has parental responsibility and a valid email, so "
                               "`/portal generate` (or an upload) would create the account.")
        skipped = next((line for line in lines if line.action == SKIP), None)
        if skipped is not None:
            return ContactCard(card.contact, card.students, "", skipped.code, _no_account(skipped.code, skipped.note))
        return ContactCard(card.contact, card.students, "", NO_STUDENTS,
                           "The contact is related to no student in the roster, so no account is made for them.")

    async def lookup(self, contact_id_or_email: str) -> list[ContactCard]:
        if not contact_id_or_email.strip():
            raise InvalidArgument("Give a contact id or an email address.",
                                  [FieldViolation("contact_id_or_email", "required")], reason=sc.E_REQUIRED.code)
        return await self.db.run(self._lookup, contact_id_or_email)
