"""Benchmark: the portal-usage report (the job's workbook writer, straight from the database) against writing the same
rows with openpyxl's write-only mode alone. Prints the time and the peak resident memory of each (each measured in
a fresh process), and the ratio. Targets: at most 2x the time of openpyxl alone, under 300 MB.

    .venv/bin/python bench/usage.py            # 5,000 parents, 1,000,000 sign-ins
    .venv/bin/python bench/usage.py --quick    # 1,000 parents, 200,000 sign-ins
    .venv/bin/python bench/usage.py --runs 3   # the best of three runs of each side
    PORTAL_BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres .venv/bin/python \\
        bench/usage.py --quick

Over PORTAL_USAGE_SHEET_LIMIT (500) parents the report has a Summary and one "Sign-ins" sheet with a row per
sign-in, which is what both sides write here.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert

from bench.accounts_common import FIRST_NAMES, LAST_NAMES, bench_settings, migrated
from plumbing.config import Settings
from plumbing.db import utcnow
from services.accounts.models import AccountRecord, AccountStudentRecord, RosterStudentRecord, SignInRecord

START = datetime(2026, 9, 1, 7, 0, tzinfo=UTC)
DAYS = 90
TARGET_RATIO = 2.0
TARGET_MB = 300


def parent_row(index: int) -> dict[str, Any]:
    first, last = FIRST_NAMES[index % len(FIRST_NAMES)], LAST_NAMES[index % len(LAST_NAMES)]
    return {"username": f"parent{index:07d}", "name": f"{first} {last}", "email": f"parent{index:07d}@example.org",
            "learners": f"{FIRST_NAMES[(index + 3) % len(FIRST_NAMES)]} {last} (S{index:07d})"}


def sign_in_times(parents: int, sign_ins: int) -> Iterator[tuple[int, datetime]]:
    """(parent index, time) of every sign-in, by parent then time: parent i gets sign_ins / parents of them."""
    per, extra = divmod(sign_ins, parents)
    step = timedelta(days=DAYS) / max(1, per + 1)
    for index in range(parents):
        for n in range(per + (1 if index < extra else 0)):
            yield index, START + step * n + timedelta(seconds=index % 3600)


def seed(settings: Settings, parents: int, sign_ins: int) -> None:
    db = migrated(settings)
    now = utcnow()
    ids = [uuid.uuid4().hex for _ in range(parents)]
    with db.transaction() as session:
        session.execute(insert(RosterStudentRecord.__table__), [{
            "id": f"S{i:07d}", "first_name": FIRST_NAMES[(i + 3) % len(FIRST_NAMES)],
            "last_name": LAST_NAMES[i % len(LAST_NAMES)], "last_name_key": LAST_NAMES[i % len(LAST_NAMES)].lower(),
            "grad_year": 2031, "group": "7B", "group_key": "7b", "school": "North", "school_key": "north",
            "status": "active", "created_at": now, "updated_at": now} for i in range(parents)])
        session.execute(insert(AccountRecord.__table__), [{
            "id": ids[i], "username": f"parent{i:07d}", "username_key": f"parent{i:07d}",
            "first_name": FIRST_NAMES[i % len(FIRST_NAMES)], "last_name": LAST_NAMES[i % len(LAST_NAMES)],
            "last_name_key": LAST_NAMES[i % len(LAST_NAMES)].lower(), "email": f"parent{i:07d}@example.org",
            "email_key": f"parent{i:07d}@example.org", "type": "guardian", "role": "parent", "status": "active",
            "must_change_password": False, "two_factor": "off", "password_hash": None, "contact_id": "",
            "created_at": now, "updated_at": now, "last_sign_in_at": None} for i in range(parents)])
        session.execute(insert(AccountStudentRecord.__table__), [
            {"account_id": ids[i], "student_id": f"S{i:07d}", "created_at": now} for i in range(parents)])
    batch: list[dict[str, Any]] = []
    table = SignInRecord.__table__
    for index, moment in sign_in_times(parents, sign_ins):
        batch.append({"account_id": ids[index], "username_key": f"parent{index:07d}", "time": moment,
                      "success": True, "outcome": "ok", "source": "203.0.113.7"})
        if len(batch) >= 50_000:
            with db.transaction() as session:
                session.execute(insert(table), batch)
            batch = []
    if batch:
        with db.transaction() as session:
            session.execute(insert(table), batch)
    db.dispose()


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_report(settings_json: str, parents: int, out: Any) -> None:
    """In a fresh process: the job's writer, from the database, to .xlsx bytes."""
    from plumbing.blobs import open_blob_store
    from plumbing.db import Database
    from services.accounts.domain import AccountFilter, AccountType
    from services.accounts.jobs import AccountJobs
    from services.accounts.store import AccountStore
    from services.accounts.usage_job import UsageReportJob

    settings = Settings.model_validate_json(settings_json)
    db = Database(settings.resolved_database_url, "accounts")
    job = UsageReportJob(db, AccountStore(), AccountJobs(db, open_blob_store(settings.data_dir, None), settings),
                         settings)
    started = time.perf_counter()
    data, tally = job.build(AccountFilter(type=AccountType.GUARDIAN), date(2026, 8, 1), date(2026, 12, 31))
    seconds = time.perf_counter() - started
    out.send((seconds, peak_mb(), len(data), tally.sign_ins, tally.parents))
    db.dispose()


def run_baseline(parents: int, sign_ins: int, out: Any) -> None:
    """In a fresh process: the same rows, written with openpyxl's write-only mode and nothing else."""
    from openpyxl import Workbook

    from plumbing.sheets import saved

    started = time.perf_counter()
    workbook = Workbook(write_only=True)
    summary = workbook.create_sheet("Summary")
    sheet = workbook.create_sheet("Sign-ins")
    summary.append(["Username", "Name", "Email", "Linked students", "Sign-ins", "First sign-in", "Last sign-in"])
    per, extra = divmod(sign_ins, parents)
    rows = [parent_row(i) for i in range(parents)]
    for index, row in enumerate(rows):
        count = per + (1 if index < extra else 0)
        summary.append([row["username"], row["name"], row["email"], row["learners"], count,
                        START.replace(tzinfo=None), START.replace(tzinfo=None)])
    sheet.append(["Username", "Name", "Email", "Linked learner(s)", "Date", "Time"])
    for index, moment in sign_in_times(parents, sign_ins):
        row = rows[index]
        wall = moment.replace(tzinfo=None)
        sheet.append([row["username"], row["name"], row["email"], row["learners"], wall.date(), wall.time()])
    data = saved(workbook)
    out.send((time.perf_counter() - started, peak_mb(), len(data)))


def in_child(target: Any, *args: Any) -> Any:
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=target, args=(*args, send))
    process.start()
    answer = receive.recv()
    process.join()
    return answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 parents and 200,000 sign-ins")
    parser.add_argument("--runs", type=int, default=1, help="runs of each side, alternating; the best counts "
                        "(a busy machine makes single runs noisy)")
    args = parser.parse_args()
    parents, sign_ins = (1_000, 200_000) if args.quick else (5_000, 1_000_000)
    random.seed(7)
    with bench_settings() as settings, tempfile.TemporaryDirectory():
        started = time.perf_counter()
        seed(settings, parents, sign_ins)
        print(f"seeded {parents:,} parents and {sign_ins:,} sign-ins on {settings.resolved_database_url.split(':')[0]}"
              f" in {time.perf_counter() - started:.1f} s")
        reports, baselines = [], []
        for _ in range(max(1, args.runs)):
            reports.append(in_child(run_report, settings.model_dump_json(), parents))
            baselines.append(in_child(run_baseline, parents, sign_ins))
        seconds, peak, size, written, listed = min(reports)
        assert written == sign_ins and listed == parents, (written, listed)
        base_seconds, base_peak, base_size = min(baselines)
    ratio = seconds / base_seconds
    print(f"usage report (database to .xlsx): {seconds:.1f} s, peak {peak:.0f} MB, {size / 1e6:.1f} MB file, "
          f"{sign_ins / seconds:,.0f} sign-ins/s")
    print(f"openpyxl write-only alone, same rows: {base_seconds:.1f} s, peak {base_peak:.0f} MB, "
          f"{base_size / 1e6:.1f} MB file")
    print(f"ratio {ratio:.2f}x (target <= {TARGET_RATIO:.0f}x): {'ok' if ratio <= TARGET_RATIO else 'OVER'}; "
          f"peak {peak:.0f} MB (target < {TARGET_MB} MB): {'ok' if peak < TARGET_MB else 'OVER'}")


if __name__ == "__main__":
    main()
