"""Email templates: Jinja2 (HTML autoescaped) with a plain-text and an HTML part each, and the MIME message built
from them. Pure: everything it needs (branding, clock) is passed in."""

from __future__ import annotations

import binascii
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.utils import format_datetime, make_msgid, parseaddr
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, select_autoescape
from markupsafe import Markup, escape

from plumbing.config import Settings
from services.notify.rules import TEMPLATES, data_problem

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"

SUBJECTS = {
    "invitation": "Your {{ portal_name }} account",
    "password_reset": "Reset your {{ portal_name }} password",
    "login_details": "Your {{ portal_name }} login details",
    "two_factor_enabled": "Two-factor sign-in is now on for your {{ portal_name }} account",
    "notice": "{{ subject }}",
}


class TemplateDataError(ValueError):
    """The data cannot fill the template (missing field, link that is not http(s))."""


@dataclass(frozen=True)
class Branding:
    """Who an email comes from: the school's name and sender, where the portal lives, and the local time zone."""

    school_name: str
    mail_from: str
    public_url: str
    zone: ZoneInfo
    # The bare address of mail_from (the envelope sender), its domain (for Message-IDs), and the From header.
    sender_address: str = field(init=False)
    sender_domain: str = field(init=False)
    from_header: str = field(init=False)

    def __post_init__(self) -> None:
        address = parseaddr(self.mail_from)[1]
        object.__setattr__(self, "sender_address", address)
        object.__setattr__(self, "sender_domain", address.rpartition("@")[2] or "localhost")
        object.__setattr__(self, "from_header", _address_header(self.mail_from))


class BrandingCache:
    """branding_for, remembered per school (it is asked for every message)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._known: dict[str, Branding] = {}

    def __call__(self, school: str = "") -> Branding:
        branding = self._known.get(school)
        if branding is None:
            branding = self._known[school] = branding_for(self.settings, school)
        return branding


def branding_for(settings: Settings, school: str = "") -> Branding:
    """The configured branding, with the school's own name and sender when PORTAL_SCHOOL_SENDERS names it
    (matched case-insensitively)."""
    name, sender = settings.school_name, settings.mail_from
    if school:
        wanted = school.strip().casefold()
        for key, override in settings.school_senders.items():
            if key.strip().casefold() == wanted:
                name = override.name or name
                sender = override.mail_from or sender
                break
    return Branding(name, sender, settings.public_url, settings.zone)


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def _paragraphs(text: str) -> Markup:
    """Plain text as HTML paragraphs: escaped, blank lines split paragraphs, single newlines become <br>."""
    blocks = [block.strip() for block in re.split(r"\n\s*\n", str(text).replace("\r\n", "\n")) if block.strip()]
    return Markup("\n").join(
        Markup("<p>{}</p>").format(Markup("<br>\n").join(escape(line) for line in block.split("\n")))
        for block in blocks
    )


@cache
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False, default=False),
        undefined=StrictUndefined,
        auto_reload=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["paragraphs"] = _paragraphs
    return env


@cache
def _subject(template: str) -> Template:
    return _environment().from_string(SUBJECTS[template])


def format_when(value: Any, zone: ZoneInfo) -> str:
    """An expiry given as an ISO 8601 string or epoch seconds, in the school's time zone for people to read,
    e.g. "Friday 27 November 2026 at 17:00 GMT". Anything else is shown as given."""
    if value is None or value == "":
        return ""
    when: datetime | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        when = datetime.fromtimestamp(float(value), UTC)
    elif isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return value
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
    elif isinstance(value, datetime):
        when = value if value.tzinfo else value.replace(tzinfo=UTC)
    if when is None:
        return str(value)
    local = when.astimezone(zone)
    return f"{local:%A} {local.day} {local:%B %Y} at {local:%H:%M} {local.tzname() or ''}".strip()


def portal_name(school_name: str) -> str:
    """How emails name the portal: "Lincoln High parent portal", or the name itself when it already says portal
    (the default name is "Parent Portal")."""
    return school_name if "portal" in school_name.lower() else f"{school_name} parent portal"


def _context(template: str, data: Mapping[str, Any], branding: Branding) -> dict[str, Any]:
    def text(name: str) -> str:
        value = data.get(name)
        return "" if value is None else str(value).strip()

    school_name = text("school_name") or branding.school_name
    return {
        "school_name": school_name,
        "portal_name": portal_name(school_name),
        "first_name": text("first_name"),
        "username": text("username"),
        "link": text("link"),
        "expires": format_when(data.get("expire_time"), branding.zone),
        "login_url": text("login_url") or branding.public_url,
        "password": text("password") if template == "login_details" else "",
        "subject": text("subject"),
        "body": str(data.get("body") or ""),
        "contact": text("contact"),
    }


def render(template: str, data: Mapping[str, Any], branding: Branding) -> Rendered:
    """Subject, plain text and HTML of one email. Raises TemplateDataError when the data cannot fill it."""
    if template not in TEMPLATES:
        raise TemplateDataError(f"unknown template {template!r}")
    problem = data_problem(template, data)
    if problem:
        raise TemplateDataError(problem)
    env = _environment()
    context = _context(template, data, branding)
    subject = " ".join(_subject(template).render(context).split())
    text = env.get_template(f"{template}.txt.j2").render(context)
    html = env.get_template(f"{template}.html.j2").render(context)
    return Rendered(subject, text, html)


def sample_data(template: str, branding: Branding, now: datetime) -> dict[str, Any]:
    """Data a preview uses for every field the caller did not give."""
    link = f"{branding.public_url}/set-password?token=SAMPLE-TOKEN"
    samples: dict[str, dict[str, Any]] = {
        "invitation": {"first_name": "Alex", "username": "asmith42", "link": link,
                       "expire_time": (now + timedelta(hours=72)).isoformat()},
        "password_reset": {"first_name": "Alex", "username": "asmith42", "link": link,
                           "expire_time": (now + timedelta(hours=24)).isoformat()},
        "login_details": {"first_name": "Alex", "username": "asmith42", "password": "Sample-Passw0rd"},
        "two_factor_enabled": {"first_name": "Alex", "username": "asmith42"},
        "notice": {"subject": "A message from the school office",
                   "body": "Dear parent,\n\nThis is how a notice looks.\n\nThe school office"},
    }
    return samples[template]


def new_message_id(branding: Branding) -> str:
    """A Message-ID in the sender's domain, fixed when the email is queued so every attempt carries the same one."""
    return make_msgid(domain=branding.sender_domain)


def _header_text(value: str) -> str:
    """A header value: as it is when ASCII (no line breaks can reach here), else RFC 2047 encoded-words."""
    value = " ".join(value.split())
    if value.isascii():
        return value
    return Header(value, "utf-8").encode(linesep="\r\n")


_SPECIALS = re.compile(r'[][\\()<>@,:;".]')


def _address_header(value: str) -> str:
    """ "Name <address>" with the name encoded (non-ASCII) or quoted (specials) as RFC 5322 and 2047 want."""
    name, address = parseaddr(value)
    name = " ".join(name.split())
    if not name:
        return address
    if not name.isascii():
        shown = Header(name, "utf-8").encode(linesep="\r\n")
    elif _SPECIALS.search(name):
        shown = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    else:
        shown = name
    return f"{shown} <{address}>"


def _quoted_printable(text: str) -> bytes:
    body = binascii.b2a_qp(text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8"), istext=True)
    return body.replace(b"\n", b"\r\n")


def build_message(rendered: Rendered, branding: Branding, to: str, message_id: str, date: datetime) -> bytes:
    """The message as sent: multipart/alternative (text, then HTML, both UTF-8 in quoted-printable, so the message
    is 7-bit clean for any server) with From, To, Subject, Date and Message-ID. Assembled directly rather than
    through email.message, which costs a hundred times more per message."""
    boundary = f"=_portal_{secrets.token_hex(12)}"
    headers = [
        ("From", branding.from_header),
        ("To", to),
        ("Subject", _header_text(rendered.subject)),
        ("Date", format_datetime(date.astimezone(UTC))),
        ("Message-ID", message_id),
        ("Auto-Submitted", "auto-generated"),
        ("MIME-Version", "1.0"),
        ("Content-Type", f'multipart/alternative; boundary="{boundary}"'),
    ]
    head = "".join(f"{name}: {value}\r\n" for name, value in headers).encode("utf-8")
    marker = f"--{boundary}\r\n".encode()
    parts = []
    for subtype, content in (("plain", rendered.text), ("html", rendered.html)):
        parts += [marker, f'Content-Type: text/{subtype}; charset="utf-8"\r\n'.encode(),
                  b"Content-Transfer-Encoding: quoted-printable\r\n\r\n", _quoted_printable(content), b"\r\n"]
    return b"".join([head, b"\r\n", *parts, f"--{boundary}--\r\n".encode()])
