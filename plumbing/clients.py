"""gRPC channels between the portal's processes: service token, actor and deadline passed on, retries, TLS."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import grpc

from plumbing.config import Settings
from plumbing.context import actor_metadata, current_deadline

DEFAULT_TIMEOUT = 30.0
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
SERVICE_NAMES = {
    "accounts": "portal.accounts.v1.AccountsService",
    "imports": "portal.imports.v1.ImportsService",
    "notify": "portal.notify.v1.NotifyService",
}
# A health "service" that is SERVING while the process runs and takes calls, whatever the database says, and
# NOT_SERVING from SIGTERM on (plumbing.server drains before it stops accepting calls). Kubernetes' liveness probe
# asks it, and so does every client channel (client-side health checking): a stopping replica leaves each client's
# round robin before its server refuses calls. Not readiness (""): an unhealthy backend gets no call at all on
# that channel, so a replica waiting for its migration could not even answer the health checks that wait for it,
# and a database outage would fail every call fast; readiness is what DNS publishes (Kubernetes) instead.
LIVENESS_SERVICE = "liveness"


def service_config(service: str) -> str:
    """Round robin over every address the target resolves to that reports LIVENESS_SERVICE SERVING (the channel
    watches each backend's health), and retries of UNAVAILABLE with backoff.

    Every method is covered: reads are safe to retry, and every write of ours carries a request_id that makes a
    retry a no-op. Retries stay within the call's deadline.
    """
    return json.dumps({
        "loadBalancingConfig": [{"round_robin": {}}],
        "healthCheckConfig": {"serviceName": LIVENESS_SERVICE},
        "methodConfig": [{
            "name": [{"service": SERVICE_NAMES[service]}],
            "retryPolicy": {
                "maxAttempts": 5,
                "initialBackoff": "0.1s",
                "maxBackoff": "2s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }],
    })


def _timeout(given: float | None) -> float | None:
    deadline = current_deadline()
    if deadline is None:
        return given if given is not None else DEFAULT_TIMEOUT
    remaining = max(deadline - time.monotonic(), 0.001)
    return min(remaining, given) if given is not None else remaining


class _Metadata:
    """Adds the service token, the acting staff member and the remaining deadline to every call."""

    def __init__(self, token: str) -> None:
        self._auth = ("authorization", f"Bearer {token}")

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = list(details.metadata or ())
        metadata.append(self._auth)
        metadata.extend(actor_metadata())
        return grpc.aio.ClientCallDetails(
            method=details.method,
            timeout=_timeout(details.timeout),
            metadata=grpc.aio.Metadata(*metadata),
            credentials=details.credentials,
            wait_for_ready=details.wait_for_ready,
        )


class _UnaryUnary(_Metadata, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _UnaryStream(_Metadata, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _StreamUnary(_Metadata, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return await continuation(self._details(details), request_iterator)


class _StreamStream(_Metadata, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return await continuation(self._details(details), request_iterator)


def channel_options(service: str | None) -> Sequence[tuple[str, Any]]:
    options: list[tuple[str, Any]] = [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.enable_retries", 1),
    ]
    if service is not None:
        options.append(("grpc.service_config", service_config(service)))
    return options


def client_credentials(settings: Settings) -> grpc.ChannelCredentials:
    def read(path: Any) -> bytes | None:
        return path.read_bytes() if path is not None else None

    return grpc.ssl_channel_credentials(
        root_certificates=read(settings.tls_ca),
        private_key=read(settings.tls_key),
        certificate_chain=read(settings.tls_cert),
    )


def open_channel(settings: Settings, service: str, target: str | None = None) -> grpc.aio.Channel:
    """A channel to one of the portal's services (PORTAL_<SERVICE>_ADDR unless a target is given)."""
    target = target or settings.dial_target(service)
    interceptors = [_UnaryUnary(settings.token), _UnaryStream(settings.token),
                    _StreamUnary(settings.token), _StreamStream(settings.token)]
    options = channel_options(service)
    if settings.tls_enabled:
        return grpc.aio.secure_channel(target, client_credentials(settings), options, interceptors=interceptors)
    return grpc.aio.insecure_channel(target, options, interceptors=interceptors)
