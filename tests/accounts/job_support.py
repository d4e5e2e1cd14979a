"""Waiting for an accounts job and reading the workbook it produced."""

from __future__ import annotations

import io
from typing import Any

from openpyxl import load_workbook
from openpyxl.workbook import Workbook

from portal.accounts.v1 import accounts_pb2 as pb
from portal.common.v1 import jobs_pb2
from tests.accounts.conftest import STAFF_CALL
from tests.support.stack import eventually

ENDED = (jobs_pb2.JOB_STATE_SUCCEEDED, jobs_pb2.JOB_STATE_FAILED, jobs_pb2.JOB_STATE_CANCELLED)


async def finished(stub: Any, job_id: str, timeout: float = 120.0) -> jobs_pb2.Job:
    job = await eventually(lambda: stub.GetJob(pb.GetJobRequest(id=job_id), metadata=STAFF_CALL),
                           lambda j: j.state in ENDED, timeout=timeout, what=f"job {job_id} ended")
    assert job.state == jobs_pb2.JOB_STATE_SUCCEEDED, job
    return job


async def workbook(stub: Any, job_id: str, name: str = "report") -> tuple[str, Workbook]:
    data, filename = bytearray(), ""
    async for chunk in stub.DownloadJobFile(pb.DownloadJobFileRequest(job_id=job_id, name=name), metadata=STAFF_CALL):
        filename = chunk.filename or filename
        data += chunk.data
    return filename, load_workbook(io.BytesIO(bytes(data)))


def rows(book: Workbook, sheet: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in book[sheet].iter_rows(values_only=True)]
