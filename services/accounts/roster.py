"""The roster as synchronised from the school's information system: searched by selector, upserted in batches.

An upsert creates new students, contacts and relationships and updates changed ones, set-based; it never deletes
a record the batch does not name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from plumbing import status_codes as sc
from plumbing.db import Database
from plumbing.errors import FieldViolation, InvalidArgument
from services.accounts import paging, roster_rules
from services.accounts.domain import (
    Call,
    Contact,
    Page,
    Problem,
    Relationship,
    RosterEntry,
    RosterQuery,
    RosterResult,
    Student,
)
from services.accounts.mutations import Audit, Mutations
from services.accounts.store import AccountStore

if TYPE_CHECKING:
    from services.accounts.drift import ContactDrift

AfterSave = Callable[[Session, datetime, tuple[Sequence[Contact], Sequence[Contact]],
                      tuple[Sequence[Relationship], Sequence[Relationship]]], None]
SELECTOR_KINDS = ("all", "school", "group", "grad_year", "last_name_prefix", "usernames")


def _refuse(problems: Sequence[Problem]) -> InvalidArgument:
    shown = problems[:20]
    more = f" (and {len(problems) - 20} more problems)" if len(problems) > 20 else ""
    return InvalidArgument(" ".join(p.message for p in shown[:3]) + more,
                           [FieldViolation(p.field, p.message) for p in shown], reason=problems[0].code)


class Roster:
    def __init__(self, db: Database, store: AccountStore, mutations: Mutations,
                 after_save: AfterSave | None = None, drift: ContactDrift | None = None) -> None:
        self.db = db
        self.store = store
        self.mutations = mutations
        # Accounts of contacts a batch changes: reported or updated to match (PORTAL_CONTACT_CHANGES).
        self.drift = drift
        # Told of the (new, changed) contacts and relationships in the transaction that saves them
        # (auto-generation notes which guardians to look at).
        self.after_save = after_save

    # Search -----------------------------------------------------------------------------------------------------

    @staticmethod
    def _check_query(query: RosterQuery) -> None:
        selector = query.selector
        if selector.kind not in SELECTOR_KINDS:
            raise InvalidArgument(f"Unknown selector '{selector.kind}': use all, school, group, grad_year, "
                                  "last_name_prefix or usernames.", [FieldViolation("selector", "unknown kind")])
        if selector.kind in ("school", "group", "last_name_prefix") and not selector.value.strip():
            raise InvalidArgument(f"Say which {selector.kind.replace('_', ' ')} to select.",
                                  [FieldViolation(f"selector.{selector.kind}", "required")], reason=sc.E_REQUIRED.code)
        if selector.kind == "grad_year" and not selector.value.isdigit():
            raise InvalidArgument("Give the graduation year as a number, e.g. 2031.",
                                  [FieldViolation("selector.grad_year", "a year")])
        if selector.kind == "usernames" and not selector.usernames:
            raise InvalidArgument("Give at least one username.", [FieldViolation("selector.usernames", "required")],
                                  reason=sc.E_REQUIRED.code)

    def _search(self, query: RosterQuery, size: int, token: str) -> Page[RosterEntry]:
        kind = paging.list_kind("roster", query)
        position = paging.decode(kind, token)
        with self.db.read() as session:
            students, total = self.store.search_students(
                session, query.selector, query.student_id.strip(), query.contact_id.strip(), query.contact_email,
                (str(position[0]), str(position[1])) if position else None, size + 1)
            more = len(students) > size
            students = students[:size]
            contacts = (self.store.student_contacts(session, [s.id for s in students])
                        if query.include_contacts else {})
        entries = tuple(RosterEntry(s, tuple(contacts.get(s.id, ()))) for s in students)
        next_token = paging.encode(kind, students[-1].last_name.lower(), students[-1].id) if more else ""
        return Page(entries, next_token, total)

    async def search(self, query: RosterQuery, page_size: int, page_token: str) -> Page[RosterEntry]:
        self._check_query(query)
        return await self.db.run(self._search, query, paging.page_size(page_size), page_token)

    # Upsert -----------------------------------------------------------------------------------------------------

    def _plan(self, session: Session, students: list[Student], contacts: list[Contact],
              relationships: list[Relationship]) -> tuple[RosterResult, tuple[roster_rules.Diff, ...]]:
        stored_students = self.store.existing_students(
            session, [s.id for s in students] + [r.student_id for r in relationships])
        stored_contacts = self.store.existing_contacts(
            session, [c.id for c in contacts] + [r.contact_id for r in relationships])
        problems = roster_rules.unknown_references(relationships, {*stored_students, *(s.id for s in students)},
                                                   {*stored_contacts, *(c.id for c in contacts)})
        if problems:
            raise _refuse(problems)
        stored_links = self.store.existing_relationships(session, [(r.student_id, r.contact_id)
                                                                   for r in relationships])
        student_diff = roster_rules.diff("student", students, stored_students, lambda s: s.id)
        contact_diff = roster_rules.diff("contact", contacts, stored_contacts, lambda c: c.id)
        link_diff = roster_rules.diff("relationship", relationships, stored_links,
                                      lambda r: (r.student_id, r.contact_id))
        result = RosterResult(
            students_created=len(student_diff.created), students_updated=len(student_diff.changed),
            contacts_created=len(contact_diff.created), contacts_updated=len(contact_diff.changed),
            relationships_added=len(link_diff.created),
            unchanged=student_diff.unchanged + contact_diff.unchanged + link_diff.unchanged,
            changes=tuple(student_diff.changes + contact_diff.changes + link_diff.changes))
        return result, (student_diff, contact_diff, link_diff)

    def _dry_run(self, students: list[Student], contacts: list[Contact],
                 relationships: list[Relationship]) -> RosterResult:
        with self.db.read() as session:
            result, (_s, c, _r) = self._plan(session, students, contacts, relationships)
            if self.drift is not None and c.changed:
                result = replace(result, account_drift=self.drift.roster_preview(session, c.changed))
            return result

    async def upsert(self, call: Call, students: Sequence[Student], contacts: Sequence[Contact],
                     relationships: Sequence[Relationship], validate_only: bool) -> RosterResult:
        clean_students, clean_contacts, clean_links, problems = roster_rules.check_batch(
            students, contacts, relationships)
        if problems:
            raise _refuse(problems)
        if validate_only:
            return await self.db.run(self._dry_run, clean_students, clean_contacts, clean_links)

        def work(session: Session, audit: Audit) -> RosterResult:
            result, (s, c, r) = self._plan(session, clean_students, clean_contacts, clean_links)
            self.store.save_roster(session, audit.now, (s.created, s.changed), (c.created, c.changed),
                                   (r.created, r.changed))
            if self.after_save is not None:
                self.after_save(session, audit.now, (c.created, c.changed), (r.created, r.changed))
            audit.record("roster.upsert", "roster", students_created=result.students_created,
                         students_updated=result.students_updated, contacts_created=result.contacts_created,
                         contacts_updated=result.contacts_updated, relationships_added=result.relationships_added,
                         relationships_updated=len(r.changed), unchanged=result.unchanged)
            if self.drift is not None and c.changed:
                result = replace(result, account_drift=self.drift.after_roster_change(
                    session, audit, [contact.id for contact in c.changed]))
            return result

        done = await self.db.run(self.mutations.run, call, "BatchUpsertRoster", RosterResult, work)
        if self.drift is not None and any(note.applied for note in done.account_drift):
            self.drift.emails_queued()
        return done
