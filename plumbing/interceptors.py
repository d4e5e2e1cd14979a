"""Server interceptors: the service token, the acting staff member, and errors mapped to statuses."""

from __future__ import annotations

import hmac
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc_status import rpc_status

from plumbing.context import actor_from_metadata, set_call_context
from plumbing.errors import ServiceError

log = logging.getLogger("portal.rpc")

# Health and reflection answer without credentials (Kubernetes' gRPC probes send none).
EXEMPT_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.v1alpha.ServerReflection/",
                   "/grpc.reflection.v1.ServerReflection/")


def _wrap_handler(handler: grpc.RpcMethodHandler, wrap: Callable[[Any, bool], Any]) -> grpc.RpcMethodHandler:
    """Replace the behaviour of a method handler, whatever its streaming shape."""
    for attribute, streams_out in (("unary_unary", False), ("stream_unary", False),
                                   ("unary_stream", True), ("stream_stream", True)):
        behaviour = getattr(handler, attribute)
        if behaviour is not None:
            return handler._replace(**{attribute: wrap(behaviour, streams_out)})  # type: ignore[attr-defined]
    return handler


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Rejects calls whose `authorization: Bearer` metadata does not carry the service token."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or details.method.startswith(EXEMPT_PREFIXES):
            return handler
        given = dict(details.invocation_metadata or ()).get("authorization", "")
        if isinstance(given, str) and hmac.compare_digest(given.encode(), self._expected):
            return handler
        log.warning("refused call without a valid service token", extra={"fields": {"method": details.method}})

        def refuse(_behaviour: Any, streams_out: bool) -> Any:
            if streams_out:
                async def refuse_stream(_request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong service token")
                    yield  # pragma: no cover - abort raises

                return refuse_stream

            async def refuse_unary(_request: Any, context: grpc.aio.ServicerContext) -> Any:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong service token")

            return refuse_unary

        return _wrap_handler(handler, refuse)


async def _abort_for(exc: BaseException, method: str, context: grpc.aio.ServicerContext) -> None:
    if isinstance(exc, ServiceError):
        await context.abort_with_status(rpc_status.to_status(exc.to_status()))
    reference = uuid.uuid4().hex[:12]
    log.error("unexpected error in %s (reference %s)", method, reference, exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error (reference {reference}); see the service log")


class CallContextInterceptor(grpc.aio.ServerInterceptor):
    """Sets the actor, request id and deadline for the call, logs it, and maps exceptions to statuses:
    ServiceError to its code with details, anything unexpected to INTERNAL with a generic message."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or details.method.startswith(EXEMPT_PREFIXES):
            return handler
        method = details.method
        actor, request_id = actor_from_metadata(details.invocation_metadata)

        def begin(context: grpc.aio.ServicerContext) -> float:
            remaining = context.time_remaining()
            deadline = time.monotonic() + remaining if remaining is not None else None
            set_call_context(actor, request_id, deadline)
            return time.monotonic()

        def finish(started: float, outcome: str) -> None:
            log.info("%s %s", method, outcome, extra={"fields": {
                "ms": round((time.monotonic() - started) * 1000, 1), "actor": actor.id or "-"}})

        def wrap(behaviour: Any, streams_out: bool) -> Any:
            if streams_out:
                async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                    started = begin(context)
                    try:
                        async for item in behaviour(request, context):
                            yield item
                    except grpc.aio.AbortError:
                        raise
                    except Exception as exc:
                        finish(started, "failed")
                        await _abort_for(exc, method, context)
                    finish(started, "ok")

                return stream

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                started = begin(context)
                try:
                    result = await behaviour(request, context)
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    finish(started, "failed")
                    await _abort_for(exc, method, context)
                finish(started, "ok")
                return result

            return unary

        return _wrap_handler(handler, wrap)
