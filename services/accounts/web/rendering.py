"""Pages as HTML: Jinja2 templates (autoescaped), each given the school's name, the password rules, the CSRF token
of the browser's CSRF key (set as a cookie when the browser has none yet) and the errors to show."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import segno
from aiohttp import web
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from services.accounts import rules
from services.accounts.web.security import CSRF_COOKIE, csrf_token, new_key, signed, unsigned

TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True)
class PageError:
    message: str
    # The id of the input at fault (the error summary links to it), or "".
    field: str = ""


@dataclass(frozen=True)
class Cookies:
    secret: str
    secure: bool

    def set(self, response: web.StreamResponse, name: str, value: str, purpose: str) -> None:
        response.set_cookie(name, signed(self.secret, purpose, value), httponly=True, secure=self.secure,
                            samesite="Lax", path="/")

    def clear(self, response: web.StreamResponse, name: str) -> None:
        response.del_cookie(name, path="/")

    def get(self, request: web.Request, name: str, purpose: str) -> str:
        return unsigned(self.secret, purpose, request.cookies.get(name))


class Renderer:
    def __init__(self, school_name: str, cookies: Cookies) -> None:
        self.school_name = school_name
        self.cookies = cookies
        self.env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                               trim_blocks=True, lstrip_blocks=True)

    def csrf_key(self, request: web.Request) -> str:
        return self.cookies.get(request, CSRF_COOKIE, "csrf-key")

    def page(self, request: web.Request, template: str, title: str, *, status: int = 200,
             errors: list[PageError] | None = None, notice: str = "", **context: Any) -> web.Response:
        key = self.csrf_key(request)
        fresh = not key
        if fresh:
            key = new_key()
        errors = errors or []
        html = self.env.get_template(template).render(
            title=title, school_name=self.school_name, errors=errors, notice=notice,
            field_errors={e.field: e.message for e in errors if e.field},
            csrf_token=csrf_token(self.cookies.secret, key), password_min=rules.PASSWORD_MIN,
            password_max=rules.PASSWORD_MAX, **context)
        response = web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
        if fresh:
            self.cookies.set(response, CSRF_COOKIE, key, "csrf-key")
        return response

    def message(self, request: web.Request, title: str, *paragraphs: str, link: tuple[str, str] | None = None,
                status: int = 200) -> web.Response:
        return self.page(request, "message.html.j2", title, status=status, paragraphs=paragraphs,
                         link={"href": link[0], "label": link[1]} if link else None)


def qr_svg(uri: str) -> Markup:
    """The otpauth URI as an inline SVG QR code (drawn here: no image from anywhere else)."""
    svg = segno.make(uri, error="m").svg_inline(scale=5, title="QR code for your authenticator app")
    return Markup(svg.replace("<svg ", '<svg role="img" aria-label="QR code for your authenticator app" ', 1))
