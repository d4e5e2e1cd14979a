"""Who may command the bot (PORTAL_ADMINS, members of PORTAL_ADMIN_GROUP) and where (PORTAL_CHANNELS, DMs)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from plumbing.config import Settings

log = logging.getLogger("portal.bot.access")
GROUP_CACHE_SECONDS = 60.0

REFUSAL = "Sorry, only portal staff can use this. Ask an administrator to add you to the portal's staff."
PUBLIC_FILE = ("I did not open that file: trial-run results hold personal data, so I only take files in private "
               "channels and direct messages. Please drop it in a private staff channel or a DM with me.")
OTHER_CHANNEL = ("I only work in the portal's staff channels and in direct messages: results hold personal data. "
                 "Please use one of those.")


def log_refusal(user_id: str, what: str) -> None:
    log.warning("refused %s: %s is not portal staff", what, user_id,
                extra={"fields": {"user": user_id, "attempt": what}})


class Access:
    """Default deny: an admin id, or a member of the admin user group (membership cached for a minute)."""

    def __init__(self, settings: Settings, client: AsyncWebClient | None) -> None:
        self.settings = settings
        self.client = client
        self._members: frozenset[str] = frozenset()
        self._fetched = 0.0
        self._group_id: str | None = None

    async def allows(self, user_id: str) -> bool:
        if user_id in self.settings.admin_ids:
            return True
        if not self.settings.admin_group or self.client is None:
            return False
        return user_id in await self._group_members()

    async def _group_members(self) -> frozenset[str]:
        if time.monotonic() - self._fetched < GROUP_CACHE_SECONDS:
            return self._members
        assert self.client is not None
        try:
            group = await self._resolve_group()
            if group is None:
                log.warning("PORTAL_ADMIN_GROUP=%s names no user group in this workspace", self.settings.admin_group)
                return self._members
            answer = await self.client.usergroups_users_list(usergroup=group)
            self._members = frozenset(answer.get("users") or ())
            self._fetched = time.monotonic()
        except SlackApiError as exc:
            log.warning("cannot read the members of PORTAL_ADMIN_GROUP (%s); keeping the last known list",
                        exc.response.get("error"))
        return self._members

    async def _resolve_group(self) -> str | None:
        """A user-group id (S...) as given, or the id of the group whose handle or name is given."""
        wanted = (self.settings.admin_group or "").lstrip("@")
        if wanted.startswith("S") and wanted.upper() == wanted:
            return wanted
        if self._group_id is None:
            assert self.client is not None
            answer = await self.client.usergroups_list()
            for group in answer.get("usergroups") or ():
                if wanted.lower() in (str(group.get("handle", "")).lower(), str(group.get("name", "")).lower()):
                    self._group_id = str(group["id"])
                    break
        return self._group_id


@dataclass(frozen=True)
class Place:
    """Where something happened in Slack, as far as the privacy rules care."""

    channel: str
    channel_type: str = ""  # "im", "mpim", "group", "channel", or "" when unknown

    @property
    def is_dm(self) -> bool:
        return self.channel_type == "im" or self.channel.startswith("D")


def command_place_allowed(settings: Settings, place: Place) -> bool:
    """With PORTAL_CHANNELS set, only those channels and direct messages; otherwise anywhere the bot is asked."""
    return not settings.channel_ids or place.is_dm or place.channel in settings.channel_ids


def file_place_problem(settings: Settings, place: Place) -> str | None:
    """Why a file dropped here must not be processed, or None when it may."""
    if place.is_dm:
        return None
    if settings.channel_ids:
        return None if place.channel in settings.channel_ids else OTHER_CHANNEL
    return PUBLIC_FILE if place.channel_type == "channel" else None


def private_place(settings: Settings, place: Place) -> bool:
    """Whether personal data (a template, a lookup's file) may be posted into this conversation."""
    return place.is_dm or place.channel in settings.channel_ids or place.channel_type in ("group", "mpim")
