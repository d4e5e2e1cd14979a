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


_TEXT_COLUMNS = (("first_name", "FIRST_NAME"), ("last_name", "LAST_NAME"), ("email", "EMAIL"),
                 ("password", "PASSWORD"), ("must_change_password", "MUST_CHANGE_PASSWORD"), ("enabled", "ENABLED"),
                 ("school", "SCHOOL"))


def account_columns(rows: Sequence[SheetRow], kind: str) -> accounts_pb2.AccountRowColumns:
    """The accounts service's view of a batch of parent-accounts, student-links or staff rows, column by column
    (a column empty in every row is left out)."""
    values = [row.values for row in rows]
    ids = [row.students() for row in rows]
    columns = accounts_pb2.AccountRowColumns(
        row_number=[row.row_number for row in rows], username=[v.get("LOGONID", "") for v in values],
        student_ids=[s for found in ids for s in found], student_id_counts=[len(found) for found in ids])
    if kind == "student_links":
        return columns
    for field_name, header in _TEXT_COLUMNS:
        texts = [v.get(header, "") for v in values]
        if any(texts):
            getattr(columns, field_name).extend(texts)
    if kind == "staff":
        columns.type.extend([accounts_pb2.ACCOUNT_TYPE_STAFF] * len(rows))
    else:
        types = [USER_TYPES.get(v.get("USER_TYPE", "").strip().upper(), accounts_pb2.ACCOUNT_TYPE_UNSPECIFIED)
                 for v in values]
        if any(types):
            columns.type.extend(types)
    return columns


@dataclass(slots=True)
class Answer:
    """What the accounts service said of one row."""

    action: str
    username: str
    problems: list[tuple[str, str, str, bool]]
    new_student_ids: list[str]
    invitation: bool


def answers(columns: accounts_pb2.AccountRowResultColumns) -> dict[int, Answer]:
    """The accounts service's answers to a batch sent as columns, by row number."""
    problems: dict[int, list[tuple[str, str, str, bool]]] = {}
    for index, p in zip(columns.problem_rows, columns.problems, strict=True):
        problems.setdefault(index, []).append((p.code, p.column, p.message, p.warning))
    new_ids = list(columns.new_student_ids)
    found: dict[int, Answer] = {}
    start = 0
    for index, (number, action, username, invited, linked) in enumerate(zip(
            columns.row_number, columns.action, columns.username, columns.invitation_queued,
            columns.new_student_id_counts, strict=True)):
        found[number] = Answer(ACTIONS.get(action, "error"), username, problems.get(index, []),
                               new_ids[start:start + linked], invited)
        start += linked
    return found


@dataclass
class RowPlan:
    """What will happen (trial run) or happened (upload) to one row."""

    row_number: int
    action: str  # create / update / link / unchanged / error / skipped
    username: str = ""
    problems: list[tuple[str, str, str, bool]] = field(default_factory=list)  # code, column, message, warning
    new_student_ids: list[str] = field(default_factory=list)
    invitation: bool = False


def merge(row: SheetRow, answer: Answer | None) -> RowPlan:
    """One row's plan from its file-level problems and the accounts service's answer."""
    problems = [(code, column, message, not code.startswith("E_")) for code, column, message in row.problems]
    if row.held:
        action = "error" if any(not warning for *_rest, warning in problems) else "skipped"
        return RowPlan(row.row_number, action, row.values.get("LOGONID", ""), problems)
    action = "error"
    username = row.values.get("LOGONID", "")
    new_ids: list[str] = []
    invitation = False
    if answer is not None:
        action = answer.action
        username = answer.username or username
        new_ids = answer.new_student_ids
        invitation = answer.invitation
        problems += answer.problems
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
