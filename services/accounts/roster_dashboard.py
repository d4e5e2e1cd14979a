"""The data dashboard (seed 003): what in the roster stops guardians from getting accounts, as counts and lists
staff can download and fix in their information system. Derived from a plan for all contacts. Pure: no I/O."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from plumbing import status_codes as sc
from services.accounts.generation_rules import SKIP, DuplicateGroup, GenerationPlan, RosterContact, RosterSnapshot


@dataclass(frozen=True)
class RosterList:
    name: str
    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


# name -> title, in the order the dashboard shows them.
LISTS = {
    "students_without_account": "Students with no contact who will get an account",
    "missing_email": "Contacts missing an email address",
    "no_parental_responsibility": "Contacts without parental responsibility",
    "shared_email": "Emails shared by several guardians",
    "staff_email": "Emails also used by staff accounts",
    "possible_duplicates": "Possible duplicate contacts",
    "invalid_email": "Contacts with an invalid email address",
    "court_order": "Contacts with a court order or no-contact flag",
}
_CONTACT_HEADERS = ("Contact id", "Contact", "Email", "Phone", "Address", "Students")
_BY_CODE = {
    "missing_email": sc.S_NO_EMAIL.code, "no_parental_responsibility": sc.S_NO_PARENTAL_RESPONSIBILITY.code,
    "invalid_email": sc.S_INVALID_EMAIL.code, "court_order": sc.S_COURT_ORDER.code,
}


def _contact_row(contact: RosterContact, students: list[str]) -> tuple[str, ...]:
    return (contact.id, contact.name, contact.email, contact.phone, contact.address, ", ".join(students))


def roster_lists(snapshot: RosterSnapshot, plan: GenerationPlan) -> dict[str, RosterList]:
    """Every list of the dashboard (empty ones too), by name."""
    contacts, students = snapshot.contacts, snapshot.students
    skipped: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    reasons: dict[str, set[str]] = defaultdict(set)
    served: set[str] = set()
    for line in plan.lines:
        if line.action == SKIP:
            skipped[line.code][line.contact_id].append(line.student_id)
            reasons[line.student_id].add(line.code)
        else:
            served.add(line.student_id)
    found: dict[str, RosterList] = {}
    for name, code in _BY_CODE.items():
        rows = tuple(_contact_row(contacts[c], s) for c, s in sorted(skipped[code].items()))
        found[name] = RosterList(name, LISTS[name], _CONTACT_HEADERS, rows)
    lonely = tuple(
        (s.id, s.name, str(s.grad_year or ""), s.group, s.school,
         ", ".join(sorted(reasons.get(s.id, ()))) or "no contacts in the roster")
        for s in students.values() if s.id not in served)
    found["students_without_account"] = RosterList(
        "students_without_account", LISTS["students_without_account"],
        ("Student id", "Student", "Grad year", "Group", "School", "Why (codes)"), lonely)
    for name, kind in (("shared_email", "guardians"), ("staff_email", "staff")):
        rows = tuple((shared.email_key, ", ".join(shared.contact_ids),
                      "; ".join(contacts[c].name for c in shared.contact_ids))
                     for shared in plan.shared_emails if shared.kind == kind)
        found[name] = RosterList(name, LISTS[name], ("Email", "Contact ids", "Contacts"), rows)
    found["possible_duplicates"] = RosterList("possible_duplicates", LISTS["possible_duplicates"],
                                              DUPLICATE_HEADERS, duplicate_rows(contacts, plan.duplicates))
    return {name: found[name] for name in LISTS}


DUPLICATE_HEADERS = ("Contact ids", "Names", "Emails", "Phones", "Addresses", "Same")


def duplicate_rows(contacts: Mapping[str, RosterContact],
                   groups: Iterable[DuplicateGroup]) -> tuple[tuple[str, ...], ...]:
    """Possible duplicates as rows: ids, names, emails, phones, addresses, and what they share."""
    return tuple((", ".join(group.contact_ids), "; ".join(contacts[c].name for c in group.contact_ids),
                  "; ".join(contacts[c].email or "(none)" for c in group.contact_ids),
                  "; ".join(contacts[c].phone for c in group.contact_ids),
                  "; ".join(contacts[c].address for c in group.contact_ids), f"name and {group.matched_on}")
                 for group in groups)
