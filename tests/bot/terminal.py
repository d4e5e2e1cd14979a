"""`portal bot` in a pseudo-terminal, read from this test's event loop (so in-process services keep serving)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.bot.wire import eventually

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal:
    def __init__(self, env: dict[str, str], cwd: Path, log: Path) -> None:
        self.env = env
        self.cwd = cwd
        self.log = log
        self.output = ""
        self._seen = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._master = -1

    async def __aenter__(self) -> Terminal:
        master, slave = os.openpty()
        self._master = master
        with self.log.open("wb") as stderr:
            self.process = subprocess.Popen([sys.executable, "-m", "portal", "bot"], stdin=slave, stdout=slave,
                                            stderr=stderr, env=self.env, cwd=self.cwd, start_new_session=True)
        os.close(slave)
        asyncio.get_running_loop().add_reader(master, self._read)
        return self

    def _read(self) -> None:
        try:
            data = os.read(self._master, 65536)
        except OSError:
            asyncio.get_running_loop().remove_reader(self._master)
            return
        self.output += ANSI.sub("", data.decode("utf-8", "replace")).replace("\r\n", "\n")

    async def expect(self, text: str, timeout: float = 60.0) -> str:
        """Wait until `text` appears after what earlier expectations consumed; returns the output up to it."""
        def found() -> bool:
            return text in self.output[self._seen:]

        try:
            await eventually(found, f"{text!r} in the console", timeout)
        except AssertionError:
            raise AssertionError(f"{text!r} never appeared; the console showed:\n{self.output[self._seen:]}\n"
                                 f"stderr:\n{self.log.read_text()[-4000:]}") from None
        end = self.output.index(text, self._seen) + len(text)
        seen, self._seen = self.output[self._seen:end], end
        return seen

    def type(self, line: str) -> None:
        os.write(self._master, (line + "\n").encode())

    async def __aexit__(self, *_exc: object) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(Exception):
            loop.remove_reader(self._master)
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(self.process.wait, 20)
        if self.process.poll() is None:
            self.process.kill()
            await asyncio.to_thread(self.process.wait)
        os.close(self._master)
