"""The bot's record of what it has handled, in the database so every replica shares it.

`claim(key)` succeeds once per key across all replicas (the primary key decides): a Slack event id (retried
deliveries), a shared file id (the two events of one drop), an Upload click (double clicks).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from bot.models import HandledKey, ThreadJob
from plumbing.db import Database, utcnow

KEEP = timedelta(days=14)


class HandledStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _claim(self, key: str, kind: str) -> bool:
        try:
            with self.db.transaction() as session:
                session.add(HandledKey(key=key, kind=kind, created_at=utcnow()))
        except IntegrityError:
            return False
        return True

    async def claim(self, key: str, kind: str) -> bool:
        """True the first time any replica claims this key; False ever after."""
        return await self.db.run(self._claim, key[:200], kind)

    def _release(self, key: str) -> None:
        with self.db.transaction() as session:
            session.execute(delete(HandledKey).where(HandledKey.key == key[:200]))

    async def release(self, key: str) -> None:
        """Forget a claim whose work failed before anything started, so a later try may run."""
        await self.db.run(self._release, key)

    def _prune(self) -> int:
        with self.db.transaction() as session:
            result = session.execute(delete(HandledKey).where(HandledKey.created_at < utcnow() - KEEP))
            return int(result.rowcount or 0)

    async def prune(self) -> int:
        return await self.db.run(self._prune)

    def _remember(self, channel: str, thread_ts: str, job_id: str) -> None:
        with self.db.transaction() as session:
            row = session.get(ThreadJob, (channel, thread_ts))
            if row is None:
                session.add(ThreadJob(channel=channel, thread_ts=thread_ts, job_id=job_id, updated_at=utcnow()))
            else:
                row.job_id, row.updated_at = job_id, utcnow()

    async def remember_thread_job(self, channel: str, thread_ts: str, job_id: str) -> None:
        await self.db.run(self._remember, channel, thread_ts, job_id)

    def _thread_job(self, channel: str, thread_ts: str) -> str | None:
        with self.db.read() as session:
            return session.scalar(select(ThreadJob.job_id).where(ThreadJob.channel == channel,
                                                                 ThreadJob.thread_ts == thread_ts))

    async def thread_job(self, channel: str, thread_ts: str) -> str | None:
        """The latest trial run started in this thread, if any."""
        return await self.db.run(self._thread_job, channel, thread_ts)
