"""Who is acting and in which request: carried in gRPC metadata between processes, in context variables inside."""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote

ACTOR_ID_KEY = "x-portal-actor-id"
ACTOR_NAME_KEY = "x-portal-actor-name"
REQUEST_ID_KEY = "x-request-id"


@dataclass(frozen=True)
class Actor:
    """The staff member on whose behalf a call runs (Slack user id and display name, or a process name)."""

    id: str = ""
    name: str = ""

    @property
    def label(self) -> str:
        return f"{self.name} ({self.id})" if self.name and self.id else self.name or self.id or "system"


_actor: contextvars.ContextVar[Actor] = contextvars.ContextVar("portal_actor", default=Actor())
_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("portal_request_id", default="")
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("portal_deadline", default=None)


def current_actor() -> Actor:
    return _actor.get()


def current_request_id() -> str:
    return _request_id.get()


def current_deadline() -> float | None:
    """Monotonic time by which the call being served must answer, if its caller set a deadline."""
    return _deadline.get()


def set_call_context(actor: Actor, request_id: str, deadline: float | None) -> None:
    _actor.set(actor)
    _request_id.set(request_id)
    _deadline.set(deadline)


def actor_from_metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> tuple[Actor, str]:
    values = {key: value for key, value in (metadata or ()) if isinstance(value, str)}
    actor = Actor(unquote(values.get(ACTOR_ID_KEY, "")), unquote(values.get(ACTOR_NAME_KEY, "")))
    return actor, values.get(REQUEST_ID_KEY, "")


def actor_metadata(actor: Actor | None = None) -> Sequence[tuple[str, str]]:
    """Metadata that carries the acting staff member to the next service (percent-encoded: names are Unicode)."""
    actor = actor or current_actor()
    pairs = []
    if actor.id:
        pairs.append((ACTOR_ID_KEY, quote(actor.id)))
    if actor.name:
        pairs.append((ACTOR_NAME_KEY, quote(actor.name)))
    request_id = current_request_id()
    if request_id:
        pairs.append((REQUEST_ID_KEY, request_id))
    return pairs
