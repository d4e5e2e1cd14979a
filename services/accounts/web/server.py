"""The parents' pages as an aiohttp application on PORTAL_WEB_PORT, run by the accounts process: middlewares for
security headers, CSRF and unexpected errors; the page routes; the stylesheet; and a background loop that serves
until the service stops (and forgets expired sessions now and then)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from aiohttp import web

from plumbing.config import Settings
from services.accounts.self_service import SelfService
from services.accounts.setpassword import SetPasswordLinks
from services.accounts.web.pages import Pages
from services.accounts.web.rendering import Cookies, Renderer
from services.accounts.web.security import CSRF_FIELD, Handler, csrf_ok, headers_middleware

log = logging.getLogger("portal.accounts.web")
STATIC = Path(__file__).resolve().parent / "static"
PRUNE_SECONDS = 3600.0
MAX_FORM_BYTES = 64 * 1024


def make_app(service: SelfService, links: SetPasswordLinks, settings: Settings) -> web.Application:
    https = settings.public_url.startswith("https://")
    cookies = Cookies(settings.web_secret, https)
    renderer = Renderer(settings.school_name, cookies)

    @web.middleware
    async def unexpected(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception:
            log.exception("page %s %s failed", request.method, request.path)
            return renderer.message(request, "Something went wrong",
                                    "Please try again in a moment. If it keeps happening, contact the school office.",
                                    status=500)

    @web.middleware
    async def csrf(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "POST":
            form = await request.post()
            token = form.get(CSRF_FIELD, "")
            if not isinstance(token, str) or not csrf_ok(settings.web_secret, renderer.csrf_key(request), token):
                return renderer.message(request, "This form has expired",
                                        "For your security, forms work for a few hours from one browser. Go back, "
                                        "reload the page and try again.", link=("/login", "Sign in"), status=403)
        return await handler(request)

    app = web.Application(middlewares=[headers_middleware(https), unexpected, csrf], client_max_size=MAX_FORM_BYTES)
    app.add_routes(Pages(service, links, renderer, settings.web_proxy_hops).routes())
    app.router.add_static("/static/", STATIC, show_index=False, follow_symlinks=False)
    return app


async def serve(app: web.Application, service: SelfService, port: int, stopping: asyncio.Event) -> None:
    """Serve on 0.0.0.0:`port` until `stopping` is set (a port that cannot be had is logged, the service goes on);
    expired sessions are removed every hour."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, "0.0.0.0", port).start()
        except OSError as exc:
            log.error("the parents' pages cannot listen on port %s (%s): set PORTAL_WEB_PORT to a free port", port,
                      exc)
            return
        log.info("parents' pages on port %s", port)
        while not stopping.is_set():
            try:
                gone = await service.prune()
                if gone:
                    log.info("removed %d expired web sessions", gone)
            except Exception:
                log.exception("removing expired web sessions failed; trying again later")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), PRUNE_SECONDS)
    finally:
        await service.drain()
        await runner.cleanup()
