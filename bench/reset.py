"""Benchmark: a bulk reset of every parent account through gRPC (PreviewBulkReset, then StartBulkReset and the job
to its end), with the real accounts server in this process. Prints the preview's time and the time to revoke old
links, issue new set-password tokens (SHA-256 only: no password hashing on the link path) and queue the emails in
the outbox, as accounts per second.

    .venv/bin/python bench/reset.py            # 10,000 accounts
    .venv/bin/python bench/reset.py --quick    # 2,000 accounts
    PORTAL_BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres .venv/bin/python \\
        bench/reset.py --quick

Notify is not running: the emails stay in the outbox (what is measured ends there), and the job writes its
workbook without waiting for deliveries (PORTAL_RESET_DELIVERY_WAIT_SECONDS=0).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select

from bench.accounts_common import bench_settings, migrated, running_accounts, seed
from portal.accounts.v1 import accounts_pb2 as pb
from portal.common.v1 import jobs_pb2
from services.accounts.models import SetPasswordTokenRecord, accounts_outbox
from services.accounts.service import AccountsOptions

POLL_SECONDS = 0.05


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 accounts")
    args = parser.parse_args()
    accounts = 2_000 if args.quick else 10_000
    with bench_settings() as base:
        settings = base.model_copy(update={"reset_delivery_wait_seconds": 0.0})
        db = migrated(settings)
        seed(db, accounts, accounts, random.Random(11))
        async with running_accounts(settings, AccountsOptions(hash_workers=1)) as stub:
            spec = pb.BulkResetSpec(selector=jobs_pb2.Selector(all=True), enable_two_factor=True)
            started = time.perf_counter()
            preview = await stub.PreviewBulkReset(pb.PreviewBulkResetRequest(spec=spec), timeout=300)
            preview_seconds = time.perf_counter() - started
            assert preview.reset_count == accounts, preview.reset_count

            started = time.perf_counter()
            job = await stub.StartBulkReset(pb.StartBulkResetRequest(spec=spec, previewed_count=accounts),
                                            timeout=60)
            queued_at = None
            while True:
                job = await stub.GetJob(pb.GetJobRequest(id=job.id), timeout=30)
                if queued_at is None and job.total and job.done >= job.total:
                    queued_at = time.perf_counter()
                if job.state in (jobs_pb2.JOB_STATE_SUCCEEDED, jobs_pb2.JOB_STATE_FAILED):
                    break
                await asyncio.sleep(POLL_SECONDS)
            ended = time.perf_counter()
        assert job.state == jobs_pb2.JOB_STATE_SUCCEEDED, job
        with db.read() as session:
            tokens = session.scalar(select(func.count()).select_from(SetPasswordTokenRecord))
            emails = session.scalar(select(func.count()).select_from(accounts_outbox))
        db.dispose()
    queued = (queued_at or ended) - started
    print(f"bulk reset of {accounts:,} accounts on {settings.resolved_database_url.split(':')[0]} "
          f"(links emailed, two-factor turned on)")
    print(f"preview: {preview_seconds:.2f} s ({accounts / preview_seconds:,.0f} accounts/s)")
    print(f"tokens issued and emails queued: {queued:.2f} s ({accounts / queued:,.0f} accounts/s); "
          f"{tokens:,} tokens, {emails:,} outbox emails (reset + two-factor notices)")
    print(f"whole job with its workbook: {ended - started:.2f} s")


if __name__ == "__main__":
    asyncio.run(main())
