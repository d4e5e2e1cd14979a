"""Roster files (one row per student-contact pair) as the accounts service's roster upsert, and back."""

from __future__ import annotations

from collections.abc import Sequence

from portal.accounts.v1 import accounts_pb2
from services.imports.planning import RowPlan
from services.imports.reading import SheetRow

YES = {"Y", "YES", "TRUE", "1"}
# The file's column for each account field that follows a contact (contact drift warnings name it).
DRIFT_COLUMNS = {"email": "CONTACT_EMAIL", "first_name": "CONTACT_FIRST_NAME", "last_name": "CONTACT_LAST_NAME",
                 "username": "CONTACT_EMAIL"}


def _flag(value: str) -> bool:
    return value.strip().upper() in YES


def _year(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return 0


def upsert_request(rows: Sequence[SheetRow]) -> accounts_pb2.BatchUpsertRosterRequest:
    """Students, contacts and relationships named by these rows (each once; the last row wins a conflict)."""
    students: dict[str, accounts_pb2.Student] = {}
    contacts: dict[str, accounts_pb2.Contact] = {}
    relationships: dict[tuple[str, str], accounts_pb2.RosterRelationship] = {}
    for row in rows:
        v = row.values
        student_id = v.get("STUDENT_ID", "")
        if student_id:
            students[student_id] = accounts_pb2.Student(
                id=student_id, first_name=v.get("STUDENT_FIRST_NAME", ""), last_name=v.get("STUDENT_LAST_NAME", ""),
                grad_year=_year(v.get("GRAD_YEAR", "")), group=v.get("GROUP", ""), school=v.get("SCHOOL", ""),
                status=v.get("STUDENT_STATUS", "") or "active")
        contact_id = v.get("CONTACT_ID", "")
        if contact_id:
            contacts[contact_id] = accounts_pb2.Contact(
                id=contact_id, first_name=v.get("CONTACT_FIRST_NAME", ""), last_name=v.get("CONTACT_LAST_NAME", ""),
                email=v.get("CONTACT_EMAIL", ""), phone=v.get("CONTACT_PHONE", ""),
                address=v.get("CONTACT_ADDRESS", ""), no_contact=_flag(v.get("COURT_ORDER", "")))
        if student_id and contact_id:
            relationships[(student_id, contact_id)] = accounts_pb2.RosterRelationship(
                student_id=student_id, contact_id=contact_id, relationship=v.get("RELATIONSHIP", ""),
                parental_responsibility=_flag(v.get("PARENTAL_RESPONSIBILITY", "")),
                primary=_flag(v.get("PRIMARY_CONTACT", "")))
    return accounts_pb2.BatchUpsertRosterRequest(
        students=list(students.values()), contacts=list(contacts.values()),
        relationships=list(relationships.values()))


def _drift_warning(drift: accounts_pb2.RosterAccountDrift) -> tuple[str, str, str, bool]:
    """The warning on a contact's row whose account no longer matches it (or was updated to match)."""
    fields = " and ".join(f.replace("_", " ") for f in drift.fields)
    column = DRIFT_COLUMNS.get(drift.fields[0], "CONTACT_EMAIL") if drift.fields else "CONTACT_EMAIL"
    if drift.applied:
        return ("W_ACCOUNT_UPDATED", column,
                f"The parent account {drift.username} of contact {drift.contact_id} gets the new {fields} to match "
                "(PORTAL_CONTACT_CHANGES=update); the parent is emailed at both addresses.", True)
    return ("W_ACCOUNT_DRIFT", column,
            f"The parent account {drift.username} of contact {drift.contact_id} keeps the old {fields}: run "
            "`/portal drift` to update it (the parent is emailed at both addresses).", True)


def row_plans(rows: Sequence[SheetRow], response: accounts_pb2.BatchUpsertRosterResponse) -> list[RowPlan]:
    """Each row's action: create when its student or contact is new, update when either changes, else unchanged;
    the first row of a contact whose account no longer matches it carries a warning."""
    actions = {(change.kind, change.id): change.action for change in response.changes}
    drifts: dict[str, list[accounts_pb2.RosterAccountDrift]] = {}
    for drift in response.account_drift:
        drifts.setdefault(drift.contact_id, []).append(drift)
    plans = []
    for row in rows:
        mine = [actions.get(("student", row.values.get("STUDENT_ID", "")), "unchanged"),
                actions.get(("contact", row.values.get("CONTACT_ID", "")), "unchanged")]
        action = "create" if "create" in mine else "update" if "update" in mine else "unchanged"
        problems = [(code, column, message, not code.startswith("E_")) for code, column, message in row.problems]
        problems += [_drift_warning(d) for d in drifts.pop(row.values.get("CONTACT_ID", ""), [])]
        plans.append(RowPlan(row.row_number, action, row.values.get("CONTACT_EMAIL", ""), problems))
    return plans
