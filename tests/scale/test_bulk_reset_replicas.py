"""A bulk reset across two accounts replicas on one PostgreSQL: the replica running it is stopped with SIGTERM
after its first chunk has committed (a rolling restart). It releases the job, the other replica finishes it, no
staff call fails meanwhile, every parent is reset once (one reset email each), and both replicas served calls.

Lookups come from several unpaced streams at once, so that some race with the replica's shutdown: before the
drain (plumbing.server DRAIN_SECONDS, clients' health checks) three runs in eight had a lookup CANCELLED."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter

import pytest
from sqlalchemy import text

from plumbing.clients import open_channel
from plumbing.context import set_call_context
from plumbing.db import Database
from plumbing.server import GRACE_SECONDS
from portal.accounts.v1 import accounts_pb2
from portal.common.v1 import jobs_pb2
from tests.scale.cluster import Cluster
from tests.scale.test_scale_out import CallStream, JobRow, stopped
from tests.support.databases import fresh_database, postgres_base_url
from tests.support.smtp import SmtpServer
from tests.support.stack import STAFF, Stack, eventually

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(600)]

PARENTS = 3000
LEASE_SECONDS = 3
LOOKUP_STREAMS = 8


def job_row(db: Database, job_id: str) -> JobRow:
    with db.read() as session:
        row = session.execute(text("SELECT state, done, lease_owner, lease_expires, now() AS now "
                                   "FROM accounts_jobs WHERE id = :id"), {"id": job_id}).one()
        return JobRow(row.state, row.done, row.lease_owner, row.lease_expires, row.now)


async def test_a_bulk_reset_survives_stopping_the_replica_running_it(tmp_path) -> None:
    if postgres_base_url() is None:
        pytest.skip("PORTAL_TEST_DATABASE_URL is not set: replicas need one PostgreSQL to share (CI has one)")
    with fresh_database("postgresql", tmp_path) as url, SmtpServer() as smtp:
        cluster = Cluster.plan(
            tmp_path, url, replicas={"accounts": 2, "imports": 1, "notify": 1}, shared_data_dir=True,
            PORTAL_SMTP_HOST=smtp.host, PORTAL_SMTP_PORT=str(smtp.port), PORTAL_JOB_LEASE_SECONDS=str(LEASE_SECONDS),
            PORTAL_HASH_WORKERS="1", PORTAL_NOTIFY_POLL_SECONDS="0.2", PORTAL_RESET_DELIVERY_WAIT_SECONDS="0")
        cluster.migrate()
        cluster.start_all()
        jobs_db = Database(url, "accounts", pool_size=1)
        try:
            await cluster.wait_all_serving()
            set_call_context(STAFF, "", None)
            async with open_channel(cluster.client_settings(), "accounts") as accounts:
                stack = Stack(cluster.client_settings(), {"accounts": accounts})
                await stack.accounts.BatchUpsertRoster(accounts_pb2.BatchUpsertRosterRequest(
                    students=[accounts_pb2.Student(id="S1", first_name="Sam", last_name="Family", grad_year=2030)]))
                for start in range(0, PARENTS, 1000):
                    await stack.accounts.BatchApplyAccountRows(accounts_pb2.BatchApplyAccountRowsRequest(
                        rows=[accounts_pb2.AccountRow(
                            row_number=n + 2, username=f"parent{n:05d}", first_name="Pat", last_name=f"Family{n}",
                            email=f"parent{n:05d}@example.org", type=accounts_pb2.ACCOUNT_TYPE_GUARDIAN,
                            student_ids=["S1"]) for n in range(start, min(start + 1000, PARENTS))],
                        request_id=f"seed-{start}"), timeout=300)

                lookups = [CallStream(stack, pause=0) for _ in range(LOOKUP_STREAMS)]
                streams = [asyncio.create_task(calls.run()) for calls in lookups]
                job = await stack.accounts.StartBulkReset(accounts_pb2.StartBulkResetRequest(
                    spec=accounts_pb2.BulkResetSpec(selector=jobs_pb2.Selector(all=True)),
                    request_id="scale-bulk-reset", previewed_count=PARENTS), timeout=60)

                def first_chunk(row: JobRow) -> bool:
                    if row.state not in ("queued", "running"):
                        raise AssertionError(f"the reset ended before a replica could be stopped: {row}")
                    return row.done > 0 and row.owner_pid is not None

                running = await eventually(lambda: asyncio.to_thread(job_row, jobs_db, job.id), first_chunk,
                                           every=0.02, what="a committed chunk")
                holder = cluster.by_pid("accounts", running.owner_pid or 0)
                assert holder.process is not None
                holder.process.send_signal(signal.SIGTERM)
                assert await stopped(holder, 4 * GRACE_SECONDS) == 0

                done = await eventually(lambda: stack.accounts.GetJob(accounts_pb2.GetJobRequest(id=job.id)),
                                        lambda j: j.state in (3, 4, 5), timeout=300, what="the reset finished")
                assert done.state == 3, done.summary
                finished = await asyncio.to_thread(job_row, jobs_db, job.id)
                assert finished.done == PARENTS
                for calls in lookups:
                    calls.stop.set()
                await asyncio.gather(*streams)
            # Every parent got exactly one email with a fresh link (the accounts were made without emails, and
            # these parents never set a password, so their link is an invitation link).
            resets = await eventually(lambda: asyncio.to_thread(lambda: list(smtp.messages)),
                                      lambda found: len(found) >= PARENTS, timeout=300, every=0.5,
                                      what="every reset email")
            assert all("set-password?token=" in m.part("text/plain") for m in resets)
            received = Counter(m.rcpt_tos[0] for m in resets)
            assert len(received) == PARENTS and set(received.values()) == {1}
            assert [f for calls in lookups for f in calls.failures] == []
            assert all(calls.ok > 0 for calls in lookups)
            for replica in cluster.replicas["accounts"]:
                assert replica.calls(), f"{replica.name} served no call: round robin did not reach it"
        finally:
            cluster.stop_all()
            jobs_db.dispose()
