"""Domain errors that servicers raise and the error interceptor turns into gRPC statuses with google.rpc details."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2, status_pb2


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


@dataclass
class ServiceError(Exception):
    """Base of every error a user can act on. `message` is shown to staff as it is."""

    message: str
    violations: Sequence[FieldViolation] = field(default_factory=tuple)
    reason: str = ""
    code: grpc.StatusCode = grpc.StatusCode.FAILED_PRECONDITION

    def __str__(self) -> str:
        return self.message

    def to_status(self) -> status_pb2.Status:
        status = status_pb2.Status(code=self.code.value[0], message=self.message)
        if self.violations:
            detail = error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                    for v in self.violations
                ]
            )
            status.details.add().Pack(detail)
        if self.reason:
            info = error_details_pb2.ErrorInfo(reason=self.reason, domain="portal")
            status.details.add().Pack(info)
        return status


class InvalidArgument(ServiceError):
    def __init__(self, message: str, violations: Sequence[FieldViolation] = (), reason: str = "") -> None:
        super().__init__(message, tuple(violations), reason, grpc.StatusCode.INVALID_ARGUMENT)


class NotFound(ServiceError):
    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message, (), reason, grpc.StatusCode.NOT_FOUND)


class AlreadyExists(ServiceError):
    def __init__(self, message: str, violations: Sequence[FieldViolation] = (), reason: str = "") -> None:
        super().__init__(message, tuple(violations), reason, grpc.StatusCode.ALREADY_EXISTS)


class FailedPrecondition(ServiceError):
    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message, (), reason, grpc.StatusCode.FAILED_PRECONDITION)


class PermissionDenied(ServiceError):
    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message, (), reason, grpc.StatusCode.PERMISSION_DENIED)


class ResourceExhausted(ServiceError):
    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message, (), reason, grpc.StatusCode.RESOURCE_EXHAUSTED)


def status_details(error: grpc.RpcError) -> tuple[list[FieldViolation], str]:
    """Field violations and ErrorInfo reason carried by a failed call (the client side of ServiceError)."""
    from grpc_status import rpc_status

    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    violations: list[FieldViolation] = []
    reason = ""
    if status is None:
        return violations, reason
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations += [FieldViolation(v.field, v.description) for v in bad.field_violations]
        elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
    return violations, reason
