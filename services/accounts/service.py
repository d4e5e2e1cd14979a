"""Wires the accounts service into the shared server bootstrap."""

from __future__ import annotations

from plumbing.server import Runtime, ServiceSpec
from portal.accounts.v1 import accounts_pb2_grpc


class AccountsServicer(accounts_pb2_grpc.AccountsServiceServicer):
    """Translates protobuf to domain calls; methods arrive with the accounts issue."""


async def setup(runtime: Runtime) -> None:
    accounts_pb2_grpc.add_AccountsServiceServicer_to_server(AccountsServicer(), runtime.server)


SPEC = ServiceSpec(name="accounts", full_name="portal.accounts.v1.AccountsService", setup=setup)
