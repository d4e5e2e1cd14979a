"""A plain HTTP client for the parents' pages: keeps cookies like a browser, follows redirects, and posts forms
with the CSRF token of the page it last read."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDictProxy

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Page:
    status: int
    url: str
    text: str
    headers: CIMultiDictProxy[str]

    @property
    def plain(self) -> str:
        """The page's text without tags, entities decoded, spaces collapsed."""
        return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", self.text)).split())


class WebClient:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.last: Page | None = None

    async def close(self) -> None:
        await self.session.close()

    async def _page(self, response: aiohttp.ClientResponse) -> Page:
        page = Page(response.status, str(response.url), await response.text(), response.headers)
        self.last = page
        return page

    async def get(self, path: str) -> Page:
        async with self.session.get(self.base + path) as response:
            return await self._page(response)

    def token(self) -> str:
        assert self.last is not None
        found = _TOKEN.search(self.last.text)
        assert found, "the last page has no form"
        return found.group(1)

    async def post(self, path: str, data: dict[str, str], csrf: bool = True) -> Page:
        form = {**data, "csrf_token": self.token()} if csrf else dict(data)
        async with self.session.post(self.base + path, data=form) as response:
            return await self._page(response)
