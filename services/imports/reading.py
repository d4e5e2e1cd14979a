"""The bridge between the file layer (services/imports/files) and the imports jobs.

A file is read once, at arm's length, when it arrives; what is kept is its `Table` (every cell as text, with row
numbers), stored as a blob until the upload commits or the trial run expires. The trial run and the upload both
rebuild the typed rows from that table (`parse_rows`, no worker needed), so they see exactly the same rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from plumbing.config import Settings
from plumbing.gcpause import paused_gc
from portal.accounts.v1 import accounts_pb2
from services.imports import files
from services.imports.files import FileRefused, Limits, ParsedFile, Table

__all__ = ["FileRefused", "Limits", "ParsedFile", "Table"]


def limits_from_settings(settings: Settings) -> Limits:
    return Limits(max_bytes=settings.import_max_bytes, max_rows=settings.import_max_rows,
                  max_columns=settings.import_max_columns)


async def read_upload(data: bytes, filename: str, limits: Limits) -> ParsedFile:
    """Read an untrusted upload (raises FileRefused with one sentence for staff)."""
    return await files.read_upload_async(data, filename, limits)


def table_to_json(table: Table) -> bytes:
    return json.dumps({
        "file_format": str(table.file_format), "sheet_name": table.sheet_name,
        "header_row_number": table.header_row_number, "header": table.header, "rows": table.rows,
        "encoding": table.encoding, "delimiter": table.delimiter,
    }, separators=(",", ":")).encode()


def parsed_from_json(data: bytes) -> ParsedFile:
    raw = json.loads(data)
    raw["file_format"] = files.FileFormat(raw["file_format"])
    return files.parse_rows(Table(**raw))


@dataclass
class SheetRow:
    """One row to plan: its number as Excel shows it and its values by canonical column. Rows the file layer
    already refused (E_ codes) or skipped (S_ codes) are `held`: they are reported, never sent."""

    row_number: int
    values: dict[str, str]
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # (code, column, message)
    held: bool = False

    def students(self) -> list[str]:
        raw = self.values.get("STUDENT_IDS") or self.values.get("STUDENT_ID") or ""
        return [part for part in raw.split(";") if part]


def _flag(value: bool | None) -> str:
    return "" if value is None else ("Y" if value else "N")


def _values(kind: str, row: object) -> dict[str, str]:
    if kind == "parent_accounts":
        return {"LOGONID": row.logonid, "FIRST_NAME": row.first_name, "LAST_NAME": row.last_name,  # type: ignore
                "EMAIL": row.email, "PASSWORD": row.password, "USER_TYPE": row.user_type,  # type: ignore
                "STUDENT_IDS": ";".join(row.student_ids),  # type: ignore[attr-defined]
                "MUST_CHANGE_PASSWORD": _flag(row.must_change_password),  # type: ignore[attr-defined]
                "ENABLED": _flag(row.enabled)}  # type: ignore[attr-defined]
    if kind == "student_links":
        return {"LOGONID": row.logonid, "STUDENT_IDS": ";".join(row.student_ids)}  # type: ignore
    if kind == "staff":
        return {"LOGONID": row.logonid, "FIRST_NAME": row.first_name, "LAST_NAME": row.last_name,  # type: ignore
                "EMAIL": row.email, "SCHOOL": row.school, "STAFF_ID": row.staff_id}  # type: ignore
    return {key.upper(): "" if value is None else (_flag(value) if isinstance(value, bool) else str(value))
            for key, value in ((name, getattr(row, name)) for name in row.__slots__)  # type: ignore[attr-defined]
            if key not in ("row_number", "given")}


def without_table(parsed: ParsedFile) -> ParsedFile:
    """The file without the cells of its table, but with its typed rows: all an upload needs of it (`sheet_rows`,
    then `without_cells`)."""
    return replace(parsed, table=replace(parsed.table, rows=[]))


def without_cells(parsed: ParsedFile) -> ParsedFile:
    """The file's kind, columns and warnings without its cells and typed rows: what a job still needs once it has
    its `sheet_rows` (the cells of 100,000 rows are a hundred megabytes)."""
    return replace(parsed, table=replace(parsed.table, rows=[]), rows=(), accounts=())


def row_count(parsed: ParsedFile) -> int:
    """How many rows `sheet_rows` gives (the valid rows and the rows with problems), without building them."""
    return len({row.row_number for row in parsed.rows} | {problem.row_number for problem in parsed.problems})


@paused_gc()
def sheet_rows(parsed: ParsedFile) -> list[SheetRow]:
    """Every data row of the file: the valid ones with their values, the others held with their problems."""
    kind = str(parsed.kind)
    problems: dict[int, list[tuple[str, str, str]]] = {}
    for problem in parsed.problems:
        problems.setdefault(problem.row_number, []).append((problem.code, problem.column, problem.message))
    rows = [SheetRow(row.row_number, _values(kind, row), problems.pop(row.row_number, []))  # type: ignore
            for row in parsed.rows]
    for row_number, found in problems.items():
        rows.append(SheetRow(row_number, {}, found, held=True))
    rows.sort(key=lambda r: r.row_number)
    return rows


# Workbooks written back ------------------------------------------------------------------------------------------

_ACTIONS = {"create": files.Action.CREATE, "update": files.Action.UPDATE, "link": files.Action.LINK,
            "unchanged": files.Action.UNCHANGED, "skipped": files.Action.SKIP, "error": files.Action.ERROR}


def _problems(plan: object) -> tuple[files.Problem, ...]:
    return tuple(files.Problem(plan.row_number, code, column, message)  # type: ignore[attr-defined]
                 for code, column, message, _warning in plan.problems)  # type: ignore[attr-defined]


@paused_gc()  # a cell object or two per cell, no cycles among them
def annotated_workbook(parsed: ParsedFile, plans: Sequence[object], lines: Sequence[str]) -> bytes:
    outcomes = [files.RowOutcome(p.row_number, _ACTIONS[p.action], _problems(p))  # type: ignore[attr-defined]
                for p in plans]
    return files.write_annotated_workbook(parsed, outcomes, title="Trial run", lines=lines)


@paused_gc()
def log_workbook(rows: Sequence[SheetRow], plans: Sequence[object], lines: Sequence[str]) -> bytes:
    """The upload log of the file's rows (`sheet_rows`) and what the upload did with each."""
    by_row = {row.row_number: row for row in rows}
    entries = []
    for plan in plans:
        row = by_row.get(plan.row_number)  # type: ignore[attr-defined]
        values = row.values if row is not None else {}
        name = " ".join(filter(None, (values.get("FIRST_NAME", ""), values.get("LAST_NAME", ""))))
        linked = plan.new_student_ids  # type: ignore[attr-defined]
        entries.append(files.LogEntry(
            row_number=plan.row_number, action=_ACTIONS[plan.action],  # type: ignore[attr-defined]
            logonid=plan.username or values.get("LOGONID", ""), name=name,  # type: ignore[attr-defined]
            email=values.get("EMAIL", "") or values.get("CONTACT_EMAIL", ""),
            student_ids=tuple(row.students() if row is not None else ()), problems=_problems(plan),
            detail=(f"{len(linked)} student{'s' if len(linked) != 1 else ''} linked" if linked else "")
            + ("; invitation emailed" if plan.invitation else "")))  # type: ignore[attr-defined]
    return files.write_upload_log(entries, title="Upload log", lines=lines)


def template_workbook(students: Iterable[accounts_pb2.Student], selection: str = "",
                      school_name: str = "Parent Portal") -> bytes:
    chosen = [
        files.TemplateStudent(
            student_id=s.id, first_name=s.first_name, last_name=s.last_name, grad_year=s.grad_year or None,
            group=s.group, school=s.school,
            contacts=tuple(files.TemplateContact(
                first_name=c.contact.first_name, last_name=c.contact.last_name, email=c.contact.email,
                logonid=c.account_username, parental_responsibility=c.parental_responsibility)
                for c in s.contacts if not c.contact.no_contact))
        for s in students
    ]
    return files.write_template(chosen, selection=selection, school_name=school_name)
