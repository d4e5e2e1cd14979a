"""Requests to the bot exactly as Slack sends them: signed slash commands (form-encoded), event callbacks (JSON)
and interactions (payload=...), with X-Slack-Signature (v0, HMAC-SHA256) and X-Slack-Request-Timestamp."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp

_ids = itertools.count(1)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


@dataclass
class Answer:
    status: int
    text: str

    def json(self) -> Any:
        return json.loads(self.text) if self.text else None


class SlackWire:
    def __init__(self, url: str, secret: str, team_id: str = "TPORTAL") -> None:
        self.url = url
        self.secret = secret
        self.team_id = team_id

    async def post(self, body: bytes, content_type: str, *, timestamp: int | None = None,
                   signature: str | None = None, headers: dict[str, str] | None = None) -> Answer:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        sent = {"Content-Type": content_type, "X-Slack-Request-Timestamp": stamp,
                "X-Slack-Signature": signature or sign(self.secret, stamp, body), **(headers or {})}
        async with aiohttp.ClientSession() as session, session.post(self.url, data=body, headers=sent) as response:
            return Answer(response.status, await response.text())

    def command_body(self, text: str, user: str, channel: str, channel_name: str) -> bytes:
        return urlencode({
            "token": "deprecated-verification-token", "team_id": self.team_id, "team_domain": "portal-test",
            "channel_id": channel, "channel_name": channel_name, "user_id": user, "user_name": user.lower(),
            "command": "/portal", "text": text, "api_app_id": "APORTAL", "is_enterprise_install": "false",
            "response_url": "https://hooks.slack.com/commands/TPORTAL/1/abc",
            "trigger_id": f"{next(_ids)}.1.trigger",
        }).encode()

    async def command(self, text: str, user: str, channel: str = "GSTAFF0001", channel_name: str = "privategroup",
                      **kwargs: Any) -> Answer:
        return await self.post(self.command_body(text, user, channel, channel_name),
                               "application/x-www-form-urlencoded", **kwargs)

    async def event(self, event: dict[str, Any], *, event_id: str | None = None, retry: int | None = None,
                    **kwargs: Any) -> Answer:
        body = {"token": "deprecated", "team_id": self.team_id, "api_app_id": "APORTAL", "event": event,
                "type": "event_callback", "event_id": event_id or f"Ev{next(_ids):010d}",
                "event_time": int(time.time()), "authorizations": [{"team_id": self.team_id, "user_id": "UBOTPORTAL",
                                                                   "is_bot": True}]}
        headers = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"} if retry else {}
        return await self.post(json.dumps(body).encode(), "application/json", headers=headers, **kwargs)

    async def interaction(self, payload: dict[str, Any]) -> Answer:
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return await self.post(body, "application/x-www-form-urlencoded")

    async def click(self, action_id: str, value: str, user: str, channel: str, message: dict[str, Any],
                    ephemeral: bool = False) -> Answer:
        container = {"type": "message", "message_ts": message.get("ts", ""), "channel_id": channel,
                     "is_ephemeral": ephemeral}
        if message.get("thread_ts"):
            container["thread_ts"] = message["thread_ts"]
        payload: dict[str, Any] = {
            "type": "block_actions", "team": {"id": self.team_id}, "user": {"id": user},
            "api_app_id": "APORTAL", "token": "deprecated", "container": container,
            "trigger_id": f"{next(_ids)}.1.trigger", "channel": {"id": channel},
            "response_url": "https://hooks.slack.com/actions/TPORTAL/1/abc",
            "actions": [{"type": "button", "action_id": action_id, "block_id": "b1", "value": value,
                         "text": {"type": "plain_text", "text": action_id}, "action_ts": f"{time.time():.6f}"}],
        }
        if not ephemeral:
            payload["message"] = message
        return await self.interaction(payload)

    async def submit_view(self, view: dict[str, Any], values: dict[str, Any], user: str) -> Answer:
        """A view_submission of a modal the bot opened, with the given input values."""
        state: dict[str, Any] = {}
        for block in view.get("blocks", []):
            element = block.get("element", {})
            name, kind = block["block_id"], element.get("type")
            value = values.get(name)
            if kind == "static_select":
                state[name] = {name: {"type": kind, "selected_option": {"value": value} if value else None}}
            elif kind == "checkboxes":
                state[name] = {name: {"type": kind, "selected_options": [{"value": v} for v in (value or [])]}}
            else:
                state[name] = {name: {"type": "plain_text_input", "value": value}}
        submitted = {**view, "id": view.get("id", "V1"), "state": {"values": state}, "team_id": self.team_id}
        payload = {"type": "view_submission", "team": {"id": self.team_id}, "user": {"id": user},
                   "api_app_id": "APORTAL", "token": "deprecated", "trigger_id": f"{next(_ids)}.1.trigger",
                   "view": submitted}
        return await self.interaction(payload)


async def eventually(check: Callable[[], Any] | Callable[[], Awaitable[Any]], what: str,
                     timeout: float = 30.0) -> Any:
    """Poll until `check` returns something truthy (awaiting it if it is a coroutine); fail after the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while True:
        try:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return result
            last = result
        except AssertionError as exc:
            last = exc
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what} (last: {last!r})")
        await asyncio.sleep(0.05)


def message_text(params: dict[str, Any]) -> str:
    """A message's text and every text inside its blocks (sections, fields, context, buttons), as one string."""
    pieces = [str(params.get("text") or "")]
    blocks = params.get("blocks")
    if isinstance(blocks, str):
        try:
            blocks = json.loads(blocks)
        except ValueError:
            blocks = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("mrkdwn", "plain_text") and "text" in node:
                pieces.append(str(node["text"]))
            for value in node.values():
                if isinstance(value, dict | list):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(blocks or [])
    return "\n".join(pieces)


def ephemeral_to(slack: Any, user: str) -> list[str]:
    """What `user` was shown privately (chat.postEphemeral), oldest first."""
    return [message_text(call.params) for call in slack.calls_to("chat.postEphemeral", ok_only=True)
            if call.params.get("user") == user]


def thread(slack: Any, channel: str, thread_ts: str) -> list[Any]:
    """The messages of a thread as they stand now (edits applied), oldest first."""
    return sorted((m for m in slack.messages if m.channel == channel and thread_ts in (m.ts, m.thread_ts)),
                  key=lambda m: float(m.ts))
