"""Pausing Python's cyclic garbage collector while building many small objects at once.

Reading or planning 100,000 rows creates about a million lists, strings, dicts and row objects, none of them in
reference cycles; the collector would otherwise walk the growing heap again and again, tripling the time.
Reference counting frees everything as usual. Nested and concurrent pauses (threads of one process) are counted,
so the collector comes back when the last one ends (and only if it was on before the first)."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_was_enabled = False


@contextmanager
def paused_gc() -> Iterator[None]:
    """Disable the cyclic garbage collector for the duration of the block (or, as `@paused_gc()`, of a call)."""
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()
