"""Storage of the imports service: jobs (via plumbing.jobs), row problems and upload outcomes.
The one place its SQL lives."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from plumbing.bulk import insert_many
from plumbing.db import Database
from plumbing.jobs import JobStore
from services.imports.models import ImportOutcome, ImportProblem, import_jobs
from services.imports.planning import RowPlan


@dataclass(frozen=True)
class Problem:
    row_number: int
    column: str
    code: str
    message: str
    warning: bool = False


@dataclass(frozen=True)
class StoredOutcome:
    """What an upload did with one row, as `outcome_rows` stored it."""

    row_number: int
    action: str
    username: str = ""
    new_student_ids: tuple[str, ...] = ()
    problems: tuple[tuple[str, str, str], ...] = ()
    invitation_queued: bool = False
    id: int = 0
    undone: bool = False


_list_json = json.JSONEncoder(separators=(",", ":")).encode


def outcome_rows(job_id: str, plans: Iterable[RowPlan]) -> list[dict[str, Any]]:
    """The stored form of what an upload did with each row. Built before the write transaction that stores it:
    a hundred thousand rows take a second or more, which other writers would otherwise wait through."""
    return [{"job_id": job_id, "row_number": p.row_number, "action": p.action, "username": p.username,
             "new_student_ids": _list_json(p.new_student_ids) if p.new_student_ids else "[]",
             "problems": _list_json([(c, col, m) for c, col, m, _w in p.problems]) if p.problems else "[]",
             "invitation_queued": p.invitation} for p in plans]


class ImportsStore:
    def __init__(self, db: Database, lease: float = 30.0) -> None:
        self.db = db
        self.jobs = JobStore(db, import_jobs, "imp", lease)

    # Problems -------------------------------------------------------------------------------------------------

    def replace_problems(self, session: Session, job_id: str, problems: Sequence[Problem]) -> None:
        session.execute(delete(ImportProblem).where(ImportProblem.job_id == job_id))
        self.add_problems(session, job_id, problems)

    def add_problems(self, session: Session, job_id: str, problems: Sequence[Problem]) -> None:
        insert_many(session, ImportProblem.__table__, [
            {"job_id": job_id, "row_number": p.row_number, "column": p.column, "code": p.code,
             "message": p.message, "warning": p.warning} for p in problems])

    def problems(self, session: Session, job_id: str, *, after_id: int = 0, limit: int = 100
                 ) -> list[tuple[int, Problem]]:
        rows = session.scalars(
            select(ImportProblem).where(ImportProblem.job_id == job_id, ImportProblem.id > after_id)
            .order_by(ImportProblem.row_number, ImportProblem.id).limit(limit)
        )
        return [(r.id, Problem(r.row_number, r.column, r.code, r.message, r.warning)) for r in rows]

    def problems_page(self, session: Session, job_id: str, offset: int, limit: int) -> list[Problem]:
        rows = session.scalars(
            select(ImportProblem).where(ImportProblem.job_id == job_id)
            .order_by(ImportProblem.row_number, ImportProblem.id).offset(offset).limit(limit)
        )
        return [Problem(r.row_number, r.column, r.code, r.message, r.warning) for r in rows]

    def all_problems(self, session: Session, job_id: str) -> list[Problem]:
        return self.problems_page(session, job_id, 0, 10_000_000)

    # Outcomes -------------------------------------------------------------------------------------------------

    def add_outcomes(self, session: Session, rows: Sequence[dict[str, Any]]) -> None:
        """Store what `outcome_rows` built."""
        insert_many(session, ImportOutcome.__table__, rows)

    def outcomes(self, session: Session, job_id: str) -> list[StoredOutcome]:
        o = ImportOutcome
        rows = session.execute(select(o.row_number, o.action, o.username, o.new_student_ids, o.problems,
                                      o.invitation_queued, o.id, o.undone_at).where(o.job_id == job_id)
                               .order_by(o.row_number, o.id))
        return [StoredOutcome(
            row_number=r.row_number, action=r.action, username=r.username,
            new_student_ids=tuple(json.loads(r.new_student_ids)),
            problems=tuple(tuple(p) for p in json.loads(r.problems)),  # type: ignore[misc]
            invitation_queued=r.invitation_queued, id=r.id, undone=r.undone_at is not None,
        ) for r in rows]

    def outcome_count(self, session: Session, job_id: str) -> int:
        return int(session.scalar(select(func.count()).select_from(ImportOutcome)
                                  .where(ImportOutcome.job_id == job_id)) or 0)

    def mark_undone(self, session: Session, outcome_ids: Sequence[int], when: datetime) -> None:
        if outcome_ids:
            session.execute(update(ImportOutcome).where(ImportOutcome.id.in_(list(outcome_ids)))
                            .values(undone_at=when))

    def delete_job_rows(self, session: Session, job_id: str) -> None:
        session.execute(delete(ImportProblem).where(ImportProblem.job_id == job_id))
        session.execute(delete(ImportOutcome).where(ImportOutcome.job_id == job_id))

    def expired_trial_runs(self, session: Session, before: datetime) -> list[str]:
        return list(session.scalars(
            select(import_jobs.c.id).where(import_jobs.c.kind == "trial_run", import_jobs.c.created_at < before,
                                           import_jobs.c.state.in_(("succeeded", "failed")))
        ))
