"""Rules for roster batches from the school's information system, and the diff against what is stored.

Plain functions, no I/O. Roster data is taken as the school's system holds it (an odd email is the school's to fix
there, not a reason to refuse the batch); only what would corrupt the roster is refused: missing or repeated ids,
control characters, values longer than the columns.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from plumbing import status_codes as sc
from services.accounts import rules
from services.accounts.domain import Contact, Problem, Relationship, RosterChange, Student

T = TypeVar("T")
_LIMITS = {"id": rules.ID_MAX, "first_name": rules.NAME_MAX, "last_name": rules.NAME_MAX, "group": 100,
           "school": rules.TEXT_MAX, "status": 32, "email": rules.EMAIL_MAX, "phone": 50, "address": 500,
           "relationship": 60, "student_id": rules.ID_MAX, "contact_id": rules.ID_MAX}


def _clean(record: T, path: str, problems: list[Problem]) -> T:
    """Trim every text field; note control characters and values too long for their column."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(record):  # type: ignore[arg-type]
        value = getattr(record, f.name)
        if isinstance(value, str):
            value = value.strip()
            if rules.has_control_chars(value):
                problems.append(Problem(sc.E_NAME_CHARS.code, f"{path}.{f.name}",
                                        f"{path}.{f.name} contains a control character: correct it in the "
                                        "school's information system."))
            elif len(value) > _LIMITS.get(f.name, rules.TEXT_MAX):
                problems.append(Problem(sc.E_FIELD_TOO_LONG.code, f"{path}.{f.name}",
                                        f"{path}.{f.name} has {len(value)} characters: at most "
                                        f"{_LIMITS.get(f.name, rules.TEXT_MAX)} are kept."))
        values[f.name] = value
    return type(record)(**values)


def _unique_ids(records: Sequence[Any], key: Any, path: str, label: str, problems: list[Problem]) -> None:
    seen: dict[Any, int] = {}
    for index, record in enumerate(records):
        ident = key(record)
        if not all(ident if isinstance(ident, tuple) else (ident,)):
            problems.append(Problem(sc.E_REQUIRED.code, f"{path}[{index}]", f"{label} {index + 1} has no id."))
        elif ident in seen:
            problems.append(Problem(sc.E_DUPLICATE_CONFLICT.code, f"{path}[{index}]",
                                    f"{label} {ident} appears twice in the batch (entries {seen[ident] + 1} and "
                                    f"{index + 1}): send each once."))
        else:
            seen[ident] = index


def check_batch(students: Sequence[Student], contacts: Sequence[Contact],
                relationships: Sequence[Relationship]) -> tuple[list[Student], list[Contact], list[Relationship],
                                                                list[Problem]]:
    problems: list[Problem] = []
    clean_students = [_clean(s, f"students[{i}]", problems) for i, s in enumerate(students)]
    clean_contacts = [_clean(c, f"contacts[{i}]", problems) for i, c in enumerate(contacts)]
    clean_links = [_clean(r, f"relationships[{i}]", problems) for i, r in enumerate(relationships)]
    for index, student in enumerate(clean_students):
        if student.grad_year and not 1900 <= student.grad_year <= 2200:
            problems.append(Problem(sc.E_FIELD_TOO_LONG.code, f"students[{index}].grad_year",
                                    f"Student {student.id}: graduation year {student.grad_year} is not a year."))
    _unique_ids(clean_students, lambda s: s.id, "students", "Student", problems)
    _unique_ids(clean_contacts, lambda c: c.id, "contacts", "Contact", problems)
    _unique_ids(clean_links, lambda r: (r.student_id, r.contact_id), "relationships", "Relationship", problems)
    return clean_students, clean_contacts, clean_links, problems


def unknown_references(relationships: Sequence[Relationship], students: Iterable[str],
                       contacts: Iterable[str]) -> list[Problem]:
    """Relationships naming a student or contact that is neither in the batch nor stored."""
    student_ids, contact_ids = set(students), set(contacts)
    problems = []
    for index, link in enumerate(relationships):
        missing = ([f"student {link.student_id}"] if link.student_id not in student_ids else []) + \
                  ([f"contact {link.contact_id}"] if link.contact_id not in contact_ids else [])
        if missing:
            problems.append(Problem(sc.E_STUDENT_UNKNOWN.code, f"relationships[{index}]",
                                    f"Relationship {index + 1} names {' and '.join(missing)}, not in the roster: "
                                    "send the student and the contact with it."))
    return problems


@dataclass(frozen=True)
class Diff:
    created: list[Any]
    changed: list[Any]
    changes: list[RosterChange]
    unchanged: int


def diff(kind: str, incoming: Sequence[T], stored: Mapping[Any, T], key: Any) -> Diff:
    """Which records are new, which changed (and in which fields), and how many are as stored."""
    created, changed, changes, unchanged = [], [], [], 0
    for record in incoming:
        ident = key(record)
        label = ident if isinstance(ident, str) else "/".join(ident)
        before = stored.get(ident)
        if before is None:
            created.append(record)
            changes.append(RosterChange(kind, label, "create"))
            continue
        fields = tuple(f.name for f in dataclasses.fields(record)  # type: ignore[arg-type]
                       if getattr(record, f.name) != getattr(before, f.name))
        if fields:
            changed.append(record)
            changes.append(RosterChange(kind, label, "update", fields))
        else:
            unchanged += 1
    return Diff(created, changed, changes, unchanged)
