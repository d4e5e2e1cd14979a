"""Pure rules of a trial run or upload: batching rows, turning them into account rows, merging problems, counting.

The trial run and the upload plan through the same functions, so the upload applies exactly what the trial run
reported (re-checked by the accounts service at the moment it applies).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from plumbing.gcpause import paused_gc
from portal.accounts.v1 import accounts_pb2
from services.imports.reading import SheetRow

BATCH_ROWS = 2000
ACTIONS = {
    accounts_pb2.ROW_ACTION_CREATE: "create",
    accounts_pb2.ROW_ACTION_UPDATE: "update",
    accounts_pb2.ROW_ACTION_LINK: "link",
    accounts_pb2.ROW_ACTION_UNCHANGED: "unchanged",
    accounts_pb2.ROW_ACTION_ERROR: "error",
}
USER_TYPES = {"": accounts_pb2.ACCOUNT_TYPE_GUARDIAN, "GUARDIAN": accounts_pb2.ACCOUNT_TYPE_GUARDIAN,
              "PARENT": accounts_pb2.ACCOUNT_TYPE_GUARDIAN, "STUDENT": accounts_pb2.ACCOUNT_TYPE_STUDENT,
              "STAFF": accounts_pb2.ACCOUNT_TYPE_STAFF}


@paused_gc()
def batches(rows: Sequence[SheetRow], size: int = BATCH_ROWS) -> list[list[SheetRow]]:
    """Rows to send, in batches of about `size`, keeping every row of one username in the same batch (so the
    accounts service sees siblings' rows together and plans one account for them). Deterministic: the upload
    after a restart rebuilds exactly the same batches."""
    groups: dict[str, list[SheetRow]] = {}
    for row in rows:
        if row.held:
            continue
        key = row.values.get("LOGONID", "").strip().lower() or f"#row{row.row_number}"
        groups.setdefault(key, []).append(row)
    ordered = sorted(groups.values(), key=lambda group: group[0].row_number)
    result: list[list[SheetRow]] = []
    current: list[SheetRow] = []
    for group in ordered:
        if current and len(current) + len(group) > size:
            result.append(current)
            current = []
        current.extend(group)
    if current:
        result.append(current)
    return result


def account_row(row: SheetRow, kind: str) -> accounts_pb2.AccountRow:
    """The accounts service's view of one parent-accounts, student-links or staff row."""
    values = row.values
    message = accounts_pb2.AccountRow(
        row_number=row.row_number,
        username=values.get("LOGONID", ""),
        student_ids=row.students(),
    )
    if kind == "student_links":
        return message
    message.first_name = values.get("FIRST_NAME", "")
    message.last_name = values.get("LAST_NAME", "")
    message.email = values.get("EMAIL", "")
    message.password = values.get("PASSWORD", "")
    message.must_change_password = values.get("MUST_CHANGE_PASSWORD", "")
    message.enabled = values.get("ENABLED", "")
    message.school = values.get("SCHOOL", "")
    if kind == "staff":
        message.type = accounts_pb2.ACCOUNT_TYPE_STAFF
    else:
        message.type = USER_TYPES.get(values.get("USER_TYPE", "").strip().upper(),
                                      accounts_pb2.ACCOUNT_TYPE_UNSPECIFIED)
    return message


@dataclass
class RowPlan:
    """What will happen (trial run) or happened (upload) to one row."""

    row_number: int
    action: str  # create / update / link / unchanged / error / skipped
    username: str = ""
    problems: list[tuple[str, str, str, bool]] = field(default_factory=list)  # code, column, message, warning
    new_student_ids: list[str] = field(default_factory=list)
    invitation: bool = False


def merge(row: SheetRow, result: accounts_pb2.AccountRowResult | None) -> RowPlan:
    """One row's plan from its file-level problems and the accounts service's answer."""
    problems = [(code, column, message, not code.startswith("E_")) for code, column, message in row.problems]
    if row.held:
        action = "error" if any(not warning for *_rest, warning in problems) else "skipped"
        return RowPlan(row.row_number, action, row.values.get("LOGONID", ""), problems)
    action = "error"
    username = row.values.get("LOGONID", "")
    new_ids: list[str] = []
    invitation = False
    if result is not None:
        action = ACTIONS.get(result.action, "error")
        username = result.username or username
        new_ids = list(result.new_student_ids)
        invitation = result.invitation_queued
        problems += [(p.code, p.column, p.message, p.warning) for p in result.problems]
    if any(not warning for _c, _col, _m, warning in problems):
        action = "error"
    if action == "create" and not row.values.get("PASSWORD") and not invitation:
        invitation = True
    return RowPlan(row.row_number, action, username, problems, new_ids, invitation and action == "create")


def count(plans: Iterable[RowPlan], rows_total: int) -> dict[str, int]:
    """Counts staff see: rows, create, update, link, unchanged, errors, warnings, skipped, invitations."""
    actions: Counter[str] = Counter()
    warnings = invitations = linked = 0
    for plan in plans:
        actions[plan.action] += 1
        warnings += any(w for *_rest, w in plan.problems) and plan.action != "error"
        invitations += plan.invitation
        if plan.action != "error":
            linked += len(plan.new_student_ids)
    return {
        "rows": rows_total, "create": actions["create"], "update": actions["update"], "link": actions["link"],
        "unchanged": actions["unchanged"], "errors": actions["error"], "warnings": warnings,
        "skipped": actions["skipped"], "invitations": invitations, "students_linked": linked,
    }


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def summary_sentence(counts: dict[str, int], *, applied: bool, kind: str = "parent_accounts") -> str:
    """e.g. "412 accounts will be created, 37 rows with errors will be skipped"."""
    will = "" if applied else "will be "
    parts = []
    if kind in ("roster", "oneroster"):
        if counts.get("create"):
            parts.append(f"{_plural(counts['create'], 'row')} with new students or contacts {will}added")
        if counts.get("update"):
            parts.append(f"{_plural(counts['update'], 'row')} {'changed' if applied else 'will change'} the roster")
        counts = {**counts, "create": 0, "update": 0}
    if counts.get("create"):
        parts.append(f"{counts['create']} account{'s' if counts['create'] != 1 else ''} {will}created")
    if counts.get("update"):
        parts.append(f"{counts['update']} {will}updated")
    if counts.get("link"):
        parts.append(f"{counts['link']} existing account{'s' if counts['link'] != 1 else ''} "
                     f"{'gained' if applied else 'gain'} students")
    if counts.get("unchanged"):
        parts.append(f"{counts['unchanged']} unchanged")
    if counts.get("skipped"):
        parts.append(f"{counts['skipped']} row{'s' if counts['skipped'] != 1 else ''} skipped "
                     "(no account wanted, or a repeat of another row)")
    if counts.get("errors"):
        parts.append(f"{counts['errors']} row{'s' if counts['errors'] != 1 else ''} with errors "
                     f"{'skipped' if applied else 'will be skipped'}")
    return ", ".join(parts) if parts else "nothing to do"
