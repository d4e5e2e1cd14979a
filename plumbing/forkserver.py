"""One fork server per process for the worker processes of every service in it (file readers, password hashing
and planning): a clean process that imported the workers' modules once, from which each worker is forked in
milliseconds with those modules already loaded, and which never holds the gRPC server's threads.

Each user names the modules its workers need; the server preloads all that were named before it started (it starts
with the first worker of any kind). A module named later is imported by each worker itself: slower, still right.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterable
from multiprocessing.context import BaseContext

_lock = threading.Lock()
_preload: set[str] = set()


def forkserver_context(preload: Iterable[str]) -> BaseContext:
    """The fork server's context, with `preload` added to the modules it loads when it starts."""
    context = multiprocessing.get_context("forkserver")
    with _lock:
        added = set(preload) - _preload
        if added:
            _preload.update(added)
            # "__main__" first: the service's entry module, as multiprocessing expects it.
            context.set_forkserver_preload(sorted(_preload, key=lambda name: (name != "__main__", name)))
    return context
