"""Benchmark: create accounts with passwords through BatchApplyAccountRows (argon2id at OWASP parameters, hashed in
the service's process pool), with 1 and with 2 hashing workers. Prints accounts/s for each and the speed-up.

    .venv/bin/python bench/accounts_hash.py            # 10,000 accounts per run
    .venv/bin/python bench/accounts_hash.py --quick    # 400 accounts per run
    PORTAL_BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres .venv/bin/python \\
        bench/accounts_hash.py --quick

Each run starts the real server on a fresh database and uploads the rows in batches of 500, as an import would.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.accounts_common import bench_settings, running_accounts
from portal.accounts.v1 import accounts_pb2 as pb
from services.accounts.hashing import OWASP
from services.accounts.service import AccountsOptions

BATCH = 500


def rows(count: int) -> list[pb.AccountRow]:
    return [pb.AccountRow(row_number=i + 2, username=f"hashed{i:06d}", first_name="Ava", last_name="Patel",
                          email=f"hashed{i:06d}@example.org", password=f"Bench-{i:06d}-Pass")
            for i in range(count)]


async def run(workers: int, count: int) -> float:
    """Accounts per second with `workers` hashing processes."""
    work = rows(count)
    requests = [pb.BatchApplyAccountRowsRequest(rows=work[i:i + BATCH], request_id=f"hash-{i}")
                for i in range(0, count, BATCH)]
    with bench_settings() as settings:
        async with running_accounts(settings, AccountsOptions(hash_workers=workers, hash_params=OWASP)) as stub:
            started = time.perf_counter()
            created = 0
            for request in requests:
                reply = await stub.BatchApplyAccountRows(request, timeout=3600)
                created += sum(r.action == pb.ROW_ACTION_CREATE for r in reply.results)
            seconds = time.perf_counter() - started
    assert created == count, f"created {created} of {count}"
    return count / seconds


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="400 accounts per run instead of 10,000")
    args = parser.parse_args()
    count = 400 if args.quick else 10_000
    print(f"creating {count:,} accounts with passwords per run (argon2id m={OWASP.memory_cost} KiB, "
          f"t={OWASP.time_cost}, p={OWASP.parallelism}); this machine has {os.cpu_count()} CPUs")
    one = await run(1, count)
    print(f"1 worker:  {one:7.1f} accounts/s")
    two = await run(2, count)
    print(f"2 workers: {two:7.1f} accounts/s  ({two / one:.2f}x)")


if __name__ == "__main__":
    asyncio.run(main())
