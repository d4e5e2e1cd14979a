"""JSON for the answers kept by idempotency records: the domain's dataclasses, enums, tuples and UTC datetimes.

A retried mutation is answered from its record, decoded back into the same dataclass the first call returned.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable
from datetime import datetime
from enum import Enum
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")


def _same(value: Any) -> Any:
    return value


@cache
def _encoder(kind: type) -> Callable[[Any], Any]:
    """How values of one type become JSON-ready, chosen once per type (a batch's reply holds thousands)."""
    if kind in (str, int, float, bool, type(None)):
        return _same
    if dataclasses.is_dataclass(kind):
        return _dataclass_encoder(kind)
    if issubclass(kind, Enum):
        return lambda value: value.value
    if issubclass(kind, datetime):
        return lambda value: value.isoformat()
    if issubclass(kind, list | tuple):
        return lambda value: [_plain(v) for v in value]
    if issubclass(kind, dict):
        return lambda value: {str(k): _plain(v) for k, v in value.items()}
    return _same


_SCALARS = frozenset((str, int, float, bool, type(None)))
_NO_DEFAULT = object()


def _dataclass_encoder(kind: type) -> Callable[[Any], Any]:
    """A dataclass as a dict of its fields, leaving out those at their default (`load` puts the default back):
    most fields of most rows of a batch's reply are empty."""
    fields = tuple((f.name, f.default if f.default is not dataclasses.MISSING else _NO_DEFAULT)
                   for f in dataclasses.fields(kind))

    def encode(value: Any) -> dict[str, Any]:
        found = {}
        for name, default in fields:
            item = getattr(value, name)
            if item.__class__ is default.__class__ and item == default:
                continue
            found[name] = item if item.__class__ in _SCALARS else _plain(item)
        return found
    return encode


def _plain(value: Any) -> Any:
    return _encoder(type(value))(value)


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
