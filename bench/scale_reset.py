"""Benchmark: a bulk reset of many parent accounts with 1 and with 2 accounts replicas on PostgreSQL, as real
processes (`portal serve ...`) dialed round robin. Prints accounts/s for each and the ratio.

    PORTAL_BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/scale_reset.py            # 20,000 accounts
    ... bench/scale_reset.py --quick                     # 2,000 accounts

One bulk reset is one job, run chunk after chunk by whichever replica claims it: a second replica adds
availability (it takes the job over if the first stops) and serves the other calls, not speed for one reset.
No SMTP server runs: the emails are queued in notify's outbox; the clock runs from StartBulkReset to the job's end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from plumbing.clients import open_channel  # noqa: E402
from plumbing.context import Actor, set_call_context  # noqa: E402
from portal.accounts.v1 import accounts_pb2, accounts_pb2_grpc  # noqa: E402
from portal.common.v1 import jobs_pb2  # noqa: E402
from tests.scale.cluster import Cluster  # noqa: E402
from tests.support.databases import fresh_database  # noqa: E402


async def one_run(replicas: int, accounts: int) -> float:
    with tempfile.TemporaryDirectory(prefix="portal-bench-") as tmp, fresh_database("postgresql", Path(tmp)) as url:
        cluster = Cluster.plan(Path(tmp), url, replicas={"accounts": replicas, "imports": 1, "notify": 1},
                               shared_data_dir=True, PORTAL_LOG_LEVEL="WARNING", PORTAL_HASH_WORKERS="1",
                               PORTAL_RESET_DELIVERY_WAIT_SECONDS="0")
        cluster.migrate()
        cluster.start_all()
        try:
            await cluster.wait_all_serving()
            set_call_context(Actor("UBENCH", "Benchmark"), "", None)
            async with open_channel(cluster.client_settings(), "accounts") as channel:
                stub = accounts_pb2_grpc.AccountsServiceStub(channel)
                await stub.BatchUpsertRoster(accounts_pb2.BatchUpsertRosterRequest(
                    students=[accounts_pb2.Student(id="S1", first_name="Sam", last_name="Family", grad_year=2030)]))
                for start in range(0, accounts, 1000):
                    await stub.BatchApplyAccountRows(accounts_pb2.BatchApplyAccountRowsRequest(
                        rows=[accounts_pb2.AccountRow(
                            row_number=n + 2, username=f"parent{n:06d}", first_name="Pat", last_name=f"F{n}",
                            email=f"parent{n:06d}@example.org", type=accounts_pb2.ACCOUNT_TYPE_GUARDIAN,
                            student_ids=["S1"]) for n in range(start, min(start + 1000, accounts))],
                        request_id=f"seed-{start}"), timeout=600)
                started = time.perf_counter()
                job = await stub.StartBulkReset(accounts_pb2.StartBulkResetRequest(
                    spec=accounts_pb2.BulkResetSpec(selector=jobs_pb2.Selector(all=True)),
                    request_id=f"bench-{replicas}"), timeout=60)
                while True:
                    state = await stub.GetJob(accounts_pb2.GetJobRequest(id=job.id), timeout=30)
                    if state.state in (3, 4, 5):
                        break
                    await asyncio.sleep(0.05)
                elapsed = time.perf_counter() - started
                if state.state != 3:
                    raise SystemExit(f"the bulk reset failed: {state.summary}")
                return elapsed
        finally:
            cluster.stop_all()


async def main_async(accounts: int) -> int:
    if not (os.environ.get("PORTAL_BENCH_DATABASE_URL") or os.environ.get("PORTAL_TEST_DATABASE_URL")):
        print("set PORTAL_BENCH_DATABASE_URL (PostgreSQL): replicas share one database")
        return 2
    os.environ.setdefault("PORTAL_TEST_DATABASE_URL", os.environ.get("PORTAL_BENCH_DATABASE_URL", ""))
    one = await one_run(1, accounts)
    two = await one_run(2, accounts)
    print(f"bulk reset of {accounts:,} accounts")
    print(f"  1 accounts replica:  {one:6.2f} s  {accounts / one:8.0f} accounts/s")
    print(f"  2 accounts replicas: {two:6.2f} s  {accounts / two:8.0f} accounts/s")
    print(f"  ratio (2 / 1):       {one / two:6.2f}x")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 accounts")
    parser.add_argument("--accounts", type=int, default=20_000)
    args = parser.parse_args()
    return asyncio.run(main_async(2_000 if args.quick else args.accounts))


if __name__ == "__main__":
    sys.exit(main())
