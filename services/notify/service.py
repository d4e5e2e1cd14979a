"""Wires the notify service into the shared server bootstrap."""

from __future__ import annotations

from plumbing.server import Runtime, ServiceSpec
from portal.notify.v1 import notify_pb2_grpc


class NotifyServicer(notify_pb2_grpc.NotifyServiceServicer):
    """Translates protobuf to domain calls; methods arrive with the notify issue."""


async def setup(runtime: Runtime) -> None:
    notify_pb2_grpc.add_NotifyServiceServicer_to_server(NotifyServicer(), runtime.server)


SPEC = ServiceSpec(name="notify", full_name="portal.notify.v1.NotifyService", setup=setup)
