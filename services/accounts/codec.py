"""JSON for the answers kept by idempotency records: the domain's dataclasses, enums, tuples and UTC datetimes.

A retried mutation is answered from its record, decoded back into the same dataclass the first call returned.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from datetime import datetime
from enum import Enum
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")


_SCALARS = frozenset({str, int, float, bool, type(None)})


@cache
def _field_names(cls: type) -> tuple[str, ...] | None:
    """A dataclass's field names, or None for any other type (a batch's reply holds thousands of values)."""
    return tuple(f.name for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else None


def _plain(value: Any) -> Any:
    kind = type(value)
    if kind in _SCALARS:
        return value
    names = _field_names(kind)
    if names is not None:
        return {name: _plain(getattr(value, name)) for name in names}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def dump(value: Any) -> str:
    return json.dumps(_plain(value), separators=(",", ":"))


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _build(kind: Any, data: Any) -> Any:
    if data is None:
        return None
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        return _build(options[0], data)
    if origin is tuple:
        item = typing.get_args(kind)[0]
        return tuple(_build(item, v) for v in data)
    if origin is list:
        return [_build(typing.get_args(kind)[0], v) for v in data]
    if origin is dict or kind is dict:
        return dict(data)
    if isinstance(kind, type):
        if dataclasses.is_dataclass(kind):
            hints = _hints(kind)
            return kind(**{f.name: _build(hints[f.name], data[f.name]) for f in dataclasses.fields(kind)
                           if f.name in data})
        if issubclass(kind, Enum):
            return kind(data)
        if issubclass(kind, datetime):
            return datetime.fromisoformat(data)
    return data


def load(kind: type[T], text: str) -> T:
    return typing.cast(T, _build(kind, json.loads(text)))
