"""Benchmark: Authenticate throughput through gRPC (argon2id at OWASP parameters, verified in the service's
process pool with one worker per CPU), many clients signing in at once. Prints sign-ins/s and latencies.

    .venv/bin/python bench/authenticate.py            # 500 accounts, 2,000 sign-ins, 16 at a time
    .venv/bin/python bench/authenticate.py --quick    # 50 accounts, 200 sign-ins
    PORTAL_BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres .venv/bin/python \\
        bench/authenticate.py --quick

One sign-in in ten has a wrong password or an unknown username (they cost the same: a dummy hash is checked).
Each simulated client has its own source address, as parents signing in from home would.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.accounts_common import bench_settings, running_accounts
from portal.accounts.v1 import accounts_pb2 as pb
from services.accounts.hashing import OWASP
from services.accounts.service import AccountsOptions

CONCURRENCY = 16


def password(index: int) -> str:
    return f"Sign-In-{index:05d}x"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="50 accounts and 200 sign-ins")
    args = parser.parse_args()
    accounts, calls = (50, 200) if args.quick else (500, 2000)
    rng = random.Random(11)
    with bench_settings() as settings:
        async with running_accounts(settings, AccountsOptions(hash_params=OWASP)) as stub:
            rows = [pb.AccountRow(row_number=i + 2, username=f"signer{i:05d}", first_name="Ivy", last_name="Chen",
                                  email=f"signer{i:05d}@example.org", password=password(i)) for i in range(accounts)]
            for start in range(0, accounts, 500):
                await stub.BatchApplyAccountRows(pb.BatchApplyAccountRowsRequest(rows=rows[start:start + 500]),
                                                 timeout=3600)
            requests = []
            for call in range(calls):
                index = rng.randrange(accounts)
                kind = rng.random()
                username = f"Signer{index:05d}" if kind >= 0.05 else f"nobody{index:05d}"
                secret = password(index) if kind >= 0.10 else "Wrong-Guess-1"
                requests.append(pb.AuthenticateRequest(username=username, password=secret,
                                                       source=f"10.{call // 65536}.{call // 256 % 256}.{call % 256}"))
            queue: asyncio.Queue[pb.AuthenticateRequest] = asyncio.Queue()
            for request in requests:
                queue.put_nowait(request)
            latencies: list[float] = []
            outcomes: dict[str, int] = {}

            async def client() -> None:
                while not queue.empty():
                    request = queue.get_nowait()
                    began = time.perf_counter()
                    reply = await stub.Authenticate(request, timeout=120)
                    latencies.append(time.perf_counter() - began)
                    name = pb.AuthenticateOutcome.Name(reply.outcome).removeprefix("AUTHENTICATE_OUTCOME_")
                    outcomes[name] = outcomes.get(name, 0) + 1

            started = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
            seconds = time.perf_counter() - started
    latencies.sort()
    print(f"{calls:,} sign-ins against {accounts:,} accounts, {CONCURRENCY} at a time, "
          f"{os.cpu_count()} hashing workers (argon2id m={OWASP.memory_cost} KiB, t={OWASP.time_cost})")
    print("outcomes: " + ", ".join(f"{k.lower()} {v:,}" for k, v in sorted(outcomes.items())))
    print(f"throughput: {calls / seconds:7.1f} sign-ins/s")
    print(f"latency: median {statistics.median(latencies) * 1000:.0f} ms, "
          f"p95 {latencies[int(len(latencies) * 0.95) - 1] * 1000:.0f} ms")


if __name__ == "__main__":
    asyncio.run(main())
