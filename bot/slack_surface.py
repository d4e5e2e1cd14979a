"""Answers in Slack: ephemeral to the requester (or a DM opened with conversations.open), progress messages in
threads, files uploaded with files.getUploadURLExternal + completeUploadExternal, forms as modals."""

from __future__ import annotations

import logging
import time
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.access import Place, private_place
from bot.core import Anchor
from bot.render_slack import blocks_for, modal_for
from bot.replies import Form, OutFile, Reply
from plumbing.config import Settings
from plumbing.context import Actor

log = logging.getLogger("portal.bot.slack")
NAME_CACHE_SECONDS = 3600.0
NOT_THERE = {"channel_not_found", "not_in_channel", "user_not_in_channel", "is_archived", "restricted_action"}


class SlackPeople:
    """Slack user ids to display names (users.info, cached) and DM channels (conversations.open, cached)."""

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client
        self._names: dict[str, tuple[str, float]] = {}
        self._dms: dict[str, str] = {}

    async def actor(self, user_id: str) -> Actor:
        cached = self._names.get(user_id)
        if cached is not None and time.monotonic() - cached[1] < NAME_CACHE_SECONDS:
            return Actor(user_id, cached[0])
        name = ""
        try:
            answer = await self.client.users_info(user=user_id)
            user = answer.get("user") or {}
            profile = user.get("profile") or {}
            name = (profile.get("real_name") or user.get("real_name") or profile.get("display_name")
                    or user.get("name") or "")
        except SlackApiError as exc:
            log.warning("users.info for %s failed: %s", user_id, exc.response.get("error"))
        self._names[user_id] = (name, time.monotonic())
        return Actor(user_id, name)

    async def dm(self, user_id: str) -> str:
        if user_id not in self._dms:
            answer = await self.client.conversations_open(users=user_id)
            self._dms[user_id] = str(answer["channel"]["id"])
        return self._dms[user_id]


class SlackSurface:
    name = "slack"

    def __init__(self, settings: Settings, client: AsyncWebClient, people: SlackPeople, user_id: str,
                 place: Place, thread_ts: str = "", trigger_id: str = "") -> None:
        self.settings = settings
        self.client = client
        self.people = people
        self.user_id = user_id
        self.place = place
        self.thread_ts = thread_ts
        self.trigger_id = trigger_id

    async def _ephemeral(self, text: str, blocks: list[dict[str, Any]] | None = None) -> None:
        if self.place.channel:
            try:
                kwargs: dict[str, Any] = {"thread_ts": self.thread_ts} if self.thread_ts else {}
                await self.client.chat_postEphemeral(channel=self.place.channel, user=self.user_id, text=text,
                                                     blocks=blocks, **kwargs)
                return
            except SlackApiError as exc:
                if exc.response.get("error") not in NOT_THERE:
                    raise
        await self.client.chat_postMessage(channel=await self.people.dm(self.user_id), text=text, blocks=blocks)

    async def reply(self, reply: Reply) -> None:
        blocks = blocks_for(reply)
        destination = self.place.channel
        if reply.files and not private_place(self.settings, self.place):
            destination = await self.people.dm(self.user_id)
            blocks.append({"type": "context", "elements": [
                {"type": "mrkdwn", "text": "The file holds personal data: it is in our direct messages."}]})
        if reply.private or not self.place.channel:
            await self._ephemeral(reply.text, blocks)
        else:
            await self.client.chat_postMessage(channel=self.place.channel, text=reply.text, blocks=blocks,
                                               **({"thread_ts": self.thread_ts} if self.thread_ts else {}))
        for file in reply.files:
            await self._upload(file, destination or await self.people.dm(self.user_id))

    async def _upload(self, file: OutFile, channel: str) -> None:
        thread = self.thread_ts if channel == self.place.channel and self.thread_ts else None
        await self.client.files_upload_v2(channel=channel, filename=file.filename, content=file.data,
                                          title=file.title or file.filename, thread_ts=thread)

    async def refuse(self, text: str) -> None:
        await self._ephemeral(text)

    async def open_form(self, form: Form, metadata: dict[str, str]) -> None:
        await self.client.views_open(trigger_id=self.trigger_id, view=modal_for(form, metadata))

    async def start_progress(self, text: str, thread_ts: str = "") -> Anchor:
        channel = self.place.channel
        try:
            answer = await self.client.chat_postMessage(channel=channel, text=text,
                                                        **({"thread_ts": thread_ts} if thread_ts else {}))
        except SlackApiError as exc:
            if exc.response.get("error") not in NOT_THERE:
                raise
            channel, thread_ts = await self.people.dm(self.user_id), ""
            answer = await self.client.chat_postMessage(channel=channel, text=text)
        ts = str(answer["ts"])
        return Anchor(channel=channel, thread_ts=thread_ts or ts, message_ts=ts, user_id=self.user_id)

    async def update_progress(self, anchor: Anchor, text: str) -> None:
        await self.client.chat_update(channel=anchor.channel, ts=anchor.message_ts, text=text)
