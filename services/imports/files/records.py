"""Typed rows of each kind of file, each with its Excel row number and the columns that held a value."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class ParentAccountRow:
    """One row of a parent-accounts file. `given` names the columns that held a value (an empty cell of an
    existing account means "leave as it is"); `user_type` is GUARDIAN when the cell was empty."""

    row_number: int
    logonid: str
    first_name: str
    last_name: str
    email: str
    password: str
    user_type: str
    student_ids: tuple[str, ...]
    must_change_password: bool | None
    enabled: bool | None
    given: frozenset[str]


@dataclass(slots=True)
class ParentAccount:
    """The account several agreeing rows with one LOGONID describe: details from the rows, students united."""

    logonid: str
    first_name: str
    last_name: str
    email: str
    password: str
    user_type: str
    student_ids: tuple[str, ...]
    must_change_password: bool | None
    enabled: bool | None
    row_numbers: tuple[int, ...]
    given: frozenset[str]


@dataclass(slots=True)
class StudentLinkRow:
    """One row of a student-links file: tie these students to the account LOGONID."""

    row_number: int
    logonid: str
    student_ids: tuple[str, ...]
    given: frozenset[str]


@dataclass(slots=True)
class StaffRow:
    """One row of a staff file."""

    row_number: int
    staff_id: str
    logonid: str
    email: str
    first_name: str
    last_name: str
    school: str
    given: frozenset[str]


@dataclass(slots=True)
class RosterRow:
    """One student and (when contact_id is set) one of their contacts. Flags are None when the cell was empty."""

    row_number: int
    student_id: str
    student_first_name: str
    student_last_name: str
    grad_year: int | None
    group: str
    school: str
    contact_id: str
    contact_first_name: str
    contact_last_name: str
    contact_email: str
    relationship: str
    parental_responsibility: bool | None
    primary_contact: bool | None
    contact_phone: str
    contact_address: str
    court_order: bool | None
    given: frozenset[str]


AnyRow = ParentAccountRow | StudentLinkRow | StaffRow | RosterRow
