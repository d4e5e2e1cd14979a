"""The bot's record of what it handled lives in the database: two replicas claim each key once between them."""

from __future__ import annotations

import asyncio

from bot.dedup import HandledStore
from plumbing import migrations
from plumbing.db import Database


async def test_two_replicas_claim_each_key_once(database_url: str) -> None:
    first, second = Database(database_url, "bot", pool_size=2), Database(database_url, "bot", pool_size=2)
    try:
        migrations.upgrade(first, "bot")
        migrations.upgrade(second, "bot")  # a second replica starting changes nothing
        one, two = HandledStore(first), HandledStore(second)
        results = await asyncio.gather(*[store.claim("event:Ev1", "event") for store in (one, two, one, two)])
        assert sorted(results) == [False, False, False, True]
        assert await two.claim("file:F1", "file") and not await one.claim("file:F1", "file")
        await one.release("file:F1")
        assert await two.claim("file:F1", "file")
        assert await one.thread_job("G1", "1.2") is None
        await one.remember_thread_job("G1", "1.2", "imp_a")
        await two.remember_thread_job("G1", "1.2", "imp_b")
        assert await one.thread_job("G1", "1.2") == "imp_b"
        assert await one.prune() == 0
    finally:
        first.dispose()
        second.dispose()
