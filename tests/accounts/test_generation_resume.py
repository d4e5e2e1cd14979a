"""An accounts process killed in the middle of a generation run: on restart the job resumes from its last committed
chunk and finishes with every guardian created once, every invitation queued once, and the report counting all."""

from __future__ import annotations

import signal
import subprocess
import sys
from typing import Any

from sqlalchemy import func, select

from plumbing.clients import open_channel
from plumbing.db import Database
from portal.accounts.v1 import accounts_pb2 as pb
from portal.accounts.v1 import accounts_pb2_grpc
from portal.common.v1 import jobs_pb2
from services.accounts.generation import CHUNK
from services.accounts.models import AccountRecord, accounts_outbox
from tests.support.services import make_settings, settings_env, wait_serving
from tests.support.stack import eventually

GUARDIANS = CHUNK * 4


def start_accounts(settings: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "portal", "serve", "accounts"],
                            env=settings_env(settings, PORTAL_LOG_FORMAT="text"), stderr=subprocess.DEVNULL)


async def test_a_killed_run_resumes_and_creates_each_account_once(tmp_path: Any, database_url: str) -> None:
    settings = make_settings(tmp_path / "data", database_url, job_lease_seconds=2)
    process = start_accounts(settings)
    try:
        await wait_serving(settings, "accounts")
        async with open_channel(settings, "accounts") as channel:
            stub = accounts_pb2_grpc.AccountsServiceStub(channel)
            await stub.BatchUpsertRoster(pb.BatchUpsertRosterRequest(
                students=[pb.Student(id=f"S{n:05d}", first_name="Kid", last_name=f"Family{n}")
                          for n in range(GUARDIANS)],
                contacts=[pb.Contact(id=f"C{n:05d}", first_name="Pat", last_name=f"Family{n}",
                                     email=f"parent{n:05d}@example.org") for n in range(GUARDIANS)],
                relationships=[pb.RosterRelationship(student_id=f"S{n:05d}", contact_id=f"C{n:05d}",
                                                     parental_responsibility=True) for n in range(GUARDIANS)]),
                timeout=60)
            plan = await stub.PlanGeneration(pb.PlanGenerationRequest(selector=jobs_pb2.Selector(all=True)))
            assert plan.counts.accounts_to_create == GUARDIANS
            job = await stub.StartGeneration(pb.StartGenerationRequest(plan_id=plan.plan_id, send_invitations=True))

            async def progress() -> jobs_pb2.Job:
                return await stub.GetJob(pb.GetJobRequest(id=job.id))

            seen = await eventually(progress, lambda j: j.done >= CHUNK, every=0.02, what="a committed chunk")
            assert seen.done < GUARDIANS, "the run finished before it could be interrupted"
            process.send_signal(signal.SIGKILL)
            process.wait(10)

            process = start_accounts(settings)
            await wait_serving(settings, "accounts")
            done = await eventually(progress, lambda j: j.state == jobs_pb2.JOB_STATE_SUCCEEDED, timeout=120,
                                    what="the resumed run")
            assert done.done == done.total == GUARDIANS
            assert done.attributes["created"] == str(GUARDIANS) and done.attributes["invitations"] == str(GUARDIANS)
    finally:
        process.kill()
        process.wait(10)
    database = Database(settings.resolved_database_url, "accounts", pool_size=1)
    try:
        with database.read() as session:
            accounts = session.scalar(select(func.count()).select_from(AccountRecord))
            emails = session.scalar(select(func.count(func.distinct(accounts_outbox.c.recipient))))
            queued = session.scalar(select(func.count()).select_from(accounts_outbox))
        assert accounts == emails == queued == GUARDIANS
    finally:
        database.dispose()
