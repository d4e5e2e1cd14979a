"""Files as gRPC streams: workbooks and templates exceed gRPC's default message size, so they travel in chunks."""

from __future__ import annotations

from collections.abc import Iterator

from portal.common.v1 import jobs_pb2

CHUNK_BYTES = 1024 * 1024
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def file_chunks(filename: str, data: bytes, content_type: str = XLSX) -> Iterator[jobs_pb2.FileChunk]:
    """The file as a stream of chunks; the first names it (an empty file is one empty, named chunk)."""
    for start in range(0, max(len(data), 1), CHUNK_BYTES):
        chunk = jobs_pb2.FileChunk(data=data[start:start + CHUNK_BYTES])
        if start == 0:
            chunk.filename = filename
            chunk.content_type = content_type
        yield chunk
