"""A local HTTP server standing in for Slack's Web API (aiohttp), for tests of anything that talks to Slack.

It answers the methods the portal uses (chat.postMessage, chat.update, chat.postEphemeral, conversations.open,
files.getUploadURLExternal and the upload URL it hands out, files.completeUploadExternal, auth.test, users.info,
usergroups.users.list, views.open) as Slack does, records every call, and can be told to answer 429 with
Retry-After or a Slack error for the next calls of a method. Point a client at `base_url` (SLACK_API_URL).

    async with SlackApiStandIn(token="xoxb-test") as slack:
        settings = make_settings(..., slack_api_url=slack.base_url, slack_bot_token="xoxb-test")
        slack.rate_limit("chat.postMessage", retry_after=1)
        ... slack.calls_to("chat.postMessage"), slack.messages, slack.files ...

Tests without an event loop of their own can use `with SlackApiStandIn().running_in_thread() as slack:`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.support.net import free_port


@dataclass(frozen=True)
class SlackCall:
    method: str
    params: dict[str, Any]
    headers: dict[str, str]
    at: float
    # What the stand-in answered: HTTP status and Slack's "error" when not ok.
    status: int = 200
    error: str = ""


@dataclass
class PostedMessage:
    channel: str
    ts: str
    text: str
    thread_ts: str = ""
    blocks: Any = None
    edits: list[str] = field(default_factory=list)


@dataclass
class SharedFile:
    id: str
    filename: str
    length: int
    data: bytes = b""
    title: str = ""
    channel_id: str = ""
    thread_ts: str = ""
    completed: bool = False


def _default_user(user_id: str) -> dict[str, Any]:
    name = user_id.lower()
    return {"id": user_id, "name": name, "real_name": f"User {user_id}", "tz": "UTC", "deleted": False,
            "is_bot": False, "profile": {"real_name": f"User {user_id}", "display_name": name,
                                         "email": f"{name}@example.org"}}


class SlackApiStandIn:
    """Slack's Web API on 127.0.0.1, recording calls; `base_url` ends with /api/ like Slack's."""

    host = "127.0.0.1"

    def __init__(self, token: str | None = None, users: dict[str, dict[str, Any]] | None = None,
                 usergroups: dict[str, list[str]] | None = None, port: int | None = None) -> None:
        self.token = token
        self.port = port or free_port()
        self.users = dict(users or {})
        self.usergroups = dict(usergroups or {})
        self._lock = threading.Lock()
        self._calls: list[SlackCall] = []
        self._scripted: dict[str, deque[tuple[int, str, float | None]]] = defaultdict(deque)
        self._messages: dict[tuple[str, str], PostedMessage] = {}
        self._files: dict[str, SharedFile] = {}
        self._counter = 0
        self._runner: web.AppRunner | None = None
        # Files staff dropped into Slack (the bot downloads them): id -> file object, and their bytes.
        self._user_files: dict[str, dict[str, Any]] = {}
        self._user_file_bytes: dict[str, bytes] = {}
        self.downloads: list[str] = []

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/api/"

    # Control -----------------------------------------------------------------------------------------------------

    async def start(self) -> SlackApiStandIn:
        app = web.Application(client_max_size=200 * 1024 * 1024)
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/files-pri/{team_file}/{name}", self._download)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SlackApiStandIn:
        return await self.start()

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    @contextlib.contextmanager
    def running_in_thread(self) -> Iterator[SlackApiStandIn]:
        """Serve from a thread with its own event loop (for synchronous tests)."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        asyncio.run_coroutine_threadsafe(self.start(), loop).result(10)
        try:
            yield self
        finally:
            asyncio.run_coroutine_threadsafe(self.stop(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()

    def rate_limit(self, method: str, retry_after: float = 1, times: int = 1) -> None:
        """Answer the next `times` calls of `method` with HTTP 429, Retry-After and error "ratelimited"."""
        with self._lock:
            self._scripted[method].extend([(429, "ratelimited", retry_after)] * times)

    def fail(self, method: str, error: str, times: int = 1, status: int = 200) -> None:
        """Answer the next `times` calls of `method` with {"ok": false, "error": error} (HTTP `status`)."""
        with self._lock:
            self._scripted[method].extend([(status, error, None)] * times)

    def add_message(self, channel: str, text: str, thread_ts: str = "") -> str:
        """A message already in a channel (e.g. a progress message the bot posted); returns its ts."""
        with self._lock:
            ts = self._next_ts()
            self._messages[(channel, ts)] = PostedMessage(channel, ts, text, thread_ts)
            return ts

    # What it saw -------------------------------------------------------------------------------------------------

    @property
    def calls(self) -> list[SlackCall]:
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str, ok_only: bool = False) -> list[SlackCall]:
        return [c for c in self.calls if c.method == method and (not ok_only or (c.status == 200 and not c.error))]

    @property
    def messages(self) -> list[PostedMessage]:
        with self._lock:
            return list(self._messages.values())

    @property
    def files(self) -> list[SharedFile]:
        with self._lock:
            return [f for f in self._files.values() if f.completed]

    # Serving -----------------------------------------------------------------------------------------------------

    def _next_ts(self) -> str:
        self._counter += 1
        return f"{1_700_000_000 + self._counter}.{self._counter:06d}"

    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            body = await request.json()
            if isinstance(body, dict):
                params.update(body)
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            params.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
        return params

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await self._params(request)
        headers = {k: v for k, v in request.headers.items()}
        with self._lock:
            scripted = self._scripted[method].popleft() if self._scripted[method] else None
        if scripted is not None:
            status, error, retry_after = scripted
            self._record(method, params, headers, status, error)
            extra = {"Retry-After": str(int(retry_after))} if retry_after is not None else {}
            return web.json_response({"ok": False, "error": error}, status=status, headers=extra)
        if self.token is not None and headers.get("Authorization") != f"Bearer {self.token}":
            self._record(method, params, headers, 200, "invalid_auth")
            return web.json_response({"ok": False, "error": "invalid_auth"})
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            self._record(method, params, headers, 404, "unknown_method")
            return web.json_response({"ok": False, "error": "unknown_method"}, status=404)
        with self._lock:
            answer = handler(params)
        self._record(method, params, headers, 200, "" if answer.get("ok") else str(answer.get("error", "")))
        return web.json_response(answer)

    def _record(self, method: str, params: dict[str, Any], headers: dict[str, str], status: int, error: str) -> None:
        with self._lock:
            self._calls.append(SlackCall(method, params, headers, time.monotonic(), status, error))

    async def _upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        data = await request.read()
        with self._lock:
            self._calls.append(SlackCall("upload", {"file_id": file_id, "length": len(data)},
                                         dict(request.headers), time.monotonic()))
            shared = self._files.get(file_id)
            if shared is None:
                return web.Response(status=404, text="no such upload")
            shared.data = data
        return web.Response(text=f"OK - {len(data)}", content_type="text/plain")

    # Methods (called with the lock held) -------------------------------------------------------------------------

    def _m_auth_test(self, _params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": "https://portal-test.slack.com/", "team": "Portal Test", "user": "portal",
                "team_id": "T0PORTAL", "user_id": "U0PORTALBOT", "bot_id": "B0PORTAL"}

    def _blocks(self, params: dict[str, Any]) -> Any:
        blocks = params.get("blocks")
        if isinstance(blocks, str):
            with contextlib.suppress(ValueError):
                return json.loads(blocks)
        return blocks

    def _m_chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel") or "")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not params.get("text") and not params.get("blocks"):
            return {"ok": False, "error": "no_text"}
        ts = self._next_ts()
        posted = PostedMessage(channel, ts, str(params.get("text") or ""), str(params.get("thread_ts") or ""),
                               self._blocks(params))
        self._messages[(channel, ts)] = posted
        return {"ok": True, "channel": channel, "ts": ts,
                "message": {"type": "message", "text": posted.text, "ts": ts, "thread_ts": posted.thread_ts or None}}

    def _m_chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(params.get("channel") or ""), str(params.get("ts") or "")
        posted = self._messages.get((channel, ts))
        if posted is None:
            return {"ok": False, "error": "message_not_found"}
        posted.edits.append(posted.text)
        posted.text = str(params.get("text") or "")
        if params.get("blocks") is not None:
            # As Slack: without blocks the message keeps its blocks; an empty list removes them.
            posted.blocks = self._blocks(params)
        return {"ok": True, "channel": channel, "ts": ts, "text": posted.text}

    def _m_chat_postEphemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("channel") or not params.get("user"):
            return {"ok": False, "error": "channel_not_found"}
        return {"ok": True, "message_ts": self._next_ts()}

    def _m_conversations_open(self, params: dict[str, Any]) -> dict[str, Any]:
        users = str(params.get("users") or "")
        if not users:
            return {"ok": False, "error": "users_list_not_supplied"}
        return {"ok": True, "channel": {"id": "D" + users.replace(",", "")[:20]}}

    def _m_files_getUploadURLExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        filename = str(params.get("filename") or "")
        if not filename or not str(params.get("length") or "").isdigit():
            return {"ok": False, "error": "invalid_arguments"}
        self._counter += 1
        file_id = f"F{self._counter:08d}"
        self._files[file_id] = SharedFile(file_id, filename, int(params["length"]))
        return {"ok": True, "upload_url": f"http://{self.host}:{self.port}/upload/{file_id}", "file_id": file_id}

    def _m_files_completeUploadExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        try:
            entries = json.loads(params.get("files") or "[]")
        except ValueError:
            return {"ok": False, "error": "invalid_arguments"}
        done = []
        for entry in entries:
            shared = self._files.get(str(entry.get("id")))
            if shared is None or len(shared.data) != shared.length:
                return {"ok": False, "error": "file_not_found"}
            shared.title = str(entry.get("title") or shared.filename)
            shared.channel_id = str(params.get("channel_id") or "")
            shared.thread_ts = str(params.get("thread_ts") or "")
            shared.completed = True
            done.append({"id": shared.id, "title": shared.title, "name": shared.filename})
        return {"ok": True, "files": done}

    def _m_users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user = str(params.get("user") or "")
        if not user:
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "user": self.users.get(user) or _default_user(user)}

    def _m_usergroups_users_list(self, params: dict[str, Any]) -> dict[str, Any]:
        group = str(params.get("usergroup") or "")
        if group not in self.usergroups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(self.usergroups[group])}

    def _m_views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        view = params.get("view")
        if isinstance(view, str):
            with contextlib.suppress(ValueError):
                view = json.loads(view)
        if not params.get("trigger_id") or not view:
            return {"ok": False, "error": "invalid_arguments"}
        self._counter += 1
        return {"ok": True, "view": {**(view if isinstance(view, dict) else {}), "id": f"V{self._counter:08d}"}}

    # Files staff upload (used by the bot's tests) ----------------------------------------------------------------

    LOGIN_PAGE = (b"<!DOCTYPE html>\n<html lang=\"en-US\"><head><title>Slack</title></head>"
                  b"<body>Sign in to your workspace</body></html>\n")

    def add_user_file(self, name: str, data: bytes, *, user: str, channel: str = "", ts: str = "",
                      public: bool = False, serve_html: bool = False) -> dict[str, Any]:
        """A file a person dropped into `channel` (message `ts`): the file object events and files.info carry,
        downloadable at url_private_download with the bot token. With `serve_html` the download answers Slack's
        sign-in page with status 200, as Slack does when the app lacks the files:read scope."""
        with self._lock:
            self._counter += 1
            file_id = f"F{self._counter:08d}"
            url = f"http://{self.host}:{self.port}/files-pri/T0PORTAL-{file_id}/{name}"
            shares: dict[str, Any] = {}
            if channel:
                shares["public" if public else "private"] = {channel: [{"ts": ts, "channel_name": channel}]}
            file = {"id": file_id, "name": name, "title": name, "user": user, "size": len(data),
                    "filetype": name.rsplit(".", 1)[-1].lower() if "." in name else "",
                    "mimetype": "application/octet-stream", "mode": "hosted", "is_external": False,
                    "url_private": url, "url_private_download": url, "shares": shares}
            self._user_files[file_id] = file
            self._user_file_bytes[file_id] = self.LOGIN_PAGE if serve_html else data
            return dict(file)

    async def _download(self, request: web.Request) -> web.Response:
        file_id = request.match_info["team_file"].split("-", 1)[-1]
        with self._lock:
            self.downloads.append(file_id)
            data = self._user_file_bytes.get(file_id)
        if self.token is not None and request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.Response(body=self.LOGIN_PAGE, content_type="text/html")
        if data is None:
            return web.Response(status=404, text="file not found")
        html = data == self.LOGIN_PAGE
        return web.Response(body=data, content_type="text/html" if html else "application/octet-stream")

    def _m_files_info(self, params: dict[str, Any]) -> dict[str, Any]:
        file = self._user_files.get(str(params.get("file") or ""))
        return {"ok": True, "file": file} if file is not None else {"ok": False, "error": "file_not_found"}

    def _m_usergroups_list(self, _params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "usergroups": [{"id": group, "handle": group, "name": group} for group in self.usergroups]}
