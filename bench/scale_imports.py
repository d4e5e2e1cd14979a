"""Benchmark: four parents files uploaded at once with 1 and with 2 imports replicas on PostgreSQL, as real
processes (`portal serve ...`, the image's commands) dialing each other round robin. Prints rows/s for each, the
ratio, and where the CPU went (each process with its children: accounts' password-hashing workers, imports' parse
workers).

    PORTAL_BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/scale_imports.py             # four 20,000-row files
    ... bench/scale_imports.py --quick                      # four 2,000-row files
    ... bench/scale_imports.py --quick --invitations-only   # no passwords: no argon2 hashing at all

Files come from bench/make_parent_file.py (about one row in ten has a password, hashed with argon2id at OWASP
parameters; the rest get invitations). Both runs have one accounts and one notify process, so only the imports
replicas vary. No SMTP server runs: invitations are queued in notify's outbox, not delivered
(bench/notify_delivery.py measures delivery). Trial runs happen first and are not timed; the clock runs from the
four StartUpload calls to the end of the last upload. PORTAL_TEST_DATABASE_URL is used when the bench variable is
unset; without PostgreSQL the benchmark says so and stops (SQLite has one writer: replicas would only queue).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.make_parent_file import HEADER, parent_rows  # noqa: E402
from plumbing.clients import open_channel  # noqa: E402
from plumbing.context import Actor, set_call_context  # noqa: E402
from portal.accounts.v1 import accounts_pb2, accounts_pb2_grpc  # noqa: E402
from portal.imports.v1 import imports_pb2, imports_pb2_grpc  # noqa: E402
from tests.scale.cluster import Cluster, cpu_seconds  # noqa: E402
from tests.support.databases import PG_ENV, fresh_database  # noqa: E402
from tests.support.workbooks import xlsx_bytes  # noqa: E402

FILES = 4
ENDED = (3, 4, 5)


def parent_files(rows: int, invitations_only: bool) -> list[bytes]:
    """FILES distinct parent files (usernames and emails made unique per file); students shared between them."""
    files = []
    for number in range(FILES):
        body = []
        for row in parent_rows(rows, seed=100 + number):
            # Usernames and emails in plain ASCII (the generator's accented ones are refused, as they should be).
            logon, email = (_ascii(row[0]), _ascii(row[3]))
            row[0] = f"f{number}.{logon}" if "@" in logon else f"f{number}{logon}"
            row[3] = f"f{number}.{email}"
            if invitations_only:
                row[4] = row[7] = ""
            body.append(row)
        files.append(xlsx_bytes([HEADER, *body]))
    return files


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def student_ids(rows: int) -> list[str]:
    ids: set[str] = set()
    for number in range(FILES):
        for row in parent_rows(rows, seed=100 + number):
            ids.update(part for part in row[6].split(";") if part)
    return sorted(ids)


@dataclass
class Result:
    replicas: int
    rows: int
    seconds: float
    cpu: dict[str, float]
    counts: dict[str, int]

    @property
    def rate(self) -> float:
        return self.rows / self.seconds


async def wait_ended(stub: imports_pb2_grpc.ImportsServiceStub, job_id: str, timeout: float) -> imports_pb2.ImportJob:
    deadline = time.monotonic() + timeout
    while True:
        job = await stub.GetImportJob(imports_pb2.GetImportJobRequest(id=job_id), timeout=30)
        if job.job.state in ENDED:
            if job.job.state != 3:
                raise SystemExit(f"job {job_id} did not succeed: {job.job.summary} {job.job.error.message}")
            return job
        if time.monotonic() > deadline:
            raise SystemExit(f"job {job_id} still running after {timeout:.0f} s")
        await asyncio.sleep(0.25)


async def trial_run(stub: imports_pb2_grpc.ImportsServiceStub, name: str, data: bytes) -> imports_pb2.ImportJob:
    async def parts():  # type: ignore[no-untyped-def]
        yield imports_pb2.CreateTrialRunRequest(header=imports_pb2.TrialRunHeader(filename=name))
        for start in range(0, len(data), 256 * 1024):
            yield imports_pb2.CreateTrialRunRequest(chunk=data[start:start + 256 * 1024])

    job = await stub.CreateTrialRun(parts(), timeout=300)
    return await wait_ended(stub, job.id, 1800)


async def one_run(replicas: int, files: list[bytes], students: list[str], rows: int, batch: int) -> Result:
    with tempfile.TemporaryDirectory(prefix="portal-scale-bench-") as tmp, \
            fresh_database("postgresql", Path(tmp)) as url:
        # One host: the processes share a data dir for blobs, as containers sharing a volume do.
        cluster = Cluster.plan(Path(tmp), url, {"accounts": 1, "imports": replicas, "notify": 1}, True,
                               PORTAL_IMPORT_BATCH_ROWS=str(batch), PORTAL_LOG_LEVEL="WARNING")
        cluster.migrate()
        cluster.start_all()
        try:
            await cluster.wait_all_serving()
            settings = cluster.client_settings()
            set_call_context(Actor("U0BENCH", "Benchmark"), "", None)
            async with open_channel(settings, "accounts") as a_channel, open_channel(settings, "imports") as i_channel:
                accounts = accounts_pb2_grpc.AccountsServiceStub(a_channel)
                imports = imports_pb2_grpc.ImportsServiceStub(i_channel)
                for start in range(0, len(students), 5000):
                    await accounts.BatchUpsertRoster(accounts_pb2.BatchUpsertRosterRequest(students=[
                        accounts_pb2.Student(id=sid, first_name="Kid", last_name=f"Family{sid}", grad_year=2030)
                        for sid in students[start:start + 5000]]), timeout=300)
                trials = await asyncio.gather(*(trial_run(imports, f"parents{n}.xlsx", data)
                                                for n, data in enumerate(files)))
                before = {r.name: cpu_seconds(r.pid) for rs in cluster.replicas.values() for r in rs}
                started = time.perf_counter()
                uploads = await asyncio.gather(*(imports.StartUpload(imports_pb2.StartUploadRequest(
                    job_id=trial.job.id, request_id=f"bench:{trial.job.id}"), timeout=60) for trial in trials))
                ended = await asyncio.gather(*(wait_ended(imports, job.id, 3600) for job in uploads))
                seconds = time.perf_counter() - started
                cpu = {r.name: cpu_seconds(r.pid) - before[r.name] for rs in cluster.replicas.values() for r in rs}
            counts = {"create": 0, "update": 0, "link": 0, "unchanged": 0, "errors": 0, "skipped": 0}
            for job in ended:
                for key in counts:
                    counts[key] += int(getattr(job.counts, key, 0))
            return Result(replicas, rows * FILES, seconds, cpu, counts)
        finally:
            cluster.stop_all()


def show(result: Result) -> None:
    cpu = ", ".join(f"{name} {seconds:.1f}" for name, seconds in result.cpu.items())
    print(f"{result.replicas} imports replica(s): {result.rows:,} rows in {result.seconds:6.1f} s = "
          f"{result.rate:7.1f} rows/s   (CPU s, with children: {cpu})")
    print(f"    outcomes: {result.counts}")


async def main_async(args: argparse.Namespace) -> int:
    base = os.environ.get("PORTAL_BENCH_DATABASE_URL", "").strip() or os.environ.get(PG_ENV, "").strip()
    if not base:
        print("set PORTAL_BENCH_DATABASE_URL (or PORTAL_TEST_DATABASE_URL) to a PostgreSQL server: replicas share "
              "work through PostgreSQL (FOR UPDATE SKIP LOCKED); SQLite has one writer", file=sys.stderr)
        return 2
    os.environ[PG_ENV] = base
    rows = 2_000 if args.quick else args.rows
    print(f"{FILES} files x {rows:,} rows uploaded at once, batches of {args.batch}; "
          f"{'no passwords' if args.invitations_only else 'about 1 row in 10 with a password (argon2id)'}; "
          f"{os.cpu_count()} CPUs")
    files = parent_files(rows, args.invitations_only)
    students = student_ids(rows)
    results = []
    for replicas in (1, 2):
        result = await one_run(replicas, files, students, rows, args.batch)
        show(result)
        results.append(result)
    print(f"ratio (2 replicas / 1): {results[1].rate / results[0].rate:.2f}x")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="four 2,000-row files")
    parser.add_argument("--rows", type=int, default=20_000, help="rows per file (default 20,000)")
    parser.add_argument("--batch", type=int, default=1000, help="PORTAL_IMPORT_BATCH_ROWS (default 1,000)")
    parser.add_argument("--invitations-only", action="store_true", help="blank every password (no hashing)")
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
