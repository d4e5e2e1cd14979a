"""The services as the bot sees them: gRPC stubs over the shared channels, the acting staff member set on every
call, and failures turned into one friendly sentence (never a stack trace)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import grpc

from plumbing.clients import open_channel
from plumbing.config import Settings
from plumbing.context import Actor, set_call_context
from plumbing.errors import FieldViolation, status_details
from portal.accounts.v1 import accounts_pb2_grpc
from portal.imports.v1 import imports_pb2_grpc

CALL_SECONDS = 30.0
_DOWN = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


@dataclass
class ServiceProblem(Exception):
    """A service call failed; `message` is what staff are told, `violations` name the fields at fault."""

    service: str
    message: str
    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    violations: list[FieldViolation] = field(default_factory=list)
    reason: str = ""

    def __str__(self) -> str:
        return self.message

    @property
    def down(self) -> bool:
        return self.code in _DOWN


def friendly(service: str, error: grpc.RpcError) -> ServiceProblem:
    """The sentence staff see for a failed call."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = (error.details() if hasattr(error, "details") else "") or ""
    try:
        violations, reason = status_details(error)
    except Exception:  # a status without rich details, or details we cannot read
        violations, reason = [], ""
    if code in _DOWN:
        message = f"The {service} service is not answering, try again in a minute."
    elif code == grpc.StatusCode.UNIMPLEMENTED:
        message = f"The {service} service cannot do that yet (it runs an older version than the bot)."
    elif code == grpc.StatusCode.UNAUTHENTICATED:
        message = (f"The {service} service refused the bot: PORTAL_SERVICE_TOKEN differs between them "
                   "(a configuration problem for whoever runs the portal).")
    elif code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS):
        message = f"The {service} service ran into an error: {details or 'no details'}."
    else:
        message = details or f"The {service} service said no ({code.name.lower()})."
    return ServiceProblem(service, message, code, list(violations), reason)


class Services:
    """Stubs of the accounts and imports services over channels opened once for the bot's life."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._accounts_channel = open_channel(settings, "accounts")
        self._imports_channel = open_channel(settings, "imports")
        self.accounts = accounts_pb2_grpc.AccountsServiceStub(self._accounts_channel)
        self.imports = imports_pb2_grpc.ImportsServiceStub(self._imports_channel)

    async def close(self) -> None:
        await self._accounts_channel.close()
        await self._imports_channel.close()


@asynccontextmanager
async def calling(service: str, actor: Actor, seconds: float = CALL_SECONDS,
                  request_id: str = "") -> AsyncIterator[None]:
    """Run service calls on behalf of `actor` (their Slack id and name reach the audit log) within a deadline;
    a failed call leaves this block as a ServiceProblem."""
    set_call_context(actor, request_id or uuid.uuid4().hex, time.monotonic() + seconds)
    try:
        yield
    except grpc.RpcError as error:
        raise friendly(service, error) from None
