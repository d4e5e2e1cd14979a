"""Benchmark: plan account rows (the trial run) through gRPC, against the bare set-based SQL lookups that planning
needs. Prints both times and their ratio (the target is at most 3x).

    .venv/bin/python bench/accounts_plan.py            # 100,000 rows against 150,000 accounts, batches of 1,000
    .venv/bin/python bench/accounts_plan.py --quick    # 10,000 rows against 15,000 accounts
    PORTAL_BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres .venv/bin/python \\
        bench/accounts_plan.py --quick                 # on a new PostgreSQL database

Rows are a realistic mix: most name existing parents (often adding a sibling), a third are new parents (some on
two rows for siblings), a few break a rule. Both sides read the same database, one batch at a time; they run in
alternating rounds and each side's best round is compared.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import bindparam, text

from bench.accounts_common import bench_settings, migrated, running_accounts, seed, student_id
from plumbing.db import Database
from portal.accounts.v1 import accounts_pb2 as pb
from services.accounts.service import AccountsOptions

# The lookups planning makes for one batch (see AccountStore.snapshot), written out as plain SQL.
ACCOUNT_COLUMNS = ("id, username, username_key, first_name, last_name, email, email_key, type, status, "
                   "must_change_password, contact_id, last_sign_in_at")
LOOKUPS = {
    "accounts": (f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE username_key IN :usernames OR email_key IN :emails",
                 ("usernames", "emails")),
    "schools": ("SELECT account_id, school FROM account_schools WHERE account_id IN :ids", ("ids",)),
    "links": ("SELECT account_id, student_id FROM account_students WHERE account_id IN :ids", ("ids",)),
    "students": ("SELECT id FROM roster_students WHERE id IN :students", ("students",)),
    "contacts": ("SELECT id, email_key, no_contact FROM roster_contacts WHERE id IN :contacts OR email_key IN "
                 ":emails", ("contacts", "emails")),
}


def make_rows(count: int, accounts: int, students: int, rng: random.Random) -> list[pb.AccountRow]:
    rows: list[pb.AccountRow] = []
    number = 2
    while len(rows) < count:
        kind = rng.random()
        if kind < 0.60:
            i = rng.randrange(accounts)
            username = f"parent{i:07d}" if rng.random() < 0.8 else f"Parent{i:07d}"
            kids = [student_id(i % students)] + ([student_id(rng.randrange(students))] if rng.random() < 0.5 else [])
            rows.append(pb.AccountRow(row_number=number, username=username, first_name="", last_name="",
                                      email=f"parent{i:07d}@example.org", student_ids=kids))
        elif kind < 0.97:
            username = f"newparent{number:07d}"
            row = pb.AccountRow(row_number=number, username=username, first_name="Amelia", last_name="O'Brien",
                                email=f"{username}@example.org", student_ids=[student_id(rng.randrange(students))])
            rows.append(row)
            if rng.random() < 0.15:
                number += 1
                rows.append(pb.AccountRow(row_number=number, username=username, first_name="Amelia",
                                          last_name="O'Brien", email=f"{username}@example.org",
                                          student_ids=[student_id(rng.randrange(students))]))
        else:
            rows.append(pb.AccountRow(row_number=number, username="abc", first_name="Bad", last_name="Row",
                                      email="not-an-email", password="weak", student_ids=["S-unknown"]))
        number += 1
    return rows[:count]


def batches(rows: Sequence[pb.AccountRow], size: int) -> list[list[pb.AccountRow]]:
    return [list(rows[i:i + size]) for i in range(0, len(rows), size)]


def bare_sql(db: Database, batches_of_rows: list[list[pb.AccountRow]]) -> float:
    statements = {name: text(sql).bindparams(*(bindparam(p, expanding=True) for p in params))
                  for name, (sql, params) in LOOKUPS.items()}
    started = time.perf_counter()
    with db.engine.connect() as connection:
        for rows in batches_of_rows:
            usernames = sorted({r.username.strip().lower() for r in rows})
            emails = sorted({r.email.strip().lower() for r in rows if r.email})
            students = sorted({s for r in rows for s in r.student_ids})
            found = connection.execute(statements["accounts"], {"usernames": usernames, "emails": emails}).all()
            ids = [row.id for row in found if row.username_key in usernames] or [""]
            connection.execute(statements["schools"], {"ids": ids}).all()
            connection.execute(statements["links"], {"ids": ids}).all()
            connection.execute(statements["students"], {"students": students}).all()
            contacts = sorted({row.contact_id for row in found if row.contact_id}) or [""]
            connection.execute(statements["contacts"], {"contacts": contacts, "emails": emails}).all()
            connection.rollback()
    return time.perf_counter() - started


async def through_grpc(stub, batches_of_rows: list[list[pb.AccountRow]]) -> tuple[float, dict[str, int]]:
    requests = [pb.BatchApplyAccountRowsRequest(rows=rows, validate_only=True) for rows in batches_of_rows]
    actions: dict[str, int] = {}
    started = time.perf_counter()
    for request in requests:
        reply = await stub.BatchApplyAccountRows(request, timeout=120)
        for result in reply.results:
            name = pb.RowAction.Name(result.action)
            actions[name] = actions.get(name, 0) + 1
    return time.perf_counter() - started, actions


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 rows against 15,000 accounts")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each side; the best of each is kept")
    args = parser.parse_args()
    rows_count, accounts, students = (10_000, 15_000, 10_000) if args.quick else (100_000, 150_000, 100_000)
    rng = random.Random(7)
    with bench_settings() as settings:
        db = migrated(settings)
        started = time.perf_counter()
        seed(db, students, accounts, rng)
        print(f"seeded {students:,} students and {accounts:,} accounts on {db.dialect} "
              f"in {time.perf_counter() - started:.1f} s")
        work = batches(make_rows(rows_count, accounts, students, rng), args.batch)
        grpc_times, sql_times = [], []
        async with running_accounts(settings, AccountsOptions(hash_workers=1)) as stub:
            # Alternate the two sides and keep each one's best round, so that neither gains from running second
            # (a warmer page cache) nor loses to a burst of other work on the machine.
            for _round in range(args.rounds):
                seconds, actions = await through_grpc(stub, work)
                grpc_times.append(seconds)
                sql_times.append(await asyncio.to_thread(bare_sql, db, work))
        db.dispose()
        grpc_seconds, sql_seconds = min(grpc_times), min(sql_times)
    print(f"planned {rows_count:,} rows in {len(work)} batches of {args.batch:,}: "
          + ", ".join(f"{k.removeprefix('ROW_ACTION_').lower()} {v:,}" for k, v in sorted(actions.items())))
    print(f"through gRPC (validate_only): {grpc_seconds:7.2f} s  ({rows_count / grpc_seconds:,.0f} rows/s)  "
          f"rounds: {', '.join(f'{t:.2f}' for t in grpc_times)}")
    print(f"bare set-based SQL lookups:   {sql_seconds:7.2f} s  ({rows_count / sql_seconds:,.0f} rows/s)  "
          f"rounds: {', '.join(f'{t:.2f}' for t in sql_times)}")
    print(f"ratio: {grpc_seconds / sql_seconds:.2f}x (target <= 3x)")


if __name__ == "__main__":
    asyncio.run(main())
