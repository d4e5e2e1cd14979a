"""The bolt app: every request is acknowledged at once (within Slack's 3 seconds) and its work continues in an
asyncio task that calls the durable services. Every event type the manifest subscribes to has a listener."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.access import OTHER_CHANNEL, Place, command_place_allowed
from bot.core import BotCore, Request
from bot.dispatch import allowed, run_action, run_command, submit_form
from bot.progress import watch_job
from bot.render_slack import modal_values
from bot.services import ServiceProblem, calling
from bot.slack_files import SlackFiles
from bot.slack_surface import SlackPeople, SlackSurface
from plumbing.context import Actor
from portal.accounts.v1 import accounts_pb2
from portal.common.v1 import jobs_pb2
from portal.imports.v1 import imports_pb2

log = logging.getLogger("portal.bot.slack")
COMMAND = "/portal"
CHANNEL_TYPES = {"directmessage": "im", "privategroup": "group"}


def command_place(body: dict[str, Any]) -> Place:
    name = str(body.get("channel_name", ""))
    kind = CHANNEL_TYPES.get(name, "mpim" if name.startswith("mpdm-") else "")
    return Place(str(body.get("channel_id", "")), kind)


class SlackFrontEnd:
    """Bolt listeners over the shared dispatcher."""

    def __init__(self, core: BotCore, client: AsyncWebClient, session: aiohttp.ClientSession, token: str,
                 signing_secret: str, bot_user_id: str) -> None:
        self.core = core
        self.client = client
        self.people = SlackPeople(client)
        self.files = SlackFiles(core, client, self.people, session, token, bot_user_id)
        self.app = AsyncApp(client=client, signing_secret=signing_secret, process_before_response=False,
                            name="parent-portal")
        self._listen()

    def surface(self, user_id: str, place: Place, thread_ts: str = "", trigger_id: str = "") -> SlackSurface:
        return SlackSurface(self.core.settings, self.client, self.people, user_id, place, thread_ts, trigger_id)

    def _listen(self) -> None:
        app, spawn = self.app, self.core.tasks.spawn

        @app.command(COMMAND)
        async def on_command(ack: AsyncAck, body: dict[str, Any]) -> None:
            await ack()
            spawn(self.command(body), name="slash command")

        @app.event("message")
        async def on_message(body: dict[str, Any], event: dict[str, Any]) -> None:
            if event.get("subtype") == "file_share" and event.get("files"):
                spawn(self.files.from_message(body), name="file share")

        @app.event("file_shared")
        async def on_file_shared(body: dict[str, Any]) -> None:
            spawn(self.files.from_file_shared(body), name="file shared")

        @app.action(re.compile(".+"))
        async def on_action(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
            await ack()
            spawn(self.action(body, action), name=f"button {action.get('action_id')}")

        for callback_id in self.core.registry.forms:
            app.view(callback_id)(self.submission)

    async def command(self, body: dict[str, Any]) -> None:
        user, place = str(body.get("user_id", "")), command_place(body)
        actor = await self.people.actor(user)
        request = Request(actor, self.surface(user, place, trigger_id=str(body.get("trigger_id", ""))),
                          place.channel, key=str(body.get("trigger_id", "")))
        text = str(body.get("text", ""))
        if not command_place_allowed(self.core.settings, place):
            if await allowed(self.core, request, f"/portal {text}".strip()):
                await request.surface.refuse(OTHER_CHANNEL)
            return
        await run_command(self.core, request, text)

    async def action(self, body: dict[str, Any], action: dict[str, Any]) -> None:
        user = str((body.get("user") or {}).get("id", ""))
        container = body.get("container") or {}
        message = body.get("message") or {}
        channel = str((body.get("channel") or {}).get("id") or container.get("channel_id") or "")
        # A button on a thread's message answers in that thread; an ephemeral card has no thread of its own.
        thread_ts = str(message.get("thread_ts") or container.get("thread_ts")
                        or ("" if container.get("is_ephemeral") else message.get("ts") or container.get("message_ts"))
                        or "")
        key = str(container.get("message_ts") or container.get("view_id") or body.get("trigger_id") or "")
        place = Place(channel)
        request = Request(await self.people.actor(user),
                          self.surface(user, place, thread_ts, str(body.get("trigger_id", ""))),
                          channel, thread_ts, key=f"{channel}:{key}")
        await run_action(self.core, request, str(action.get("action_id", "")), str(action.get("value", "")))

    async def submission(self, ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        user = str((body.get("user") or {}).get("id", ""))
        try:
            metadata = json.loads(view.get("private_metadata") or "{}")
        except ValueError:
            metadata = {}
        channel = str(metadata.get("channel", ""))
        request = Request(await self.people.actor(user), self.surface(user, Place(channel)), channel,
                          key=str(view.get("id", "")),
                          metadata={str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {})
        result = await submit_form(self.core, request, str(view.get("callback_id", "")), modal_values(view))
        if result.errors:
            await ack(response_action="errors", errors=result.errors)
            return
        await ack()
        if result.reply is not None:
            self.core.tasks.spawn(request.surface.reply(result.reply), name="form reply")

    async def resume_progress(self) -> None:
        """After a restart, keep the progress messages of jobs still running current (their final messages come
        from notify either way)."""
        actor = Actor("portal-bot", "portal bot")
        for service in ("imports", "accounts"):
            try:
                async with calling(service, actor):
                    running = await self._running_jobs(service)
            except ServiceProblem as exc:
                log.info("not resuming progress messages of %s jobs: %s", service, exc.message)
                continue
            for job in running:
                anchor = job.anchor
                if not anchor.channel or not anchor.message_ts or anchor.channel == "console":
                    continue

                async def update(text: str, channel: str = anchor.channel, ts: str = anchor.message_ts) -> None:
                    await self.client.chat_update(channel=channel, ts=ts, text=text)

                self.core.tasks.spawn(watch_job(self.core.services, Actor(anchor.user_id), job.id, update,
                                                self.core.stopping, self.core.progress_interval,
                                                self.core.progress_poll, service), name=f"progress {job.id}")

    async def _running_jobs(self, service: str) -> list[jobs_pb2.Job]:
        """Jobs of the imports or the accounts service still queued or running."""
        if service == "accounts":
            found = await self.core.services.accounts.ListJobs(accounts_pb2.ListJobsRequest(page_size=50,
                                                                                          active_only=True))
            return list(found.jobs)
        answer = await self.core.services.imports.ListImportJobs(
            imports_pb2.ListImportJobsRequest(page_size=50, active_only=True))
        return [item.job for item in answer.jobs]
