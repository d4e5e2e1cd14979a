"""A real SMTP server (aiosmtpd) on loopback for tests: records what it receives, and can be told to answer with
other replies (451 greylisting, 550 unknown user), to be slow, to require STARTTLS or login, or to start late.

    server = SmtpServer()             # a free port, not listening yet
    server.start()                    # listening (in its own thread, like a real server)
    server.reply_next("451 4.7.1 Greylisted, try again later")
    ... server.messages, server.connections ...
    server.stop()

`settings_overrides()` gives the PORTAL_SMTP_* values that point notify at it.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.net import free_port


@dataclass(frozen=True)
class Received:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes
    at: float

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    def part(self, content_type: str) -> str:
        """The decoded text of the message's part of this type ("text/plain" or "text/html")."""
        for part in self.message.walk():
            if part.get_content_type() == content_type and not part.is_multipart():
                return str(part.get_content())  # type: ignore[attr-defined]
        raise KeyError(f"no {content_type} part")


class _Handler:
    def __init__(self, owner: SmtpServer) -> None:
        self.owner = owner

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname  # what aiosmtpd's own EHLO does when no hook is set
        if not getattr(session, "portal_counted", False):
            session.portal_counted = True
            with self.owner._lock:
                self.owner._connections += 1
        return responses

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        with self.owner._lock:
            reply = self.owner._recipient_replies.get(address.lower())
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.owner.delay:
            # A slow server (a real one takes time to accept a message).
            await asyncio.sleep(self.owner.delay)
        with self.owner._lock:
            self.owner._data_commands += 1
            if self.owner._next_replies:
                return self.owner._next_replies.popleft()
            if self.owner._always is not None:
                return self.owner._always
            content = envelope.original_content or envelope.content
            self.owner._messages.append(Received(envelope.mail_from, tuple(envelope.rcpt_tos), bytes(content),
                                                 time.monotonic()))
            number = len(self.owner._messages)
        return f"250 2.0.0 Ok: queued as T{number:06d}"


class SmtpServer:
    """An aiosmtpd server on 127.0.0.1 that records messages; thread-safe to inspect from the test."""

    host = "127.0.0.1"

    def __init__(
        self,
        port: int | None = None,
        *,
        starttls: ssl.SSLContext | None = None,
        implicit_tls: ssl.SSLContext | None = None,
        login: tuple[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        self.port = port or free_port()
        self.starttls = starttls
        self.implicit_tls = implicit_tls
        self.login = login
        self.delay = delay
        self._lock = threading.Lock()
        self._messages: list[Received] = []
        self._connections = 0
        self._data_commands = 0
        self._logins: list[str] = []
        self._next_replies: deque[str] = deque()
        self._always: str | None = None
        self._recipient_replies: dict[str, str] = {}
        self._controller: Controller | None = None

    # Control -----------------------------------------------------------------------------------------------------

    def start(self) -> SmtpServer:
        kwargs: dict[str, Any] = {}
        if self.starttls is not None:
            kwargs.update(tls_context=self.starttls, require_starttls=True)
        if self.login is not None:
            kwargs.update(authenticator=self._authenticate, auth_required=True,
                          auth_require_tls=self.starttls is not None)
        self._controller = Controller(_Handler(self), hostname=self.host, port=self.port,
                                      ssl_context=self.implicit_tls, ready_timeout=10, **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def reply_next(self, *replies: str) -> None:
        """Answer the next DATA commands with these replies, in order (e.g. "451 4.7.1 Try again later")."""
        with self._lock:
            self._next_replies.extend(replies)

    def always_reply(self, reply: str | None) -> None:
        """Answer every DATA command with this reply (None: accept again)."""
        with self._lock:
            self._always = reply

    def reject_recipient(self, address: str, reply: str = "550 5.1.1 No such user here") -> None:
        with self._lock:
            self._recipient_replies[address.lower()] = reply

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        assert self.login is not None
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == self.login[0]
              and auth_data.password.decode() == self.login[1])
        if ok:
            with self._lock:
                self._logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)

    # What it saw -------------------------------------------------------------------------------------------------

    @property
    def messages(self) -> list[Received]:
        with self._lock:
            return list(self._messages)

    @property
    def connections(self) -> int:
        """SMTP sessions that said EHLO/HELO."""
        with self._lock:
            return self._connections

    @property
    def data_commands(self) -> int:
        """DATA commands received, whatever they were answered."""
        with self._lock:
            return self._data_commands

    @property
    def logins(self) -> list[str]:
        with self._lock:
            return list(self._logins)

    def to(self, address: str) -> list[Received]:
        return [m for m in self.messages if address.lower() in (r.lower() for r in m.rcpt_tos)]

    def settings_overrides(self, ca_file: Path | None = None) -> dict[str, Any]:
        values: dict[str, Any] = {"smtp_host": self.host, "smtp_port": self.port,
                                  "smtp_starttls": self.starttls is not None, "smtp_tls": self.implicit_tls is not None}
        if ca_file is not None:
            values["smtp_ca_file"] = ca_file
        if self.login is not None:
            values.update(smtp_username=self.login[0], smtp_password=self.login[1])
        return values


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server-side TLS context for SmtpServer(starttls=...) or (implicit_tls=...)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def message_ids(messages: list[Received]) -> Iterator[str]:
    for received in messages:
        yield str(received.message["Message-ID"])
