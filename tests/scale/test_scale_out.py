"""Scale-out, end to end: two processes of each service (`portal serve ...`, the image's commands) on loopback
against one PostgreSQL, every client dialing both replicas of a service, uploads and workbooks in S3-compatible
object storage (moto's server), invitations to a real SMTP server.

One upload of a few thousand parents, with small batches, lives through what a rolling restart and a node failure
do to it: the imports replica running it is killed (-9) as soon as a batch has committed (the other replica
resumes it when the lease runs out); one accounts replica is stopped with SIGTERM while calls stream in and a slow
call is in its hands (that call completes, no call fails); the imports replica now running the upload is stopped
with SIGTERM while a file streams in to it (it refuses new calls, finishes the one in hand, releases its lease at
once so the restarted replica takes the job over well before the lease would have run out, and runs no new job).
At the end every account exists once, every invitation was sent once, and every replica of every service served
calls (round robin).

PORTAL_SCALE_ROWS and PORTAL_SCALE_BATCH_ROWS size it (defaults: 5,000 rows in batches of 20).
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime

import grpc
import pytest
from openpyxl import load_workbook
from sqlalchemy import text

from plumbing.clients import open_channel
from plumbing.context import set_call_context
from plumbing.db import Database
from plumbing.server import GRACE_SECONDS
from portal.accounts.v1 import accounts_pb2, accounts_pb2_grpc
from portal.imports.v1 import imports_pb2, imports_pb2_grpc
from services.notify.store import NotifyStore
from tests.imports.flows import download, finished, send_file
from tests.scale.cluster import Cluster, Replica, cpu_seconds
from tests.support.databases import fresh_database, postgres_base_url
from tests.support.s3 import s3_process
from tests.support.smtp import SmtpServer
from tests.support.stack import STAFF, Stack, eventually
from tests.support.workbooks import PARENT_HEADER, xlsx_bytes

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(900)]

ROWS = int(os.environ.get("PORTAL_SCALE_ROWS", "5000"))
BATCH = int(os.environ.get("PORTAL_SCALE_BATCH_ROWS", "20"))
LEASE_SECONDS = 3
SLOW_ROWS = 40
EXTRA_ROWS = 20
BUCKET = "portal-scale"


@dataclass(frozen=True)
class JobRow:
    state: str
    done: int
    owner: str
    lease_expires: datetime | None
    now: datetime

    @property
    def owner_pid(self) -> int | None:
        # plumbing.jobs.worker_identity(): hostname:pid:random
        return int(self.owner.split(":")[1]) if self.owner else None


class ImportJobs:
    """Reads the imports service's job row straight from its table: which replica holds the lease, until when."""

    def __init__(self, url: str) -> None:
        self.db = Database(url, "imports", pool_size=1)

    def _read(self, job_id: str) -> JobRow:
        with self.db.read() as session:
            row = session.execute(text("SELECT state, done, lease_owner, lease_expires, now() AS now "
                                       "FROM import_jobs WHERE id = :id"), {"id": job_id}).one()
            return JobRow(row.state, row.done, row.lease_owner, row.lease_expires, row.now)

    async def read(self, job_id: str) -> JobRow:
        return await asyncio.to_thread(self._read, job_id)

    async def until(self, job_id: str, check: Callable[[JobRow], bool], what: str, timeout: float = 120.0) -> JobRow:
        """Poll the row until `check` holds; fail at once if the job ends first (the scenario needs it running)."""
        def holds(row: JobRow) -> bool:
            if check(row):
                return True
            if row.state not in ("queued", "running"):
                raise AssertionError(f"{what}: the job ended first ({row}); raise PORTAL_SCALE_ROWS or lower "
                                     "PORTAL_SCALE_BATCH_ROWS")
            return False

        return await eventually(lambda: self.read(job_id), holds, timeout=timeout, every=0.02, what=what)


@dataclass
class CallStream:
    """Accounts calls made all along (reads, as staff looking people up would): each must succeed."""

    stack: Stack
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    # Pacing, so the stream does not starve the processes on a 2-core machine.
    pause: float = 0.05

    async def run(self) -> None:
        while not self.stop.is_set():
            try:
                await self.stack.accounts.ListAccounts(accounts_pb2.ListAccountsRequest(page_size=5), timeout=30)
                self.ok += 1
            except grpc.RpcError as exc:
                self.failures.append(f"{exc.code().name}: {exc.details()}")
            await asyncio.sleep(self.pause)


def parents(first: int = 0, count: int = ROWS) -> list[list[str]]:
    return [PARENT_HEADER] + [[f"parent{n:05d}", "Pat", f"Family{n}", f"parent{n:05d}@example.org", "", "GUARDIAN",
                                "S1", ""] for n in range(first, first + count)]


def slow_rows() -> list[accounts_pb2.AccountRow]:
    """Accounts with passwords: hashing them (argon2id, one worker) keeps the call busy for a second or so."""
    return [accounts_pb2.AccountRow(row_number=n + 2, username=f"slowcall{n:03d}", first_name="Sam",
                                    last_name=f"Slow{n}", email=f"slowcall{n:03d}@example.org",
                                    password=f"Portal{n:04d}x", type=accounts_pb2.ACCOUNT_TYPE_GUARDIAN,
                                    student_ids=["S1"]) for n in range(SLOW_ROWS)]


def finished_after_stopping(replica: Replica, method: str) -> bool:
    """True when the replica logged `method` as done after it logged that it was stopping (in flight at SIGTERM)."""
    stopping = False
    for entry in replica.log_entries():
        message = str(entry.get("message", ""))
        if "stopping: finishing in-flight calls" in message:
            stopping = True
        elif stopping and message.endswith(f"/{method} ok"):
            return True
    return False


async def stopped(replica: Replica, timeout: float) -> int:
    assert replica.process is not None
    return await asyncio.to_thread(replica.process.wait, timeout)


async def test_replicas_share_an_upload_through_a_kill_and_rolling_restarts(tmp_path) -> None:
    if postgres_base_url() is None:
        pytest.skip("PORTAL_TEST_DATABASE_URL is not set: replicas need one PostgreSQL to share (CI has one)")
    with fresh_database("postgresql", tmp_path) as url, SmtpServer() as smtp, s3_process(BUCKET) as s3:
        cluster = Cluster.plan(
            tmp_path, url,
            PORTAL_SMTP_HOST=smtp.host, PORTAL_SMTP_PORT=str(smtp.port), PORTAL_IMPORT_BATCH_ROWS=str(BATCH),
            PORTAL_JOB_LEASE_SECONDS=str(LEASE_SECONDS), PORTAL_HASH_WORKERS="1",
            PORTAL_NOTIFY_POLL_SECONDS="0.2", PORTAL_NOTIFY_RETRY_INITIAL_SECONDS="0.2",
            PORTAL_BLOB_URL=f"s3://{BUCKET}/district", **s3.env())
        cluster.migrate()
        cluster.start_all()
        jobs = ImportJobs(url)
        try:
            await cluster.wait_all_serving()
            await _scenario(cluster, jobs, smtp, url)
            assert s3.keys("district/imports/"), "uploads and workbooks went to object storage"
        finally:
            cluster.stop_all()
            jobs.db.dispose()


async def _scenario(cluster: Cluster, jobs: ImportJobs, smtp: SmtpServer, url: str) -> None:
    settings = cluster.client_settings()
    set_call_context(STAFF, "", None)
    accounts_a = cluster.replicas["accounts"][0]
    imports_a, imports_b = cluster.replicas["imports"]
    async with open_channel(settings, "accounts") as accounts, open_channel(settings, "imports") as imports:
        stack = Stack(settings, {"accounts": accounts, "imports": imports})
        await stack.accounts.BatchUpsertRoster(accounts_pb2.BatchUpsertRosterRequest(
            students=[accounts_pb2.Student(id="S1", first_name="Sam", last_name="Family", grad_year=2030)]))
        trial = await finished(stack, (await send_file(stack, "parents.xlsx", xlsx_bytes(parents()))).id,
                               timeout=300)
        assert trial.counts.create == ROWS

        calls = CallStream(stack)
        stream = asyncio.create_task(calls.run())
        upload = await stack.imports.StartUpload(imports_pb2.StartUploadRequest(job_id=trial.job.id,
                                                                                request_id="scale-upload"))

        # 1. kill -9 the imports replica running the upload as soon as a batch has committed.
        first = await jobs.until(upload.id, lambda r: r.done >= BATCH and r.owner_pid is not None,
                                 "a committed batch")
        assert first.done < ROWS, "the upload finished before it could be interrupted"
        holder = cluster.by_pid("imports", first.owner_pid or 0)
        other = imports_b if holder is imports_a else imports_a
        assert holder.process is not None
        holder.process.send_signal(signal.SIGKILL)
        await stopped(holder, 10)
        resumed = await jobs.until(upload.id, lambda r: r.owner_pid == other.pid and r.done > first.done,
                                   "the other replica resuming the job", timeout=120)
        assert resumed.state == "running"
        cluster.start(holder)  # restarted, as Kubernetes would

        # 2. SIGTERM one accounts replica while calls stream in (the upload's batches, the lookups) and while a
        #    slow call (passwords to hash) is in its hands: that call completes, and no call fails anywhere.
        victim = accounts_a
        assert victim.process is not None and victim.calls(), "the replica to stop had been serving calls"
        async with open_channel(cluster.replica_settings(victim), "accounts") as direct:
            hashing_before = cpu_seconds(victim.pid, children_only=True)
            slow = asyncio.ensure_future(accounts_pb2_grpc.AccountsServiceStub(direct).BatchApplyAccountRows(
                accounts_pb2.BatchApplyAccountRowsRequest(rows=slow_rows(), request_id="slow-call-at-sigterm"),
                timeout=120))
            # In the replica's hands once its hashing worker (a child process) is busy: nothing else hashes here.
            await eventually(lambda: asyncio.to_thread(cpu_seconds, victim.pid, True),
                             lambda used: used > hashing_before + 0.05 or slow.done(), every=0.02,
                             what="the slow call hashing")
            assert not slow.done(), "the slow call ended before the replica could be stopped"
            started = time.monotonic()
            victim.process.send_signal(signal.SIGTERM)
            reply = await slow
        assert [r.action for r in reply.results] == [accounts_pb2.ROW_ACTION_CREATE] * SLOW_ROWS
        assert await stopped(victim, 4 * GRACE_SECONDS) == 0
        assert time.monotonic() - started < 2 * GRACE_SECONDS + 5, "not stopped within the grace period"
        assert finished_after_stopping(victim, "BatchApplyAccountRows"), "the slow call was not in flight"
        progressed = await jobs.read(upload.id)

        # 3. SIGTERM the imports replica now running the upload, while a file is still streaming in to it: it
        #    takes no new call, finishes the one in hand, releases the job's lease at once (the restarted replica
        #    takes the job over long before the lease would have run out) and runs no new job.
        await cluster.wait_serving(holder)
        await eventually(lambda: stack.imports.GetImportJob(imports_pb2.GetImportJobRequest(id=upload.id)),
                         lambda _job: len(holder.calls(current_only=True)) > 0,
                         what="clients reaching the restarted replica")
        running = await jobs.until(upload.id, lambda r: r.done > progressed.done and r.owner_pid == other.pid,
                                   "more batches committed")
        assert running.lease_expires is not None and other.process is not None
        lease_end = running.lease_expires
        first_part_sent, rest_of_file = asyncio.Event(), asyncio.Event()
        extra = xlsx_bytes(parents(first=ROWS, count=EXTRA_ROWS))

        async def file_parts() -> AsyncIterator[imports_pb2.CreateTrialRunRequest]:
            yield imports_pb2.CreateTrialRunRequest(header=imports_pb2.TrialRunHeader(filename="more.xlsx"))
            yield imports_pb2.CreateTrialRunRequest(chunk=extra[:1024])
            # gRPC asks for the next message once the previous one is written: the call is under way.
            first_part_sent.set()
            await rest_of_file.wait()
            yield imports_pb2.CreateTrialRunRequest(chunk=extra[1024:])

        async with open_channel(cluster.replica_settings(other), "imports") as direct:
            sending = asyncio.ensure_future(
                imports_pb2_grpc.ImportsServiceStub(direct).CreateTrialRun(file_parts(), timeout=120))
            await asyncio.wait_for(first_part_sent.wait(), 60)
            other.process.send_signal(signal.SIGTERM)
            released = await jobs.until(
                upload.id, lambda r: r.owner_pid != other.pid or (r.lease_expires or r.now) < r.now,
                "the lease released")
            assert released.now < lease_end, "the job moved on only when the lease ran out: it was not released"
            async with open_channel(cluster.replica_settings(other), "imports") as fresh:
                with pytest.raises(grpc.RpcError) as refused:
                    await imports_pb2_grpc.ImportsServiceStub(fresh).GetImportJob(
                        imports_pb2.GetImportJobRequest(id=upload.id), timeout=10)
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            rest_of_file.set()
            late = await sending
        assert await stopped(other, 4 * GRACE_SECONDS) == 0
        assert finished_after_stopping(other, "CreateTrialRun"), "the file was not in flight at SIGTERM"
        late_trial = await finished(stack, late.id, timeout=300)
        assert late_trial.counts.create == EXTRA_ROWS

        done = await finished(stack, upload.id, timeout=300)
        assert (done.counts.create, done.counts.errors, done.counts.unchanged) == (ROWS, 0, 0)
        log = load_workbook(io.BytesIO(await download(stack, upload.id, "log")))
        rows = [r[0] for r in log["Log"].iter_rows(min_row=2, values_only=True) if r[0] is not None]
        assert sorted(rows) == list(range(2, ROWS + 2))
        calls.stop.set()
        await stream

        # Every account exists once.
        usernames: list[str] = []
        token = ""
        while True:
            page = await stack.accounts.ListAccounts(accounts_pb2.ListAccountsRequest(page_size=1000,
                                                                                      page_token=token))
            usernames += [a.username for a in page.accounts]
            token = page.next_page_token
            if not token:
                break
        assert len(usernames) == len(set(usernames)) == ROWS + SLOW_ROWS

    # Every invitation sent once: notify's outbox has them all sent, and the SMTP server saw each address once.
    notify_db = Database(url, "notify", pool_size=1)
    try:
        store = NotifyStore(notify_db)
        counts = await eventually(lambda: asyncio.to_thread(store.count_messages),
                                  lambda c: c["sent"] == ROWS, timeout=300, every=0.2, what="every invitation sent")
        assert sum(counts.values()) == ROWS
    finally:
        notify_db.dispose()
    received = Counter(m.rcpt_tos[0] for m in smtp.messages)
    assert len(received) == ROWS and set(received.values()) == {1}

    # No call failed anywhere, and round robin reached every replica of every service.
    assert calls.failures == [] and calls.ok > 0
    for service, replicas in cluster.replicas.items():
        for replica in replicas:
            assert replica.calls(), f"{replica.name} served no call: clients did not spread over the replicas"
            if service == "accounts":
                assert replica.calls("failed") == [], f"{replica.name}: failed calls {replica.calls('failed')}"
    served = {r.name: len(r.calls()) for rs in cluster.replicas.values() for r in rs}
    print(f"calls served per replica: {served}; lookups during the restarts: {calls.ok}")


def test_the_scale_tests_run_the_images_commands() -> None:
    """The processes above are started exactly as the image runs them: `portal serve SERVICE`."""
    out = subprocess.run([sys.executable, "-m", "portal", "serve", "--help"], capture_output=True, text=True,
                         check=True)
    assert "accounts" in out.stdout and "imports" in out.stdout and "notify" in out.stdout
