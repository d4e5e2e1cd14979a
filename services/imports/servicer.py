"""gRPC servicer of the imports service: translates protobuf to the domain calls in `runs` and `store`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from plumbing import status_codes
from plumbing.errors import InvalidArgument
from plumbing.filechunks import file_chunks
from plumbing.jobs import job_to_proto
from portal.common.v1 import jobs_pb2
from portal.imports.v1 import imports_pb2, imports_pb2_grpc
from services.imports.runs import ImportsDomain, JobView

FILE_KINDS = {
    "parent_accounts": imports_pb2.FILE_KIND_PARENT_ACCOUNTS,
    "student_links": imports_pb2.FILE_KIND_STUDENT_LINKS,
    "roster": imports_pb2.FILE_KIND_ROSTER,
    "staff": imports_pb2.FILE_KIND_STAFF,
    "oneroster": imports_pb2.FILE_KIND_ONEROSTER,
}
COUNT_FIELDS = ("rows", "create", "update", "link", "unchanged", "errors", "warnings", "skipped", "invitations",
                "students_linked")


def _anchor(message: jobs_pb2.SlackAnchor) -> dict[str, str]:
    return {k: v for k, v in {"channel": message.channel, "thread_ts": message.thread_ts,
                              "message_ts": message.message_ts, "user_id": message.user_id}.items() if v}


def import_job_message(view: JobView) -> imports_pb2.ImportJob:
    record = view.record
    counts = record.result.get("counts", {})
    return imports_pb2.ImportJob(
        job=job_to_proto(record),
        file_kind=FILE_KINDS.get(record.payload.get("kind", ""), imports_pb2.FILE_KIND_UNSPECIFIED),
        filename=record.payload.get("filename", ""),
        counts=imports_pb2.ImportCounts(**{name: int(counts.get(name, 0)) for name in COUNT_FIELDS}),
        source_job_id=record.source_job_id,
        first_problems=[imports_pb2.RowProblemEntry(row_number=p.row_number, column=p.column, code=p.code,
                                                    message=p.message, warning=p.warning)
                        for p in view.first_problems],
        file_warnings=record.result.get("file_warnings", []),
        files=view.files,
    )


class ImportsServicer(imports_pb2_grpc.ImportsServiceServicer):
    def __init__(self, domain: ImportsDomain, school_name: str) -> None:
        self.domain = domain
        self.school_name = school_name

    async def GetTemplate(self, request: Any, context: Any) -> AsyncIterator[jobs_pb2.FileChunk]:
        filename, data = await self.domain.template(request.selector, self.school_name)
        for chunk in file_chunks(filename, data):
            yield chunk

    async def CreateTrialRun(self, request_iterator: Any, context: Any) -> jobs_pb2.Job:
        header: imports_pb2.TrialRunHeader | None = None
        parts: list[bytes] = []
        size = 0
        limit = self.domain.limits.max_bytes
        async for message in request_iterator:
            if message.HasField("header"):
                header = message.header
                existing = await self.domain.job_for_request(header.request_id) if header.request_id else None
                if existing is not None:
                    return job_to_proto(existing)
            else:
                size += len(message.chunk)
                if size > limit:
                    raise InvalidArgument(
                        f"The file is larger than {limit // (1024 * 1024)} MB. Split it into smaller files "
                        "(for example one per school or year group) and send each.")
                parts.append(message.chunk)
        if header is None:
            raise InvalidArgument("The upload had no header: send the file name first.")
        record = await self.domain.start_trial_run(
            filename=header.filename, data=b"".join(parts), anchor=_anchor(header.anchor),
            request_id=header.request_id or None, previous_job_id=header.previous_job_id)
        return job_to_proto(record)

    async def StartUpload(self, request: Any, context: Any) -> jobs_pb2.Job:
        record = await self.domain.start_upload(request.job_id, request.request_id or None, _anchor(request.anchor))
        return job_to_proto(record)

    async def UndoUpload(self, request: Any, context: Any) -> jobs_pb2.Job:
        record = await self.domain.start_undo(request.job_id, request.request_id or None, _anchor(request.anchor))
        return job_to_proto(record)

    async def GetImportJob(self, request: Any, context: Any) -> imports_pb2.ImportJob:
        return import_job_message(await self.domain.job_view(request.id))

    async def ListImportJobs(self, request: Any, context: Any) -> imports_pb2.ListImportJobsResponse:
        size = min(request.page_size or 20, 100)
        views = await self.domain.recent_jobs(active_only=request.active_only, limit=size + 1,
                                              before=request.page_token or None)
        more = len(views) > size
        views = views[:size]
        return imports_pb2.ListImportJobsResponse(
            jobs=[import_job_message(v) for v in views],
            next_page_token=views[-1].record.id if more and views else "")

    async def ListRowProblems(self, request: Any, context: Any) -> imports_pb2.ListRowProblemsResponse:
        size = min(request.page_size or 100, 1000)
        try:
            offset = int(request.page_token or 0)
        except ValueError:
            raise InvalidArgument("page_token is not one this service gave out") from None
        problems = await self.domain.problems(request.job_id, offset, size + 1)
        more = len(problems) > size
        return imports_pb2.ListRowProblemsResponse(
            problems=[imports_pb2.RowProblemEntry(row_number=p.row_number, column=p.column, code=p.code,
                                                  message=p.message, warning=p.warning) for p in problems[:size]],
            next_page_token=str(offset + size) if more else "")

    async def DownloadJobFile(self, request: Any, context: Any) -> AsyncIterator[jobs_pb2.FileChunk]:
        filename, data = await self.domain.job_file(request.job_id, request.name)
        for chunk in file_chunks(filename, data):
            yield chunk

    async def ListStatusCodes(self, request: Any, context: Any) -> imports_pb2.ListStatusCodesResponse:
        return imports_pb2.ListStatusCodesResponse(codes=[
            imports_pb2.StatusCode(code=c.code, meaning=c.meaning, fix=c.fix, warning=c.warning)
            for c in status_codes.catalogue()
        ])

