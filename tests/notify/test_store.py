"""The notify store on each backend: keys stored once, claims with leases that never overlap, outcomes recorded only
by the lease holder, and domain counters shared by every process."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import select

from plumbing import migrations
from plumbing.db import Database, utcnow
from services.notify import rules
from services.notify.models import Message
from services.notify.store import DomainRate, MessageFilter, NewMessage, NotifyStore, Outcome


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url, "notify")
    migrations.upgrade(database, "notify")
    try:
        yield database
    finally:
        database.dispose()


def _message(key: str, domain: str = "example.org", **data: str) -> NewMessage:
    return NewMessage(key=key, template="invitation", recipient=f"{key}@{domain}", domain=domain,
                      data={"username": "u" + key, "link": "https://p.example/set-password?token=" + key, **data},
                      job_id="job-1", school="", message_id=f"<{key}@localhost>")


def test_each_key_is_stored_once_even_from_concurrent_callers(db) -> None:
    store = NotifyStore(db)
    keys = [f"k{n:03d}" for n in range(50)]

    def add(offset: int) -> int:
        batch = [_message(keys[(offset + n) % 50]) for n in range(50)]
        return store.add_messages(batch, utcnow())[1]

    with ThreadPoolExecutor(max_workers=6) as pool:
        added = list(pool.map(add, range(0, 60, 10)))
    assert sum(added) == 50
    records, more = store.list_messages(MessageFilter(), 0, 100)
    assert sorted(r.key for r in records) == keys and not more
    again, new = store.add_messages([_message("k007"), _message("fresh")], utcnow())
    assert new == 1 and [r.key for r in again] == ["k007", "fresh"]


def test_concurrent_claims_never_take_the_same_message(db) -> None:
    store = NotifyStore(db)
    store.add_messages([_message(f"c{n:04d}") for n in range(400)], utcnow())

    def claim(worker: str) -> list[int]:
        taken: list[int] = []
        while batch := store.claim_messages(worker, 25, utcnow(), 60):
            taken += [m.id for m in batch]
        return taken

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(claim, [f"w{n}" for n in range(4)]))
    everything = [i for taken in results for i in taken]
    assert len(everything) == 400 and len(set(everything)) == 400
    if db.dialect == "postgresql":
        assert sum(1 for taken in results if taken) >= 2  # SKIP LOCKED lets workers proceed side by side


def test_a_lease_keeps_others_off_until_it_expires_and_only_its_holder_records(db) -> None:
    store = NotifyStore(db)
    now = utcnow()
    store.add_messages([_message("lease1")], now)
    [first] = store.claim_messages("alive", 10, now, 30)
    assert first.attempts == 1 and first.lease_until == now + timedelta(seconds=30)
    assert store.claim_messages("other", 10, now + timedelta(seconds=29), 30) == []
    [second] = store.claim_messages("other", 10, now + timedelta(seconds=31), 30)
    assert second.id == first.id and second.attempts == 2
    # The first worker comes back late: its outcome is ignored, the new holder's is kept.
    assert store.record_outcomes("alive", [Outcome(first.id, rules.SENT)]) == 0
    assert store.record_outcomes("other", [Outcome(first.id, rules.SENT)]) == 1
    record = store.get_message("lease1")
    assert record is not None and record.state == rules.SENT and record.worker == "other"
    assert record.due_at is None and record.sent_at is not None


def test_outcomes_record_retries_failures_and_drop_the_links_of_finished_messages(db) -> None:
    store = NotifyStore(db)
    now = utcnow()
    store.add_messages([_message("ok1"), _message("retry1"), _message("bounce1")], now)
    claimed = {m.key: m for m in store.claim_messages("w", 10, now, 60)}
    later = now + timedelta(minutes=5)
    store.record_outcomes("w", [
        Outcome(claimed["ok1"].id, rules.SENT, at=now),
        Outcome(claimed["retry1"].id, rules.QUEUED, "451 try later", due_at=later, at=now),
        Outcome(claimed["bounce1"].id, rules.FAILED, "550 no such user", at=now),
    ])
    by_key = {r.key: r for r in store.list_messages(MessageFilter(), 0, 10)[0]}
    assert by_key["retry1"].state == rules.QUEUED and by_key["retry1"].due_at == later
    assert by_key["retry1"].last_error == "451 try later"
    assert by_key["bounce1"].state == rules.FAILED and by_key["bounce1"].last_error == "550 no such user"
    with db.read() as session:
        data = dict(session.execute(select(Message.idempotency_key, Message.data)).all())
    assert data["ok1"] == data["bounce1"] == "{}"
    assert "token=retry1" in json.loads(data["retry1"])["link"]
    assert store.next_message_due() == later
    assert store.count_messages("job-1") == {"queued": 1, "sending": 0, "sent": 1, "failed": 1}


def test_released_messages_are_due_again_without_counting_an_attempt(db) -> None:
    store = NotifyStore(db)
    now = utcnow()
    store.add_messages([_message("rel1")], now)
    [claimed] = store.claim_messages("stopping", 10, now, 300)
    store.release_messages("stopping", [claimed.id], now)
    [again] = store.claim_messages("next", 10, now, 300)
    assert again.id == claimed.id and again.attempts == 1


def test_domain_counters_are_shared_by_every_process_and_cap_each_window(db, database_url) -> None:
    other_process = Database(database_url, "notify")
    try:
        first, second = NotifyStore(db), NotifyStore(other_process)
        now = utcnow().replace(microsecond=0)
        first.add_messages([_message(f"d{n:02d}", "busy.example.org") for n in range(7)]
                           + [_message("calm1", "calm.example.org")], now)
        rate = DomainRate(limit=3, window=3600)
        taken_first = first.claim_messages("a", 5, now, 60, rate)
        taken_second = second.claim_messages("b", 5, now, 60, rate)
        busy = [m for m in taken_first + taken_second if m.key.startswith("d")]
        assert len(busy) == 3
        assert "calm1" in {m.key for m in taken_first + taken_second}
        start = rules.window_start(now.timestamp(), 3600)
        assert first.domain_counts("busy.example.org") == {start: 3}
        # The rest wait for the next window, without an attempt counted.
        waiting = [r for r in first.list_messages(MessageFilter(state=rules.QUEUED), 0, 10)[0]]
        assert len(waiting) == 4 and {r.attempts for r in waiting} == {0}
        assert {int(r.due_at.timestamp()) for r in waiting if r.due_at} == {start + 3600}
        assert first.prune_counters(start + 1) == 2
    finally:
        other_process.dispose()


def test_listing_by_prefix_recipient_and_state(db) -> None:
    store = NotifyStore(db)
    store.add_messages([_message("job:1:a"), _message("job:1:b"), _message("job:10:a"), _message("job:2:a")],
                       utcnow())

    def keys(**filters: str) -> list[str]:
        return [r.key for r in store.list_messages(MessageFilter(**filters), 0, 10)[0]]

    assert sorted(keys(key_prefix="job:1:")) == ["job:1:a", "job:1:b"]
    assert sorted(keys(key_prefix="job:1")) == ["job:10:a", "job:1:a", "job:1:b"]
    assert keys(recipient="JOB:2:A@EXAMPLE.ORG") == ["job:2:a"]
    assert keys(state=rules.SENT) == []
    page, more = store.list_messages(MessageFilter(), 0, 3)
    assert len(page) == 3 and more
    rest, more = store.list_messages(MessageFilter(), page[-1].id, 3)
    assert len(rest) == 1 and not more
    assert sorted(r.key for r in page + rest) == ["job:10:a", "job:1:a", "job:1:b", "job:2:a"]
    assert Counter(r.state for r in page) == {rules.QUEUED: 3}
