"""Wires the imports service into the shared server bootstrap."""

from __future__ import annotations

from plumbing.server import Runtime, ServiceSpec
from portal.imports.v1 import imports_pb2_grpc


class ImportsServicer(imports_pb2_grpc.ImportsServiceServicer):
    """Translates protobuf to domain calls; methods arrive with the imports issue."""


async def setup(runtime: Runtime) -> None:
    imports_pb2_grpc.add_ImportsServiceServicer_to_server(ImportsServicer(), runtime.server)


SPEC = ServiceSpec(name="imports", full_name="portal.imports.v1.ImportsService", setup=setup)
