"""Trial run and upload of a large parent-accounts file, end to end through gRPC, against many existing accounts.

    .venv/bin/python bench/imports_trial.py            # 100,000 rows against 150,000 accounts
    .venv/bin/python bench/imports_trial.py --quick    # 10,000 rows against 15,000 accounts

Prints: reading the file with python-calamine alone; the trial run until its counts are ready (and until its
annotated workbook is written); the upload (invitations, no passwords) until every row is applied and its counts
are ready (and until its log workbook is written), against reading plus one bulk SQL insert of the same rows; and
the imports process's peak resident memory. Targets: trial run <= 4x the read, upload <= 4x (read + bulk insert),
imports under 500 MB. Set PORTAL_BENCH_DATABASE_URL to run on PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.accounts_common import bench_settings, free_port, migrated, seed
from bench.make_parent_file import HEADER, parent_rows
from plumbing.clients import open_channel
from plumbing.db import utcnow
from plumbing.server import serving
from portal.imports.v1 import imports_pb2, imports_pb2_grpc
from services.accounts.models import RosterStudentRecord
from services.accounts.service import AccountsOptions, make_spec
from tests.support.services import settings_env, wait_serving


def parent_file(rows: list[list[str]]) -> bytes:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("Parent accounts")
    sheet.append(HEADER)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def read_with_calamine(data: bytes) -> float:
    from python_calamine import CalamineWorkbook

    started = time.perf_counter()
    CalamineWorkbook.from_filelike(io.BytesIO(data)).get_sheet_by_index(0).to_python()
    return time.perf_counter() - started


def bulk_insert(db, rows: list[list[str]]) -> float:
    """One bulk insert of the rows' account columns into a scratch table: the floor of any upload."""
    from sqlalchemy import Column, MetaData, String, Table, insert

    table = Table("bench_upload_floor", MetaData(), *(Column(name.lower(), String(320)) for name in HEADER[:8]))
    table.create(db.engine, checkfirst=True)
    started = time.perf_counter()
    with db.transaction() as session:
        session.execute(insert(table), [dict(zip([c.name for c in table.columns], row[:8], strict=True))
                                        for row in rows])
    elapsed = time.perf_counter() - started
    table.drop(db.engine)
    return elapsed


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def wait_job(stub, job_id: str, until) -> imports_pb2.ImportJob:
    while True:
        job = await stub.GetImportJob(imports_pb2.GetImportJobRequest(id=job_id), timeout=30)
        if until(job):
            return job
        if job.job.state in (4, 5):
            raise SystemExit(f"job {job_id} failed: {job.job.summary}")
        # Ten times a second: fine enough for figures of seconds, and light on the service (each poll reads the
        # job and its first problems; the bot itself polls once a second).
        await asyncio.sleep(0.1)


async def measure(rows: int, accounts: int, trial_only: bool = False) -> None:
    rng = random.Random(11)
    file_rows = [[*row[:4], "", *row[5:]] for row in parent_rows(rows)]  # invitations only: no passwords
    for row in file_rows:
        row[7] = ""
    student_ids = sorted({sid for row in file_rows for sid in row[6].split(";")})
    with bench_settings() as settings:
        settings = settings.model_copy(update={"imports_addr": f"127.0.0.1:{free_port()}"})
        db = migrated(settings)
        seed(db, students=min(accounts, 20_000), accounts=accounts, rng=rng)
        now = utcnow()
        with db.transaction() as session:
            for start in range(0, len(student_ids), 20_000):
                session.execute(RosterStudentRecord.__table__.insert(), [{
                    "id": sid, "first_name": "Kid", "last_name": "Family", "last_name_key": "family",
                    "grad_year": 2030, "group": "7A", "group_key": "7a", "school": "Lincoln High",
                    "school_key": "lincoln high", "status": "active", "created_at": now, "updated_at": now}
                    for sid in student_ids[start:start + 20_000]])
        data = parent_file(file_rows)
        read = min(read_with_calamine(data) for _ in range(2))
        floor = bulk_insert(db, file_rows)
        print(f"file: {rows:,} rows, {len(data) / 1e6:.1f} MB; existing accounts: {accounts:,}; "
              f"database: {db.dialect}")
        print(f"read with python-calamine alone:        {read:7.2f} s")
        print(f"one bulk SQL insert of the rows:        {floor:7.2f} s")
        imports = subprocess.Popen([sys.executable, "-m", "portal", "serve", "imports"],
                                   env=settings_env(settings, PORTAL_LOG_LEVEL="WARNING"))
        try:
            async with serving(make_spec(AccountsOptions()), settings):
                await wait_serving(settings, "imports")
                async with open_channel(settings, "imports") as channel:
                    stub = imports_pb2_grpc.ImportsServiceStub(channel)

                    async def parts():
                        yield imports_pb2.CreateTrialRunRequest(
                            header=imports_pb2.TrialRunHeader(filename="parents.xlsx"))
                        for start in range(0, len(data), 1 << 20):
                            yield imports_pb2.CreateTrialRunRequest(chunk=data[start:start + (1 << 20)])

                    started = time.perf_counter()
                    job = await stub.CreateTrialRun(parts(), timeout=600)
                    counted = await wait_job(stub, job.id, lambda j: bool(j.job.summary) or j.job.state == 3)
                    counts_ready = time.perf_counter() - started
                    finished = await wait_job(stub, job.id, lambda j: j.job.state == 3)
                    trial_done = time.perf_counter() - started
                    counts = finished.counts
                    print(f"trial run until its counts are ready:   {counts_ready:7.2f} s  "
                          f"({counts_ready / read:.2f}x the read; target <= 4x)")
                    print(f"trial run with its annotated workbook:  {trial_done:7.2f} s  ({trial_done / read:.2f}x)")
                    print(f"  counts: create {counts.create:,}, update {counts.update:,}, link {counts.link:,}, "
                          f"unchanged {counts.unchanged:,}, errors {counts.errors:,} ({counted.job.done:,} rows)")
                    codes: dict[str, int] = {}
                    token = ""
                    while True:
                        page = await stub.ListRowProblems(imports_pb2.ListRowProblemsRequest(
                            job_id=job.id, page_size=1000, page_token=token), timeout=60)
                        for problem in page.problems:
                            codes[problem.code] = codes.get(problem.code, 0) + 1
                        token = page.next_page_token
                        if not token:
                            break
                    print("  codes: " + ", ".join(f"{code} {n:,}" for code, n in sorted(codes.items())))
                    if trial_only:
                        return
                    started = time.perf_counter()
                    upload = await stub.StartUpload(imports_pb2.StartUploadRequest(job_id=job.id,
                                                                                   request_id="bench"))
                    await wait_job(stub, upload.id, lambda j: bool(j.job.summary) or j.job.state == 3)
                    applied = time.perf_counter() - started
                    await wait_job(stub, upload.id, lambda j: j.job.state == 3)
                    took = time.perf_counter() - started
                    print(f"upload until every row is applied:      {applied:7.2f} s  "
                          f"({applied / (read + floor):.2f}x read + bulk insert; target <= 4x)")
                    print(f"upload with its log workbook:           {took:7.2f} s  ({took / (read + floor):.2f}x)")
            print(f"imports process peak resident memory:   {peak_rss_mb(imports.pid):7.0f} MB (target < 500 MB)")
        finally:
            imports.terminate()
            imports.wait(30)
        db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 rows against 15,000 accounts")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--accounts", type=int, default=150_000)
    parser.add_argument("--trial-only", action="store_true", help="stop after the trial run (no upload)")
    args = parser.parse_args()
    rows, accounts = (10_000, 15_000) if args.quick else (args.rows, args.accounts)
    asyncio.run(measure(rows, accounts, args.trial_only))


if __name__ == "__main__":
    main()
