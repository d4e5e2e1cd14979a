"""Downloading a file staff dropped into Slack: only from Slack's file host (or the configured API host), with the
bot token, and never passing on a web page that Slack served instead of the file."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urljoin, urlsplit

import aiohttp

from bot.flows import FileProblem
from plumbing.config import Settings

SLACK_FILE_HOSTS = frozenset({"files.slack.com"})
SNIFF_BYTES = 4096
READ_BYTES = 256 * 1024
MAX_REDIRECTS = 3
HTML_MARKERS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<script", b"<meta")
HTML_PAGE = ("Slack sent me a web page instead of your file. That is a configuration problem, not a problem with "
             "the file: the Slack app needs the *files:read* scope. Ask whoever manages the Slack app to add it and "
             "reinstall the app, then drop the file again.")


def allowed_host(url: str, settings: Settings) -> bool:
    parts = urlsplit(url)
    api = urlsplit(settings.slack_api_url)
    if parts.hostname in SLACK_FILE_HOSTS:
        return parts.scheme == "https"
    return parts.netloc == api.netloc and parts.scheme == api.scheme


def looks_like_html(head: bytes) -> bool:
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return start.startswith(HTML_MARKERS)


async def open_slack_file(session: aiohttp.ClientSession, url: str, token: str,
                          settings: Settings) -> AsyncIterator[bytes]:
    """Check the host, fetch with the bot token, read enough to tell a web page from a file, then stream."""
    for _ in range(MAX_REDIRECTS + 1):
        if not url or not allowed_host(url, settings):
            host = urlsplit(url).netloc or "an empty address"
            raise FileProblem(f"I only download files from Slack itself, not from {host}.")
        response = await session.get(url, headers={"Authorization": f"Bearer {token}"}, allow_redirects=False,
                                     timeout=aiohttp.ClientTimeout(total=None, sock_connect=15, sock_read=60))
        if response.status in (301, 302, 303, 307, 308):
            url = urljoin(url, response.headers.get("Location", ""))
            response.release()
            continue
        break
    else:
        raise FileProblem("Slack kept redirecting the download of that file; please drop it again.")
    if response.status != 200:
        response.release()
        raise FileProblem(f"Slack would not give me the file (HTTP {response.status}); please drop it again.")
    head = b""
    try:
        while len(head) < SNIFF_BYTES:
            block = await response.content.read(SNIFF_BYTES - len(head))
            if not block:
                break
            head += block
    except aiohttp.ClientError as exc:
        response.release()
        raise FileProblem("The download from Slack broke off; please drop the file again.") from exc
    if looks_like_html(head):
        response.release()
        raise FileProblem(HTML_PAGE)
    return _rest(response, head)


async def _rest(response: aiohttp.ClientResponse, head: bytes) -> AsyncIterator[bytes]:
    try:
        if head:
            yield head
        async for block in response.content.iter_chunked(READ_BYTES):
            yield block
    finally:
        with contextlib.suppress(Exception):
            response.release()
