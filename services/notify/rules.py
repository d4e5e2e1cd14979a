"""Pure rules of the notify service: no I/O, no clock, no randomness of their own (callers pass `now` and `rand`).

Retry timing (exponential backoff with jitter, capped by a maximum age), SMTP and Slack failure classification,
the per-domain rate-limit arithmetic, recipient and request checks, and paging tokens.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiosmtplib
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

# States of an email or an alert, as stored.
QUEUED = "queued"
SENDING = "sending"
SENT = "sent"
FAILED = "failed"
STATES = (QUEUED, SENDING, SENT, FAILED)

TEMPLATES = ("invitation", "password_reset", "login_details", "two_factor_enabled", "notice")
MAX_KEY_LENGTH = 200
MAX_EMAILS_PER_CALL = 1000
MAX_ERROR_LENGTH = 2000


# Retries -----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff from `initial` seconds, doubling per attempt up to `maximum`, for at most `max_age`
    seconds after the message was created."""

    initial: float
    maximum: float
    max_age: float


def backoff_seconds(attempts: int, initial: float, maximum: float, rand: float) -> float:
    """The wait after the `attempts`-th failed attempt: initial * 2^(attempts-1), capped at `maximum`, with
    "equal jitter" (half of it fixed, half random: `rand` in [0, 1)), so replicas retrying together spread out."""
    exponent = min(max(attempts - 1, 0), 60)
    base = min(maximum, initial * math.pow(2, exponent))
    return base / 2 + (base / 2) * min(max(rand, 0.0), 1.0)


def next_attempt(
    attempts: int, created_at: datetime, now: datetime, policy: RetryPolicy, rand: float,
    not_before: float | None = None,
) -> datetime | None:
    """When to try again after a transient failure, or None when that would be past the maximum age (give up).

    `not_before` (seconds) is a wait the other side asked for (Slack's Retry-After): it replaces the backoff.
    """
    delay = not_before if not_before is not None else backoff_seconds(attempts, policy.initial, policy.maximum, rand)
    when = now + timedelta(seconds=max(delay, 0.0))
    if (when - created_at).total_seconds() > policy.max_age:
        return None
    return when


def gave_up_message(attempts: int, created_at: datetime, now: datetime, last_error: str) -> str:
    hours = (now - created_at).total_seconds() / 3600
    span = f"{hours:.1f} h" if hours >= 1 else f"{(now - created_at).total_seconds():.0f} s"
    return clip_error(f"gave up after {attempts} attempts over {span}: {last_error}")


def clip_error(text: str) -> str:
    return text if len(text) <= MAX_ERROR_LENGTH else text[:MAX_ERROR_LENGTH - 1] + "…"


# SMTP failures -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SmtpFailure:
    """What a failed send means. `reply` is recorded on the message (the server's reply when there is one).
    `server_level` failures say nothing about this message but about the server or our connection to it
    (refused, timed out, greeting/EHLO/TLS/login refused, 421): delivery pauses instead of trying the rest."""

    permanent: bool
    reply: str
    server_level: bool = False


_CONNECTION_STAGE = (aiosmtplib.SMTPConnectResponseError, aiosmtplib.SMTPHeloError,
                     aiosmtplib.SMTPAuthenticationError)


def _reply(code: int, message: str) -> str:
    return clip_error(f"{code} {' '.join(message.split())}".strip())


class SmtpConnectFailed(Exception):
    """Opening a connection failed (connect, greeting, EHLO, STARTTLS or login): never the message's fault."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def classify_smtp_error(exc: BaseException) -> SmtpFailure:
    """Transient (connection errors, timeouts, 4xx) or permanent (5xx, bad address, unsupported address)."""
    if isinstance(exc, SmtpConnectFailed):
        inner = classify_smtp_error(exc.cause)
        return SmtpFailure(False, inner.reply, server_level=True)
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        refused = exc.recipients[0] if exc.recipients else None
        if refused is None:
            return SmtpFailure(False, "recipient refused")
        return SmtpFailure(refused.code >= 500, _reply(refused.code, refused.message))
    if isinstance(exc, _CONNECTION_STAGE):
        # The server refused us, not the message: a configuration or capacity problem worth waiting out.
        return SmtpFailure(False, _reply(exc.code, exc.message), server_level=True)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        if exc.code == 421:
            return SmtpFailure(False, _reply(exc.code, exc.message), server_level=True)
        if 400 <= exc.code < 500:
            return SmtpFailure(False, _reply(exc.code, exc.message))
        if exc.code >= 500:
            return SmtpFailure(True, _reply(exc.code, exc.message))
        return SmtpFailure(False, _reply(exc.code, exc.message), server_level=True)
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return SmtpFailure(True, clip_error(f"not supported by the server: {exc.message}"))
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return SmtpFailure(False, clip_error(f"timed out: {exc}" if str(exc) else "timed out"), server_level=True)
    if isinstance(exc, aiosmtplib.SMTPException | OSError):
        return SmtpFailure(False, clip_error(f"connection failed: {exc}"), server_level=True)
    if isinstance(exc, ValueError):
        # aiosmtplib's address checks (e.g. a newline or non-ASCII without SMTPUTF8)
        return SmtpFailure(True, clip_error(f"bad address: {exc}"))
    return SmtpFailure(False, clip_error(f"{type(exc).__name__}: {exc}"), server_level=True)


# Slack failures ----------------------------------------------------------------------------------------------------

# Slack answers these when the fault is on its side or with our token (which an admin can fix): worth retrying.
TRANSIENT_SLACK_ERRORS = frozenset({
    "ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout",
    "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired", "team_is_restricted",
})
# chat.update cannot edit the message: post a new one instead of failing the alert.
UPDATE_FALLBACK_ERRORS = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})
MAX_RETRY_AFTER = 3600.0


@dataclass(frozen=True)
class SlackFailure:
    permanent: bool
    reason: str
    # Slack's Retry-After, in seconds, when it gave one.
    retry_after: float | None = None


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (Slack sends an integer); None when absent or unreadable."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if math.isnan(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_RETRY_AFTER)


def classify_slack_error(status: int | None, error: str, retry_after: str | None) -> SlackFailure:
    """A Slack Web API failure: HTTP status (None for a network failure), Slack's `error` and Retry-After."""
    if status == 429 or error == "ratelimited":
        wait = parse_retry_after(retry_after)
        return SlackFailure(False, f"rate limited by Slack (retry after {wait if wait is not None else 1:.0f} s)",
                            wait if wait is not None else 1.0)
    if status is None:
        return SlackFailure(False, clip_error(f"Slack unreachable: {error}"))
    if status >= 500:
        return SlackFailure(False, clip_error(f"Slack answered HTTP {status}{': ' + error if error else ''}"))
    if error in TRANSIENT_SLACK_ERRORS:
        return SlackFailure(False, f"Slack error: {error}")
    return SlackFailure(True, clip_error(f"Slack error: {error or f'HTTP {status}'}"))


# Domain rate limit -------------------------------------------------------------------------------------------------

def window_start(epoch_seconds: float, window: int) -> int:
    """Start (epoch seconds) of the fixed window holding `epoch_seconds`; windows are aligned so replicas agree."""
    return int(epoch_seconds // window) * window


def granted(requested: int, limit: int, count_before: int) -> int:
    """How many of `requested` messages a domain may still take in this window, given how many it took before."""
    if limit <= 0:
        return requested
    return max(0, min(requested, limit - count_before))


# Recipients and requests -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Recipient:
    address: str
    domain: str


class BadAddress(ValueError):
    """The recipient is not a deliverable email address (the message is recorded as failed)."""


# The everyday address (ASCII dot-atom local part, LDH domain labels, alphabetic top-level domain) is checked here
# directly; anything else goes through email_validator, which costs ten times more per address.
_PLAIN_ADDRESS = re.compile(
    r"(?P<local>[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    r"@(?P<domain>(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+(?P<tld>[A-Za-z]{2,63}))"
)


def check_recipient(address: str) -> Recipient:
    """Normalise an address (domain lower-cased, IDNA) for sending; raise BadAddress when it cannot be sent to."""
    if not address or not address.strip():
        raise BadAddress("no recipient address")
    address = address.strip()
    plain = _PLAIN_ADDRESS.fullmatch(address)
    if (plain and len(plain["local"]) <= 64 and len(address) <= 254 and not plain["domain"].lower().startswith("xn--")
            and ".xn--" not in plain["domain"].lower() and plain["tld"].lower() not in SPECIAL_USE_DOMAIN_NAMES):
        domain = plain["domain"].lower()
        return Recipient(f"{plain['local']}@{domain}", domain)
    try:
        valid = validate_email(address, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise BadAddress(str(exc)) from None
    # The ASCII form (IDNA domain) whenever the local part allows, so that any server takes it.
    return Recipient(valid.ascii_email or valid.normalized, valid.ascii_domain or valid.domain)


REQUIRED_DATA = {
    "invitation": ("username", "link"),
    "password_reset": ("link",),
    "login_details": ("username", "password"),
    "two_factor_enabled": (),
    "notice": ("subject", "body"),
}
LINK_FIELDS = ("link", "login_url")
# Only the login-details email may carry a password: it is dropped from every other template's data on arrival.
PASSWORD_FIELDS = ("password",)


def clean_data(template: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """The data worth storing for a template: a password only where it is the point of the email."""
    cleaned = dict(data)
    if template != "login_details":
        for field in PASSWORD_FIELDS:
            cleaned.pop(field, None)
    return cleaned


def data_problem(template: str, data: Mapping[str, Any]) -> str | None:
    """Why `data` cannot fill `template` (a missing field, a link that is not http(s)), or None."""
    missing = [name for name in REQUIRED_DATA[template] if not str(data.get(name) or "").strip()]
    if missing:
        return f"missing template data: {', '.join(missing)}"
    for name in LINK_FIELDS:
        value = data.get(name)
        if value and not str(value).lower().startswith(("https://", "http://")):
            return f"template data {name} is not an http(s) link"
    return None


def check_key(key: str) -> str | None:
    if not key:
        return "is required"
    if len(key) > MAX_KEY_LENGTH:
        return f"is longer than {MAX_KEY_LENGTH} characters"
    if any(ch.isspace() for ch in key) or not key.isprintable():
        return "must not contain spaces or control characters"
    return None


def prefix_bounds(prefix: str) -> tuple[str, str]:
    """[low, high) such that a string starts with `prefix` exactly when low <= s < high, in code-point (binary)
    order; lets a prefix query use the key's index on every backend."""
    if not prefix:
        raise ValueError("empty prefix")
    last = ord(prefix[-1])
    if last >= 0x10FFFF:
        raise ValueError("prefix ends with the largest code point")
    return prefix, prefix[:-1] + chr(last + 1)


# Paging ------------------------------------------------------------------------------------------------------------

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def page_size(requested: int) -> int:
    if requested <= 0:
        return DEFAULT_PAGE_SIZE
    return min(requested, MAX_PAGE_SIZE)


def encode_page_token(last_id: int, filters: Mapping[str, str]) -> str:
    raw = json.dumps({"after": last_id, "filters": dict(sorted(filters.items()))}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_page_token(token: str, filters: Mapping[str, str]) -> int:
    """The id to continue after; ValueError when the token is not ours or belongs to other filters."""
    if not token:
        return 0
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        decoded = json.loads(raw)
        after = int(decoded["after"])
        given = decoded["filters"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise ValueError("page_token is not a token this service issued") from None
    if given != dict(sorted(filters.items())):
        raise ValueError("page_token was issued for other filters")
    return after


# Alerts ------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AlertTarget:
    """Where an alert goes: a channel (channel id), or a user alerted by direct message (user_id)."""

    channel: str
    user_id: str


def alert_target(
    user_id: str, channel: str, anchor_channel: str, anchor_user: str, thread_ts: str, message_ts: str,
    default_channel: str | None,
) -> AlertTarget:
    """Resolve the destination: an explicit channel, the anchor's channel (required to reply in a thread or update
    a message), a user's DM, the anchor's user, else the configured alert channel. ValueError when there is none."""
    if (thread_ts or message_ts) and not (channel or anchor_channel):
        raise ValueError("anchor.channel is required to reply in a thread or update a message")
    chosen = channel or anchor_channel
    if chosen:
        return AlertTarget(chosen, "")
    who = user_id or anchor_user
    if who:
        return AlertTarget("", who)
    if default_channel:
        return AlertTarget(default_channel, "")
    raise ValueError("give user_id or channel (PORTAL_ALERT_CHANNEL is not set)")


def check_blocks(blocks_json: str) -> list[Any] | None:
    """Block Kit blocks given as JSON: a list, or None when empty; ValueError otherwise."""
    if not blocks_json.strip():
        return None
    try:
        blocks = json.loads(blocks_json)
    except ValueError:
        raise ValueError("blocks_json is not valid JSON") from None
    if not isinstance(blocks, list):
        raise ValueError("blocks_json must be a JSON list of blocks")
    return blocks
