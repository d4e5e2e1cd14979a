"""Headless Chromium (Debian's `chromium`) driven over the Chrome DevTools Protocol: a small client on aiohttp's
websockets. It opens pages, presses keys and types text as a person would (Tab, characters, Enter), and reads the
page back. Pages can run with JavaScript turned off, to show they need none.

    async with Chromium.launch() as browser:
        page = await browser.new_page(javascript=False)
        await page.goto("http://127.0.0.1:8080/login")
        await page.type("jsmith01"); await page.key("Tab"); ...
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check",
         "--disable-dev-shm-usage", "--remote-debugging-port=0")
KEYS = {"Tab": ("Tab", 9, ""), "Enter": ("Enter", 13, "\r")}


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class CdpError(Exception):
    pass


class Chromium:
    def __init__(self, process: asyncio.subprocess.Process, socket: aiohttp.ClientWebSocketResponse,
                 http: aiohttp.ClientSession, profile: str) -> None:
        self.process = process
        self.socket = socket
        self.http = http
        self.profile = profile
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        # Events by (session id, method): how many arrived (a page load is "one more than before").
        self._events: dict[tuple[str, str], int] = defaultdict(int)
        self._event = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    @asynccontextmanager
    async def launch(cls, timeout: float = 30.0) -> AsyncIterator[Chromium]:
        binary = chromium_path()
        if binary is None:
            raise RuntimeError("Chromium is not installed (apt-get install -y chromium)")
        profile = tempfile.mkdtemp(prefix="portal-chromium-")
        process = await asyncio.create_subprocess_exec(
            binary, *FLAGS, f"--user-data-dir={profile}", "about:blank",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        http = aiohttp.ClientSession()
        browser: Chromium | None = None
        drain: asyncio.Task[None] | None = None
        try:
            url = await _devtools_url(process, timeout)
            # Keep reading its stderr so Chromium never blocks on a full pipe.
            drain = asyncio.create_task(_drain(process))
            socket = await http.ws_connect(url, max_msg_size=0)
            browser = cls(process, socket, http, profile)
            yield browser
        finally:
            if browser is not None:
                await browser.close()
            await http.close()
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 10)
                except TimeoutError:
                    process.kill()
                    await process.wait()
            if drain is not None:
                drain.cancel()
            shutil.rmtree(profile, ignore_errors=True)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.send("Browser.close"), 5)
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self.socket.close()

    async def _read(self) -> None:
        async for message in self.socket:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if "id" in data:
                waiter = self._waiting.pop(data["id"], None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(data)
            elif "method" in data:
                async with self._event:
                    self._events[(data.get("sessionId", ""), data["method"])] += 1
                    self._event.notify_all()

    async def send(self, method: str, params: dict[str, Any] | None = None, session: str = "",
                   timeout: float = 30.0) -> dict[str, Any]:
        number = next(self._ids)
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[number] = waiter
        message: dict[str, Any] = {"id": number, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        await self.socket.send_str(json.dumps(message))
        answer = await asyncio.wait_for(waiter, timeout)
        if "error" in answer:
            raise CdpError(f"{method}: {answer['error']}")
        return dict(answer.get("result", {}))

    def seen(self, session: str, method: str) -> int:
        return self._events[(session, method)]

    async def wait_event(self, session: str, method: str, after: int, timeout: float = 30.0) -> None:
        """Until more than `after` events of `method` arrived for the session."""
        async with self._event:
            await asyncio.wait_for(self._event.wait_for(lambda: self._events[(session, method)] > after), timeout)

    async def new_page(self, javascript: bool = True) -> Page:
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        page = Page(self, attached["sessionId"])
        await page.send("Page.enable")
        await page.send("Runtime.enable")
        if not javascript:
            await page.send("Emulation.setScriptExecutionDisabled", {"value": True})
        return page


class Page:
    def __init__(self, browser: Chromium, session: str) -> None:
        self.browser = browser
        self.session = session

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.browser.send(method, params, self.session)

    async def goto(self, url: str) -> None:
        before = self.browser.seen(self.session, "Page.loadEventFired")
        answer = await self.send("Page.navigate", {"url": url})
        if answer.get("errorText"):
            raise CdpError(f"navigation to {url} failed: {answer['errorText']}")
        await self.browser.wait_event(self.session, "Page.loadEventFired", before)

    async def evaluate(self, expression: str) -> Any:
        """A value read from the page (evaluated by DevTools: works with the page's own scripts off)."""
        answer = await self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in answer:
            raise CdpError(f"{expression}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    async def url(self) -> str:
        return str(await self.evaluate("location.href"))

    async def text(self) -> str:
        """The page's visible text, spaces collapsed."""
        return " ".join(str(await self.evaluate("document.body.innerText")).split())

    async def focused(self) -> str:
        """The id of the focused element (or its tag and type)."""
        return str(await self.evaluate(
            "(e => e.id || (e.tagName.toLowerCase() + (e.type ? ':' + e.type : '')))(document.activeElement)"))

    async def key(self, name: str) -> None:
        key, code, text = KEYS[name]
        common = {"key": key, "code": key, "windowsVirtualKeyCode": code, "nativeVirtualKeyCode": code}
        await self.send("Input.dispatchKeyEvent", {"type": "keyDown", **common, **({"text": text} if text else {})})
        await self.send("Input.dispatchKeyEvent", {"type": "keyUp", **common})

    async def type(self, text: str) -> None:
        await self.send("Input.insertText", {"text": text})

    async def submit(self) -> None:
        """Press Enter in the focused field and wait for the page the form leads to."""
        before = self.browser.seen(self.session, "Page.loadEventFired")
        await self.key("Enter")
        await self.browser.wait_event(self.session, "Page.loadEventFired", before)

    async def follow(self, link_text: str) -> None:
        """Go where the link with this text points (as a click would)."""
        href = await self.evaluate(
            f"[...document.querySelectorAll('a')].find(a => a.textContent.trim() === {json.dumps(link_text)})?.href")
        if not href:
            raise CdpError(f"no link '{link_text}' on {await self.url()}")
        await self.goto(str(href))


async def _devtools_url(process: asyncio.subprocess.Process, timeout: float) -> str:
    """The browser's DevTools websocket, as Chromium prints it on start."""
    assert process.stderr is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            line = await asyncio.wait_for(process.stderr.readline(), max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            break
        if not line:
            break
        text = line.decode(errors="replace")
        seen.append(text)
        found = re.search(r"DevTools listening on (ws://\S+)", text)
        if found:
            return found.group(1)
    raise RuntimeError("Chromium did not start: " + "".join(seen[-20:]) + f" (exit {process.returncode}, "
                       f"DISPLAY={os.environ.get('DISPLAY', '')!r})")


async def _drain(process: asyncio.subprocess.Process) -> None:
    assert process.stderr is not None
    while await process.stderr.readline():
        pass
