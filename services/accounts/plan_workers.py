"""Batches of account rows planned in the service's worker processes, so that a large file is planned on every core.

Planning a batch (reading the snapshot of what its rows mention, then the rules row by row) is processor-bound
Python: in the service process, every batch of a 100,000-row file queues for one core. A validate-only batch sent
as columns (what the imports service sends) is handed, as its serialized bytes, to one of the processes that hash
passwords (they idle during a trial run; there is one per CPU), which opens its own read-only connection, plans
and answers with the serialized result columns. The service process only checks the batch's shape and passes
bytes along. Small batches, and a database only this process can see (SQLite in memory), are planned in the service
as before; so is a batch whose worker fails, so a trial run never fails for want of a worker.

An upload's batch goes to a worker the same way, and the worker does all of it (see `services.accounts.batches`):
it plans the batch, builds everything its transaction writes (rows, tokens, outbox emails, audit events, the
answer), then takes its turn to write (`Database.transaction`), checks that what the plan read is unchanged and
writes. The service only passes bytes and the answer along, so its one core is not the limit of an upload. When the
plan sets passwords, the worker hands back only the plan: the passwords are hashed across every worker, as always,
and the service builds and writes the batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.engine import make_url

from plumbing.db import Database
from plumbing.gcpause import paused_gc
from portal.accounts.v1 import accounts_pb2 as pb
from services.accounts.batches import (
    BatchApplier,
    PasswordsToHash,
    Planned,
    check_batch_size,
    plan_batch,
    prepare_batch,
    read_plan,
)
from services.accounts.domain import BatchResult, Call
from services.accounts.hashing import PasswordHashing
from services.accounts.mutations import Mutations
from services.accounts.row_columns import column_rows, result_columns, rows_from_columns
from services.accounts.setpassword import LinkSettings
from services.accounts.store import AccountStore, UsernameTaken

log = logging.getLogger("portal.accounts")
T = TypeVar("T")
# Below this many rows a batch is planned faster in the service than its bytes travel to a worker and back.
MIN_ROWS = 200
# In a worker: one database (engine and connection pool) per URL, opened on the first batch.
_opened: dict[str, Database] = {}


def _database(url: str) -> Database:
    db = _opened.get(url)
    if db is None:
        db = _opened[url] = Database(url, "accounts", pool_size=1)
    return db


def plan_serialized(url: str, request: bytes) -> bytes:
    """In a worker process: a serialized validate-only BatchApplyAccountRowsRequest (rows as columns) planned, and
    its serialized answer."""
    db = _database(url)
    with paused_gc():
        message = pb.BatchApplyAccountRowsRequest.FromString(request)
        rows = rows_from_columns(message.columns)
        plan = plan_batch(db, AccountStore(), rows, message.send_invitations, message.links_only)
        return pb.BatchApplyAccountRowsResponse(columns=result_columns(plan.results)).SerializeToString()


def apply_serialized(url: str, links: LinkSettings, call: Call, now: datetime,
                     request: bytes) -> BatchResult | Planned | None:
    """In a worker process: a serialized BatchApplyAccountRowsRequest to apply (rows as columns) planned, its
    writes prepared for the time of the change, and written in a transaction of its own; its answer. Only the plan
    when it sets passwords (hashed by the service across every worker); None when the service should apply the
    batch itself (a username taken meanwhile, a new plan that sets a password, any failure: the service applies
    it again, or answers from the record a transaction that committed left)."""
    db = _database(url)
    store = AccountStore()
    try:
        with paused_gc():
            message = pb.BatchApplyAccountRowsRequest.FromString(request)
            rows = rows_from_columns(message.columns)
            planned = read_plan(db, store, rows, message.send_invitations, message.links_only)
            if planned.plan.password_rows:
                return planned
            prepared = prepare_batch(links, call, now, planned, {}, message.job_id)
        applier = BatchApplier(store, Mutations(db, store, lambda: now), links)
        return applier.apply(call, rows, message.send_invitations, message.job_id, {}, message.links_only, prepared)
    except (UsernameTaken, PasswordsToHash):  # the database changed since the plan, in a way the service handles
        return None
    except Exception:
        log.warning("a worker process could not apply a batch of rows; the service applies it", exc_info=True)
        return None


def shared_with_workers(url: str) -> bool:
    """Whether another process can open this database (not SQLite in memory)."""
    parsed = make_url(url)
    return parsed.get_backend_name() != "sqlite" or parsed.database not in (None, "", ":memory:")


class PlanWorkers:
    def __init__(self, hashing: PasswordHashing, url: str) -> None:
        self.hashing = hashing
        self.url = url
        self.enabled = shared_with_workers(url)

    async def _in_worker(self, verb: str, request: pb.BatchApplyAccountRowsRequest, fn: Callable[..., T],
                         *args: Any) -> T | None:
        """`fn(url, *args, serialized request)` in a worker; None for a small batch, a database workers cannot
        see, or a worker that died, failed or handed the batch back (the service does the work itself)."""
        rows = column_rows(request.columns)
        check_batch_size(rows)
        if not self.enabled or rows < MIN_ROWS:
            return None
        try:
            found = await self.hashing.run(fn, self.url, *args, request.SerializeToString())
        except Exception:
            log.warning("a worker process could not %s a batch of %d rows; the service does it", verb, rows,
                        exc_info=True)
            return None
        if found is None:  # the database changed since the worker's plan, or it failed (and said why in its log)
            log.warning("a worker process handed back a batch of %d rows to %s; the service does it", rows, verb)
        return found

    async def plan(self, request: pb.BatchApplyAccountRowsRequest) -> pb.BatchApplyAccountRowsResponse | None:
        """The answer to a validate-only batch of columns from a worker, or None when the service should plan it
        itself. A batch of the wrong shape or size is refused here (InvalidArgument), as the service would."""
        answer = await self._in_worker("plan", request, plan_serialized)
        return None if answer is None else pb.BatchApplyAccountRowsResponse.FromString(answer)

    async def apply(self, request: pb.BatchApplyAccountRowsRequest, links: LinkSettings, call: Call,
                    now: datetime) -> BatchResult | Planned | None:
        """A batch to apply, applied by a worker (or only planned, when it sets passwords); None when the service
        should apply it itself (see `Directory.apply_rows`)."""
        return await self._in_worker("apply", request, apply_serialized, links, call, now)
