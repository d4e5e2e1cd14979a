"""The hashing pool's worker processes end with the service that started them, even when it is killed outright
(kill -9, out of memory): none is left behind holding memory and waiting for work that never comes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICE = """
import asyncio
from services.accounts.hashing import HashParams, PasswordHashing

async def main():
    hashing = PasswordHashing(2, HashParams(time_cost=1, memory_cost=64, parallelism=1))
    await hashing.start()
    print(" ".join(str(pid) for pid in hashing._pool._processes), flush=True)
    await asyncio.Event().wait()

if __name__ == "__main__":
    asyncio.run(main())
"""


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signals are a Linux feature")
def test_workers_end_when_the_service_is_killed(tmp_path) -> None:
    script = tmp_path / "service.py"
    script.write_text(SERVICE)
    service = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert service.stdout is not None
        workers = [int(pid) for pid in service.stdout.readline().split()]
        assert len(workers) == 2 and all(running(pid) for pid in workers)
    finally:
        service.send_signal(signal.SIGKILL)
        service.wait(30)
    deadline = time.monotonic() + 20
    while any(running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [pid for pid in workers if running(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == [], "hashing workers outlived their service"
