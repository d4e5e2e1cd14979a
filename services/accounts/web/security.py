"""The pages' defences: signed cookies (the session id, and the browser's CSRF key), CSRF tokens signed with
PORTAL_SECRET_KEY and bound to that key, the security headers every answer carries, and the client's address
(behind PORTAL_WEB_PROXY_HOPS reverse proxies)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

SESSION_COOKIE = "portal_session"
CSRF_COOKIE = "portal_csrf"
CSRF_FIELD = "csrf_token"
CSRF_LIFETIME_SECONDS = 4 * 3600
# Only this origin's own styles; forms post only here; no frames, no scripts, no third-party anything.
CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # Set-password links carry their token in the address: never pass it on to another site.
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


def _mac(secret: str, purpose: str, value: str) -> str:
    digest = hmac.new(secret.encode(), f"{purpose}\x1f{value}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def signed(secret: str, purpose: str, value: str) -> str:
    return f"{value}.{_mac(secret, purpose, value)}"


def unsigned(secret: str, purpose: str, cookie: str | None) -> str:
    """The value of a signed cookie, or "" when it is missing or its signature is wrong."""
    if not cookie or "." not in cookie:
        return ""
    value, _, mac = cookie.rpartition(".")
    return value if hmac.compare_digest(mac, _mac(secret, purpose, value)) else ""


def new_key() -> str:
    return secrets.token_urlsafe(24)


def csrf_token(secret: str, key: str, now: float | None = None) -> str:
    stamp = str(int(now if now is not None else time.time()))
    return f"{stamp}.{_mac(secret, 'csrf', f'{key}:{stamp}')}"


def csrf_ok(secret: str, key: str, token: str, now: float | None = None) -> bool:
    if not key or "." not in token:
        return False
    stamp, _, mac = token.partition(".")
    if not stamp.isdigit() or (now if now is not None else time.time()) - int(stamp) > CSRF_LIFETIME_SECONDS:
        return False
    return hmac.compare_digest(mac, _mac(secret, "csrf", f"{key}:{stamp}"))


def client_address(request: web.Request, proxy_hops: int) -> str:
    """The connection's address, or with `proxy_hops` reverse proxies in front, the X-Forwarded-For entry that
    many hops from the right (what the nearest trusted proxy saw; entries further left are the client's word)."""
    if proxy_hops:
        forwarded = [part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",") if part.strip()]
        if len(forwarded) >= proxy_hops:
            return forwarded[-proxy_hops][:100]
    return (request.remote or "")[:100]


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def headers_middleware(https: bool) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    @web.middleware
    async def secure_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        if https:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        if not request.path.startswith("/static/"):
            # Every page may show a username, a form token or recovery codes: never kept by a cache.
            response.headers["Cache-Control"] = "no-store"
            response.headers["Pragma"] = "no-cache"
        if isinstance(response, web.HTTPException):
            raise response
        return response

    return secure_headers
