"""Steps the imports tests share: send a file for a trial run, wait for a job, download its workbook."""

from __future__ import annotations

from portal.imports.v1 import imports_pb2
from tests.support.stack import Stack, eventually

ENDED = (3, 4, 5)  # JOB_STATE_SUCCEEDED, FAILED, CANCELLED


async def send_file(stack: Stack, filename: str, data: bytes, *, request_id: str = "", chunk: int = 64 * 1024):
    async def parts():
        yield imports_pb2.CreateTrialRunRequest(header=imports_pb2.TrialRunHeader(filename=filename,
                                                                                   request_id=request_id))
        for start in range(0, len(data), chunk):
            yield imports_pb2.CreateTrialRunRequest(chunk=data[start:start + chunk])

    return await stack.imports.CreateTrialRun(parts(), timeout=60)


async def finished(stack: Stack, job_id: str, timeout: float = 120.0) -> imports_pb2.ImportJob:
    async def probe():
        return await stack.imports.GetImportJob(imports_pb2.GetImportJobRequest(id=job_id), timeout=10)

    job = await eventually(probe, lambda j: j.job.state in ENDED, timeout=timeout, what=f"job {job_id} ended")
    assert job.job.state == 3, f"job {job_id} did not succeed: {job.job.summary} {job.job.error.message}"
    return job


async def trial_run(stack: Stack, filename: str, data: bytes) -> imports_pb2.ImportJob:
    job = await send_file(stack, filename, data)
    return await finished(stack, job.id)


async def upload(stack: Stack, trial_id: str) -> imports_pb2.ImportJob:
    job = await stack.imports.StartUpload(imports_pb2.StartUploadRequest(job_id=trial_id,
                                                                         request_id=f"{trial_id}:upload"))
    return await finished(stack, job.id)


async def download(stack: Stack, job_id: str, name: str) -> bytes:
    data = b""
    async for chunk in stack.imports.DownloadJobFile(imports_pb2.DownloadJobFileRequest(job_id=job_id, name=name)):
        data += chunk.data
    return data


async def all_problems(stack: Stack, job_id: str) -> list[imports_pb2.RowProblemEntry]:
    problems: list[imports_pb2.RowProblemEntry] = []
    token = ""
    while True:
        page = await stack.imports.ListRowProblems(imports_pb2.ListRowProblemsRequest(
            job_id=job_id, page_size=50, page_token=token))
        problems.extend(page.problems)
        token = page.next_page_token
        if not token:
            return problems
