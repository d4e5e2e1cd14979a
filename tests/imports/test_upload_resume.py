"""An imports process killed in the middle of an upload: on restart the job resumes from its last committed batch
and finishes with every row applied once and every invitation sent once."""

from __future__ import annotations

import io
import signal
import subprocess
import sys

import pytest
from openpyxl import load_workbook

from portal.accounts.v1 import accounts_pb2
from portal.imports.v1 import imports_pb2
from tests.imports.flows import download, finished, send_file
from tests.support.services import make_settings, settings_env, wait_serving
from tests.support.smtp import SmtpServer
from tests.support.stack import eventually, running_stack
from tests.support.workbooks import PARENT_HEADER, xlsx_bytes

ROWS = 120
BATCH = 10


def start_imports(settings) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "portal", "serve", "imports"],
                            env=settings_env(settings, PORTAL_LOG_FORMAT="text"), stderr=subprocess.DEVNULL)


@pytest.fixture
def smtp():
    with SmtpServer() as server:
        yield server


async def test_a_killed_upload_resumes_and_applies_each_row_once(tmp_path, database_url, smtp) -> None:
    settings = make_settings(tmp_path / "data", database_url, smtp_host=smtp.host, smtp_port=smtp.port,
                             import_batch_rows=BATCH, job_lease_seconds=2)
    parents = [PARENT_HEADER] + [[f"parent{n:04d}", "Pat", f"Family{n}", f"parent{n:04d}@example.org", "",
                                  "GUARDIAN", "S1", ""] for n in range(ROWS)]
    async with running_stack(settings, services=("accounts", "notify")) as stack:
        await stack.accounts.BatchUpsertRoster(accounts_pb2.BatchUpsertRosterRequest(
            students=[accounts_pb2.Student(id="S1", first_name="Sam", last_name="Family", grad_year=2030)]))
        imports = start_imports(settings)
        try:
            await wait_serving(settings, "imports")
            from plumbing.clients import open_channel

            async with open_channel(settings, "imports") as channel:
                stack.channels["imports"] = channel
                trial = await finished(stack, (await send_file(stack, "parents.xlsx", xlsx_bytes(parents))).id)
                assert trial.counts.create == ROWS
                upload = await stack.imports.StartUpload(imports_pb2.StartUploadRequest(
                    job_id=trial.job.id, request_id="resume-test"))

                async def progress():
                    return await stack.imports.GetImportJob(imports_pb2.GetImportJobRequest(id=upload.id))

                seen = await eventually(progress, lambda j: j.job.done >= BATCH, every=0.02,
                                        what="a committed batch")
                assert seen.job.done < ROWS, "the upload finished before it could be interrupted"
                imports.send_signal(signal.SIGKILL)
                imports.wait(10)

                imports = start_imports(settings)
                await wait_serving(settings, "imports")
                done = await finished(stack, upload.id)
                assert (done.counts.create, done.counts.errors, done.counts.unchanged) == (ROWS, 0, 0)
                log = load_workbook(io.BytesIO(await download(stack, upload.id, "log")))
                rows = [r for r in log["Log"].iter_rows(min_row=2, values_only=True) if r[0] is not None]
                assert sorted(r[0] for r in rows) == list(range(2, ROWS + 2))
        finally:
            imports.kill()
            imports.wait(10)
        listed = await stack.accounts.ListAccounts(accounts_pb2.ListAccountsRequest(page_size=1000))
        usernames = [a.username for a in listed.accounts]
        assert len(usernames) == len(set(usernames)) == ROWS

        async def mail():
            return smtp.messages

        await eventually(mail, lambda m: len(m) >= ROWS, timeout=120, what="every invitation")
        recipients = [m.rcpt_tos[0] for m in smtp.messages]
        assert len(recipients) == len(set(recipients)) == ROWS
