"""Replicas as real processes on loopback: `portal serve SERVICE` (the image's commands) twice per service against
one PostgreSQL, each with its own PORTAL_LISTEN, PORTAL_WEB_PORT and data dir, and every client dialing all of a
service's replicas (`ipv4:127.0.0.1:p1,127.0.0.1:p2`, round robin). Logs are JSON lines, one file per process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plumbing.config import Settings
from tests.support.net import free_port
from tests.support.services import TEST_TOKEN, make_settings, wait_serving

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("accounts", "imports", "notify")
SERVICE_NAMES = {"accounts": "portal.accounts.v1.AccountsService", "imports": "portal.imports.v1.ImportsService",
                 "notify": "portal.notify.v1.NotifyService"}


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, children_only: bool = False) -> float:
    """CPU time (user + system) of a process and its live descendants, or of its descendants only (from /proc)."""
    children: dict[int, list[int]] = {}
    used: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        used[int(entry.name)] = sum(int(value) for value in fields[11:15]) / _TICK
    total, todo = 0.0, list(children.get(pid, [])) if children_only else [pid]
    while todo:
        current = todo.pop()
        total += used.get(current, 0.0)
        todo += children.get(current, [])
    return total


@dataclass
class Replica:
    service: str
    index: int
    listen: str
    web_port: int
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    generation: int = 0

    @property
    def name(self) -> str:
        return f"{self.service}-{self.index}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_path_of(self, generation: int) -> Path:
        suffix = f".{generation}" if generation else ""
        return self.log_path.with_name(f"{self.log_path.stem}{suffix}.log")

    def log_entries(self, current_only: bool = False) -> Iterator[dict[str, Any]]:
        """The JSON log lines this replica wrote: of every process it ran, in order, or of the current one."""
        generations = [self.generation - 1] if current_only else list(range(self.generation))
        for path in [self.log_path_of(g) for g in generations]:
            for line in path.read_text(errors="replace").splitlines():
                if line.startswith("{"):
                    try:
                        yield json.loads(line)
                    except ValueError:
                        continue

    def calls(self, outcome: str | None = None, current_only: bool = False) -> list[str]:
        """The RPCs of its own service this replica logged (plumbing.interceptors logs every call it served)."""
        prefix = f"/{SERVICE_NAMES[self.service]}/"
        found = []
        for entry in self.log_entries(current_only):
            message = str(entry.get("message", ""))
            if entry.get("logger") == "portal.rpc" and message.startswith(prefix):
                method, _, result = message.partition(" ")
                if outcome is None or result == outcome:
                    found.append(method.removeprefix(prefix))
        return found


@dataclass
class Cluster:
    """Two (or more) replicas of each service sharing one database; `client` dials all of them."""

    root: Path
    database_url: str
    env: dict[str, str]
    replicas: dict[str, list[Replica]] = field(default_factory=dict)

    @classmethod
    def plan(cls, root: Path, database_url: str, replicas: Mapping[str, int] | None = None,
             shared_data_dir: bool = False, **settings: str) -> Cluster:
        """Addresses and folders for `replicas` processes per service (default two of each); nothing starts.
        Each process has its own data dir, as pods do (blobs then need PORTAL_BLOB_URL), unless `shared_data_dir`
        gives them one, as containers sharing a volume on one host."""
        counts = {service: 2 for service in SERVICES} | dict(replicas or {})
        cluster = cls(root, database_url, {})
        for service in SERVICES:
            cluster.replicas[service] = [
                Replica(service, n, f"127.0.0.1:{free_port()}", free_port(),
                        root / "data" if shared_data_dir else root / f"{service}-{n}",
                        root / "logs" / f"{service}-{n}.log")
                for n in range(counts[service])]
        (root / "logs").mkdir(parents=True, exist_ok=True)
        base = {key: value for key, value in os.environ.items() if not key.startswith(("PORTAL_", "SLACK_", "AWS_"))}
        base.update({
            "PORTAL_DATABASE_URL": database_url, "PORTAL_SERVICE_TOKEN": TEST_TOKEN,
            "PORTAL_SECRET_KEY": "scale-test-secret-key", "PORTAL_LOG_FORMAT": "json", "PORTAL_LOG_LEVEL": "INFO",
            "PORTAL_MIGRATE": "never",
            **{f"PORTAL_{s.upper()}_ADDR": cluster.target(s) for s in SERVICES},
            **settings,
        })
        cluster.env = base
        return cluster

    def target(self, service: str) -> str:
        """What every client dials: all of a service's replicas, round robin."""
        return "ipv4:" + ",".join(r.listen for r in self.replicas[service])

    def migrate(self) -> None:
        """`portal migrate`, once, as the Kubernetes Job does; the replicas run with PORTAL_MIGRATE=never."""
        env = {**self.env, "PORTAL_DATA_DIR": str(self.root / "migrate"), "PORTAL_MIGRATE": "auto"}
        with (self.root / "logs" / "migrate.log").open("wb") as log:
            subprocess.run([sys.executable, "-m", "portal", "migrate"], cwd=ROOT, env=env, stdout=log, stderr=log,
                           check=True, timeout=300)

    def start(self, replica: Replica) -> None:
        assert not replica.running()
        env = {**self.env, "PORTAL_LISTEN": replica.listen, "PORTAL_WEB_PORT": str(replica.web_port),
               "PORTAL_DATA_DIR": str(replica.data_dir)}
        log_path = replica.log_path_of(replica.generation)
        replica.generation += 1
        with log_path.open("wb") as log:
            replica.process = subprocess.Popen([sys.executable, "-m", "portal", "serve", replica.service], cwd=ROOT,
                                               env=env, stdout=subprocess.DEVNULL, stderr=log)

    def start_all(self) -> None:
        for replicas in self.replicas.values():
            for replica in replicas:
                self.start(replica)

    def replica_settings(self, replica: Replica) -> Settings:
        """Settings that dial this one replica (to wait for it)."""
        return make_settings(self.root / "client", self.database_url,
                             **{f"{replica.service}_addr": replica.listen})

    def client_settings(self) -> Settings:
        return make_settings(self.root / "client", self.database_url,
                             **{f"{s}_addr": self.target(s) for s in SERVICES})

    async def wait_serving(self, replica: Replica, timeout: float = 120.0) -> None:
        """Until the replica reports SERVING; fails at once, with its last log lines, if it exits first."""
        waiting = asyncio.create_task(wait_serving(self.replica_settings(replica), replica.service, timeout=timeout))
        try:
            while not waiting.done():
                if not replica.running():
                    log = replica.log_path_of(replica.generation - 1).read_text(errors="replace")
                    tail = "\n".join(log.splitlines()[-15:])
                    code = replica.process.returncode if replica.process else None
                    raise AssertionError(f"{replica.name} exited with code {code} before serving:\n{tail}")
                await asyncio.wait({waiting}, timeout=0.2)
            waiting.result()
        finally:
            waiting.cancel()

    async def wait_all_serving(self) -> None:
        for replicas in self.replicas.values():
            for replica in replicas:
                await self.wait_serving(replica)

    def by_pid(self, service: str, pid: int) -> Replica:
        [found] = [r for r in self.replicas[service] if r.running() and r.pid == pid]
        return found

    def stop_all(self) -> None:
        running = [r for rs in self.replicas.values() for r in rs if r.running()]
        for replica in running:
            assert replica.process is not None
            replica.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 60
        for replica in running:
            assert replica.process is not None
            try:
                replica.process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                replica.process.kill()
                replica.process.wait()
