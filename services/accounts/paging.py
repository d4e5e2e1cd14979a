"""Opaque page tokens (AIP-158): the position after the last item of a page, bound to the list it came from."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from plumbing.errors import FieldViolation, InvalidArgument

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument("page_size cannot be negative.", [FieldViolation("page_size", "must be 0 or more")])
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def list_kind(name: str, filters: object) -> str:
    """The kind of a list: its name and a digest of its filters, so a token only works with the same filters."""
    return f"{name}:" + hashlib.sha256(repr(filters).encode()).hexdigest()[:12]


def encode(kind: str, *position: Any) -> str:
    raw = json.dumps([kind, *position], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode(kind: str, token: str) -> list[Any] | None:
    """The position a token stands for (None for an empty token); a token of another list is refused."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        value = None
    if not isinstance(value, list) or not value or value[0] != kind:
        raise InvalidArgument("The page token is not valid for this list: start again without a page token.",
                              [FieldViolation("page_token", "not a page token of this list")])
    return value[1:]
