"""A spreadsheet dropped into Slack. It arrives twice (a `message` event with subtype `file_share`, and
`file_shared`); Slack may deliver each again (same event id). Both are recorded in the shared database, so the
file gets one trial run whichever event comes first and however often."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.access import REFUSAL, Place, file_place_problem, log_refusal
from bot.core import BotCore, Request
from bot.files import open_slack_file
from bot.flows import FileSource, run_trial
from bot.slack_surface import SlackPeople, SlackSurface

log = logging.getLogger("portal.bot.files")
SPREADSHEET_HINTS = ("xlsx", "xlsm", "xls", "csv", "tsv", "ods", "spreadsheet")


@dataclass(frozen=True)
class DroppedFile:
    file: dict[str, Any]
    user: str
    place: Place
    thread_ts: str


class SlackFiles:
    def __init__(self, core: BotCore, client: AsyncWebClient, people: SlackPeople, session: aiohttp.ClientSession,
                 token: str, bot_user_id: str) -> None:
        self.core = core
        self.client = client
        self.people = people
        self.session = session
        self.token = token
        self.bot_user_id = bot_user_id

    async def from_message(self, body: dict[str, Any]) -> None:
        event = body.get("event") or {}
        if event.get("user") == self.bot_user_id or event.get("bot_id"):
            return
        if not await self.core.handled.claim(f"event:{body.get('event_id')}", "event"):
            log.info("event %s delivered again; already handled", body.get("event_id"))
            return
        place = Place(str(event.get("channel", "")), str(event.get("channel_type", "")))
        thread_ts = str(event.get("thread_ts") or event.get("ts") or "")
        for file in event.get("files") or ():
            if not file.get("url_private_download") and file.get("id"):
                file = await self._info(str(file["id"])) or file
            await self.handle(DroppedFile(file, str(event.get("user", "")), place, thread_ts))

    async def from_file_shared(self, body: dict[str, Any]) -> None:
        event = body.get("event") or {}
        user = str(event.get("user_id", ""))
        if user == self.bot_user_id:
            return
        if not await self.core.handled.claim(f"event:{body.get('event_id')}", "event"):
            log.info("event %s delivered again; already handled", body.get("event_id"))
            return
        file_id, channel = str(event.get("file_id", "")), str(event.get("channel_id", ""))
        file = await self._info(file_id)
        if file is None:
            return  # the message event of the same drop carries the file itself
        shares = file.get("shares") or {}
        public, private = shares.get("public") or {}, shares.get("private") or {}
        where = (public.get(channel) or private.get(channel) or [{}])[0]
        if channel in public:
            channel_type = "channel"
        elif channel in private:
            channel_type = "group"
        elif channel.startswith("D"):
            channel_type = "im"
        elif self.core.settings.channel_ids:
            channel_type = ""
        else:
            return  # public or private is unknown yet: the message event of the same drop says which
        thread_ts = str(where.get("thread_ts") or where.get("ts") or "")
        await self.handle(DroppedFile(file, user, Place(channel, channel_type), thread_ts))

    async def _info(self, file_id: str) -> dict[str, Any] | None:
        try:
            answer = await self.client.files_info(file=file_id)
        except SlackApiError as exc:
            log.warning("files.info %s failed: %s", file_id, exc.response.get("error"))
            return None
        return dict(answer.get("file") or {})

    async def handle(self, dropped: DroppedFile) -> None:
        file, core = dropped.file, self.core
        file_id = str(file.get("id", ""))
        surface = SlackSurface(core.settings, self.client, self.people, dropped.user, dropped.place,
                               dropped.thread_ts)
        actor = await self.people.actor(dropped.user)
        if not await core.access.allows(dropped.user):
            if _spreadsheet_like(file) and await core.handled.claim(f"refused:{file_id}", "refusal"):
                log_refusal(dropped.user, f"file {file.get('name', file_id)}")
                await surface.refuse(REFUSAL)
            return
        problem = file_place_problem(core.settings, dropped.place)
        if problem is not None:
            if await core.handled.claim(f"file:{file_id}", "file"):
                log.info("file %s not processed in %s (%s)", file_id, dropped.place.channel,
                         dropped.place.channel_type or "channel type unknown")
                await surface.refuse(problem)
            return
        if not await core.handled.claim(f"file:{file_id}", "file"):
            log.info("file %s already handled", file_id)
            return
        url = str(file.get("url_private_download") or file.get("url_private") or "")
        name = str(file.get("name") or file.get("title") or f"{file_id}.xlsx")

        async def open_file() -> Any:
            return await open_slack_file(self.session, url, self.token, core.settings)

        request = Request(actor, surface, dropped.place.channel, dropped.thread_ts, key=file_id)
        await run_trial(core, request, FileSource(name, open_file), request_id=file_id, thread_ts=dropped.thread_ts)


def _spreadsheet_like(file: dict[str, Any]) -> bool:
    name = str(file.get("name", "")).lower()
    kind = f"{file.get('filetype', '')} {file.get('mimetype', '')}".lower()
    return name.rsplit(".", 1)[-1] in SPREADSHEET_HINTS or any(hint in kind for hint in SPREADSHEET_HINTS)
