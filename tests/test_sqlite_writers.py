"""Writers to one SQLite file take turns across processes (Database.transaction), not through SQLite's busy
polling: a writer in another process waits while one holds the turn, and starts once it is released."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
from pathlib import Path

from sqlalchemy import text

from plumbing.db import Database


def _hold_turn(url: str, held, release) -> None:
    db = Database(url, "writers")
    with db.transaction() as session:
        session.execute(text("INSERT INTO notes (body) VALUES ('from the other process')"))
        held.set()
        release.wait(60)
    db.dispose()


def _turn_is_free(path: Path) -> bool:
    fd = os.open(f"{path}.writers", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def test_a_writer_in_another_process_holds_the_turn_until_it_commits(tmp_path) -> None:
    path = tmp_path / "portal.db"
    url = f"sqlite:///{path}"
    db = Database(url, "writers")
    with db.transaction() as session:
        session.execute(text("CREATE TABLE notes (body TEXT)"))
    context = multiprocessing.get_context("spawn")
    held, release = context.Event(), context.Event()
    other = context.Process(target=_hold_turn, args=(url, held, release))
    other.start()
    try:
        assert held.wait(60), "the other process never got its turn"
        assert not _turn_is_free(path), "another process is writing, yet the write turn is free"
    finally:
        release.set()
        other.join(60)
    assert other.exitcode == 0
    assert _turn_is_free(path), "the turn was not given back when the other process committed"
    with db.transaction() as session:
        session.execute(text("INSERT INTO notes (body) VALUES ('from this process')"))
        assert not _turn_is_free(path), "this process is writing, yet the write turn is free"
    with db.read() as session:
        assert session.execute(text("SELECT body FROM notes ORDER BY rowid")).scalars().all() == [
            "from the other process", "from this process"]
    db.dispose()
