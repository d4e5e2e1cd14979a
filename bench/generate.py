"""Benchmark: generating parent accounts from a district roster. Plans generation for 100,000 students with
150,000 contacts, against the bare set-based SQL reads of the same roster (students, relationships, contacts);
runs the plan (accounts, links and invitations, in chunks, as the job does); and plans again (nothing left to do).
Prints each time and the ratio of planning to the bare reads (the target is at most 3x).

    .venv/bin/python bench/generate.py            # 100,000 students, 150,000 contacts
    .venv/bin/python bench/generate.py --quick    # 10,000 students, 15,000 contacts
    PORTAL_BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres .venv/bin/python \\
        bench/generate.py --quick                 # on a new PostgreSQL database

The roster is a realistic mix: families of one to three children sharing two or three guardians, some guardians
typed twice (same email), a few without an email, without parental responsibility, with a court order, sharing
an email, or with a staff member's email. Planning is measured in the service's own code (one read transaction
and the rules) and through gRPC (PlanGeneration, which also stores the plan); both sides run in alternating
rounds and each side's best round is compared.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, text

from bench.accounts_common import FIRST_NAMES, LAST_NAMES, bench_settings, migrated, running_accounts, student_id
from plumbing.db import Database, utcnow
from portal.accounts.v1 import accounts_pb2 as pb
from portal.common.v1 import jobs_pb2
from services.accounts.domain import StudentSelector
from services.accounts.generation import Generation
from services.accounts.generation_store import GenerationStore, Scope
from services.accounts.models import (
    AccountRecord,
    RosterContactRecord,
    RosterRelationshipRecord,
    RosterStudentRecord,
)
from services.accounts.service import AccountsOptions

BARE_READS = (
    'SELECT id, first_name, last_name, grad_year, "group", school FROM roster_students',
    "SELECT student_id, contact_id, relationship, parental_responsibility, is_primary FROM roster_relationships",
    "SELECT id, first_name, last_name, email, phone, address, no_contact FROM roster_contacts",
)
ENDED = (jobs_pb2.JOB_STATE_SUCCEEDED, jobs_pb2.JOB_STATE_FAILED, jobs_pb2.JOB_STATE_CANCELLED)


SYLLABLES = ("al", "ber", "cas", "dor", "el", "fen", "gar", "hol", "is", "jen", "kor", "lan", "mor", "nev", "or",
             "pen", "quin", "ros", "sal", "tor", "ul", "van", "wes", "yar", "zel")
ENDINGS = ("", "son", "ley", "ford", "ton", "well", "by", "wood", "man", "ridge", "ini", "ez", "ova", "sen")
STREETS = tuple(f"{a.capitalize()}{b} {kind}" for a in SYLLABLES for b in ENDINGS[:6]
                for kind in ("Street", "Road", "Lane"))


def given_name(rng: random.Random) -> str:
    """First names as varied as a district's: common ones, and many others."""
    if rng.random() < 0.3:
        return rng.choice(FIRST_NAMES)
    return (rng.choice(SYLLABLES) + rng.choice(SYLLABLES[:12])).capitalize() + rng.choice(("", "a", "o", "ie"))


def surname(rng: random.Random) -> str:
    """Real surnames and made-up ones: a district has thousands (names decide which contacts may be duplicates)."""
    if rng.random() < 0.1:
        return rng.choice(LAST_NAMES)
    return (rng.choice(SYLLABLES) + rng.choice(SYLLABLES) + rng.choice(ENDINGS)).capitalize()


def seed_roster(db: Database, students: int, contacts_wanted: int, rng: random.Random) -> tuple[int, int]:
    """Families of students with their guardians, straight into the tables; returns (contacts, relationships).
    1% of guardians are also on a second record with the same name and phone but a work email (possible
    duplicates); 5% of siblings' guardians were typed twice with the same email (one guardian)."""
    now = utcnow()
    student_rows, contact_rows, links, staff = [], [], [], []
    index = contact = 0
    # Families average 1.5 children, so 1.5 contacts per student is 2.25 guardians per family.
    third = max(0.0, min(1.0, contacts_wanted / students * 1.5 - 2))
    while index < students:
        size = min(rng.choices((1, 2, 3), (60, 30, 10))[0], students - index)
        last = surname(rng)
        address = f"{rng.randrange(1, 999)} {rng.choice(STREETS)}, Town {rng.randrange(50)}"
        kids = [student_id(i) for i in range(index, index + size)]
        for i, sid in enumerate(kids, start=index):
            student_rows.append({"id": sid, "first_name": rng.choice(FIRST_NAMES), "last_name": last,
                                 "last_name_key": last.lower(), "grad_year": 2026 + i % 13,
                                 "group": f"{7 + i % 6}{'ABCD'[i % 4]}", "group_key": f"{7 + i % 6}{'abcd'[i % 4]}",
                                 "school": f"School {i % 40}", "school_key": f"school {i % 40}", "status": "active",
                                 "created_at": now, "updated_at": now})
        # Enough guardians per family for the wanted number of contacts overall.
        guardians = 3 if rng.random() < third else 2
        for g in range(guardians):
            contact += 1
            first = given_name(rng)
            roll = rng.random()
            email = ("" if roll < 0.04 else f"staff{contact}@school.example" if roll < 0.045 else
                     f"{last.lower()}.family{index}@example.org" if roll < 0.055 else
                     f"guardian{contact}@example.org")
            record = {"first_name": first, "last_name": last, "email": email, "email_key": email.lower(),
                      "phone": f"07{rng.randrange(10**8, 10**9)}", "address": address,
                      "no_contact": rng.random() < 0.005, "created_at": now, "updated_at": now}
            records = [f"C{contact:07d}"]
            if size > 1 and rng.random() < 0.05:  # the same guardian typed again for a sibling (seed 004)
                contact += 1
                records.append(f"C{contact:07d}")
            for number, cid in enumerate(records):
                contact_rows.append({"id": cid, **record})
                mine = kids if len(records) == 1 else (kids[:1] if number == 0 else kids[1:])
                for sid in mine:
                    links.append({"student_id": sid, "contact_id": cid, "relationship": "parent",
                                  "parental_responsibility": rng.random() < 0.9, "is_primary": g == 0,
                                  "updated_at": now})
            if rng.random() < 0.01:  # a look-alike record with a work email: a possible duplicate
                contact += 1
                work = f"{first}.{contact}@work.example".lower()
                contact_rows.append({"id": f"C{contact:07d}", **record, "email": work, "email_key": work})
                links.append({"student_id": kids[-1], "contact_id": f"C{contact:07d}", "relationship": "parent",
                              "parental_responsibility": True, "is_primary": False, "updated_at": now})
            if email.startswith("staff"):
                staff.append({"id": uuid.uuid4().hex, "username": f"staff{contact}", "username_key": f"staff{contact}",
                              "first_name": first, "last_name": last, "last_name_key": last.lower(), "email": email,
                              "email_key": email, "type": "staff", "role": "staff", "status": "active",
                              "must_change_password": False, "two_factor": "off", "password_hash": None,
                              "contact_id": "", "created_at": now, "updated_at": now, "last_sign_in_at": None})
        index += size
    with db.transaction() as session:
        for table, rows in ((RosterStudentRecord, student_rows), (RosterContactRecord, contact_rows),
                            (RosterRelationshipRecord, links), (AccountRecord, staff)):
            for start in range(0, len(rows), 20_000):
                session.execute(insert(table.__table__), rows[start:start + 20_000])
    return len(contact_rows), len(links)


def bare_reads(db: Database) -> float:
    started = time.perf_counter()
    with db.engine.connect() as connection:
        for sql in BARE_READS:
            connection.execute(text(sql)).all()
        connection.rollback()
    return time.perf_counter() - started


def in_process_plan(generation: Generation) -> tuple[float, Any]:
    started = time.perf_counter()
    _snapshot, plan = generation.make_plan(Scope(selector=StudentSelector()), "all", "email")
    return time.perf_counter() - started, plan.counts


async def grpc_plan(stub: Any, workbook: bool) -> tuple[float, pb.PlanGenerationResponse]:
    started = time.perf_counter()
    answer = await stub.PlanGeneration(pb.PlanGenerationRequest(selector=jobs_pb2.Selector(all=True), line_limit=10,
                                                                write_workbook=workbook), timeout=1800)
    return time.perf_counter() - started, answer


async def run(stub: Any, plan_id: str) -> tuple[float, jobs_pb2.Job]:
    started = time.perf_counter()
    job = await stub.StartGeneration(pb.StartGenerationRequest(plan_id=plan_id, send_invitations=True))
    while job.state not in ENDED:
        await asyncio.sleep(0.2)
        job = await stub.GetJob(pb.GetJobRequest(id=job.id))
    return time.perf_counter() - started, job


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 students and 15,000 contacts")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each side; the best of each is kept")
    args = parser.parse_args()
    students, contacts = (10_000, 15_000) if args.quick else (100_000, 150_000)
    rng = random.Random(7)
    with bench_settings() as settings:
        db = migrated(settings)
        started = time.perf_counter()
        contact_count, link_count = seed_roster(db, students, contacts, rng)
        print(f"seeded {students:,} students, {contact_count:,} contacts and {link_count:,} relationships on "
              f"{db.dialect} in {time.perf_counter() - started:.1f} s")
        generation = Generation(db, GenerationStore(), None, None, None, settings, utcnow, lambda: None)  # type: ignore
        plan_times, sql_times, grpc_times = [], [], []
        async with running_accounts(settings, AccountsOptions(hash_workers=1)) as stub:
            for _round in range(args.rounds):
                seconds, counts = await asyncio.to_thread(in_process_plan, generation)
                plan_times.append(seconds)
                sql_times.append(await asyncio.to_thread(bare_reads, db))
                seconds, answer = await grpc_plan(stub, workbook=False)
                grpc_times.append(seconds)
            workbook_seconds, shown = await grpc_plan(stub, workbook=True)
            run_seconds, job = await run(stub, shown.plan_id)
            again_seconds, again = await grpc_plan(stub, workbook=False)
        db.dispose()
    plan_seconds, sql_seconds, grpc_seconds = min(plan_times), min(sql_times), min(grpc_times)
    print(f"plan: {counts.lines:,} lines; {answer.summary}; {counts.links_to_add:,} links; "
          f"{counts.possible_duplicates:,} possible duplicates; skipped by reason: "
          + ", ".join(f"{code} {n:,}" for code, n in counts.reasons.items()))
    print(f"planning (service code, reads + rules): {plan_seconds:7.2f} s  rounds: "
          + ", ".join(f"{t:.2f}" for t in plan_times))
    print(f"bare set-based SQL reads of the roster: {sql_seconds:7.2f} s  rounds: "
          + ", ".join(f"{t:.2f}" for t in sql_times))
    print(f"ratio: {plan_seconds / sql_seconds:.2f}x (target <= 3x)")
    print(f"PlanGeneration through gRPC (plan kept): {grpc_seconds:7.2f} s  ({grpc_seconds / sql_seconds:.2f}x the "
          f"bare reads)  rounds: " + ", ".join(f"{t:.2f}" for t in grpc_times))
    print(f"PlanGeneration with the plan workbook:   {workbook_seconds:7.2f} s")
    created = int(job.attributes.get("created", 0))
    print(f"run (job {jobs_pb2.JobState.Name(job.state).removeprefix('JOB_STATE_').lower()}): {run_seconds:7.2f} s "
          f"for {created:,} accounts and {int(job.attributes.get('links', 0)):,} links "
          f"({created / run_seconds:,.0f} accounts/s): {job.summary}")
    print(f"plan again (nothing to do): {again_seconds:7.2f} s: {again.summary}")
    print(f"peak memory of this process (server included): {peak_mb():,.0f} MB")


if __name__ == "__main__":
    asyncio.run(main())
