"""Two notify processes on one PostgreSQL share one outbox: each message is sent once (FOR UPDATE SKIP LOCKED)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from plumbing.db import Database
from services.notify.store import MessageFilter, NotifyStore
from tests.notify.helpers import FAST, enqueue, eventually, invitation, notify_stub
from tests.support.databases import fresh_database, postgres_base_url
from tests.support.net import free_port
from tests.support.services import TEST_TOKEN, make_settings, wait_serving
from tests.support.smtp import SmtpServer, message_ids

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = 300

pytestmark = pytest.mark.postgres


def _env(data_dir: Path, url: str, smtp: SmtpServer, listen: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PORTAL_", "SLACK_"))}
    env.update({
        "PORTAL_DATA_DIR": str(data_dir), "PORTAL_DATABASE_URL": url, "PORTAL_SERVICE_TOKEN": TEST_TOKEN,
        "PORTAL_NOTIFY_ADDR": listen, "PORTAL_LISTEN": listen, "PORTAL_LOG_FORMAT": "text",
        "PORTAL_SMTP_HOST": smtp.host, "PORTAL_SMTP_PORT": str(smtp.port), "PORTAL_NOTIFY_BATCH_SIZE": "10",
        **{f"PORTAL_{name.upper()}": str(value) for name, value in FAST.items()},
    })
    return env


async def test_two_notify_processes_sharing_one_postgresql_outbox_send_each_message_once(tmp_path):
    if postgres_base_url() is None:
        pytest.skip("PORTAL_TEST_DATABASE_URL is not set: two notify processes need one shared PostgreSQL")
    # A server that takes a little time per message, as real ones do, so both processes have work in hand.
    with fresh_database("postgresql", tmp_path) as url, SmtpServer(delay=0.02) as smtp:
        listens = [f"127.0.0.1:{free_port()}" for _ in range(2)]
        logs = [(tmp_path / f"notify{n}.log").open("w") for n in range(2)]
        processes = [subprocess.Popen([sys.executable, "-m", "portal", "serve", "notify"], cwd=ROOT,
                                      env=_env(tmp_path / f"data{n}", url, smtp, listen),
                                      stdout=subprocess.DEVNULL, stderr=logs[n])
                     for n, listen in enumerate(listens)]
        try:
            clients = [make_settings(tmp_path / "client", url, notify_addr=listen) for listen in listens]
            for settings in clients:
                await wait_serving(settings, "notify", timeout=60)
            keys = [f"twin-{n:05d}" for n in range(MESSAGES)]
            async with notify_stub(clients[0]) as stub:
                for start in range(0, MESSAGES, 100):
                    await enqueue(stub, *[invitation(key, f"{key}@example.org") for key in keys[start:start + 100]])
            db = Database(url, "notify", pool_size=1)
            try:
                store = NotifyStore(db)
                await eventually(lambda: store.count_messages()["sent"] == MESSAGES, timeout=120,
                                 what="every message sent")
                records, _more = store.list_messages(MessageFilter(key_prefix="twin-"), 0, MESSAGES)
            finally:
                db.dispose()
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            for handle in logs:
                handle.close()
        received = Counter(m.rcpt_tos[0] for m in smtp.messages)
    assert received == {f"{key}@example.org": 1 for key in keys}
    assert len(set(message_ids(smtp.messages))) == MESSAGES
    assert {r.state for r in records} == {"sent"} and {r.attempts for r in records} == {1}
    # Both processes took part.
    by_worker = Counter(r.worker.rsplit(":", 2)[1] for r in records)
    assert len(by_worker) == 2, by_worker
    assert set(by_worker) == {str(p.pid) for p in processes}
