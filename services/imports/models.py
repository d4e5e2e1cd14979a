"""Tables of the imports service (SQLAlchemy typed models); the one place its schema is described."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from plumbing.db import UtcDateTime, make_base
from plumbing.jobs import jobs_table

Base = make_base()

# Trial runs, uploads and undos (plumbing.jobs): payload holds the file's name, kind and blob keys.
import_jobs = jobs_table(Base.metadata, "import_jobs")


class ImportProblem(Base):
    """A problem found in one row of a trial run or an upload, as staff see it (row, column, code, fix)."""

    __tablename__ = "import_problems"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(64), ForeignKey("import_jobs.id", ondelete="CASCADE"))
    row_number: Mapped[int] = mapped_column(Integer)
    column: Mapped[str] = mapped_column(String(100), default="")
    code: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(Text)
    warning: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (Index("ix_import_problems_job_row", "job_id", "row_number"),)


class ImportOutcome(Base):
    """What an upload did to one row: what undo needs and what the log workbook lists (never a password)."""

    __tablename__ = "import_outcomes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(64), ForeignKey("import_jobs.id", ondelete="CASCADE"))
    row_number: Mapped[int] = mapped_column(Integer)
    # create / update / link / unchanged / error / skipped
    action: Mapped[str] = mapped_column(String(16))
    username: Mapped[str] = mapped_column(String(150), default="")
    # JSON list of student ids this row newly linked.
    new_student_ids: Mapped[str] = mapped_column(Text, default="[]")
    # JSON list of (code, column, message) problems.
    problems: Mapped[str] = mapped_column(Text, default="[]")
    invitation_queued: Mapped[bool] = mapped_column(Boolean, default=False)
    undone_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)

    __table_args__ = (Index("ix_import_outcomes_job_row", "job_id", "row_number"),)
