"""A small pool of reused SMTP connections (aiosmtplib) with bounded concurrency.

At most `size` messages are in flight, each on its own connection; a connection is kept open between messages
(after a 4xx/5xx reply too: aiosmtplib resets the envelope), retired after `per_connection` messages or when idle,
and reopened transparently when the server closed it while idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import aiosmtplib

from plumbing.config import Settings
from services.notify.rules import SmtpConnectFailed

log = logging.getLogger("portal.notify.smtp")
IDLE_SECONDS = 30.0
QUIT_TIMEOUT = 5.0


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    username: str | None
    password: str | None
    starttls: bool
    tls: bool
    timeout: float
    ca_file: str | None
    local_hostname: str | None

    @classmethod
    def from_settings(cls, settings: Settings, local_hostname: str | None = None) -> SmtpConfig:
        if settings.smtp_host is None:
            raise ValueError("PORTAL_SMTP_HOST is not set")
        return cls(
            host=settings.smtp_host, port=settings.smtp_port, username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            starttls=settings.smtp_starttls, tls=settings.smtp_tls, timeout=settings.smtp_timeout_seconds,
            ca_file=str(settings.smtp_ca_file) if settings.smtp_ca_file else None, local_hostname=local_hostname,
        )


async def open_connection(config: SmtpConfig) -> aiosmtplib.SMTP:
    """Connect, say EHLO, upgrade with STARTTLS or use implicit TLS, and log in, as configured."""
    smtp = aiosmtplib.SMTP(
        hostname=config.host, port=config.port, username=config.username, password=config.password,
        use_tls=config.tls, start_tls=config.starttls, timeout=config.timeout, cert_bundle=config.ca_file,
        local_hostname=config.local_hostname,
    )
    await smtp.connect()
    return smtp


async def close_connection(smtp: aiosmtplib.SMTP) -> None:
    """QUIT politely, or just close when the server is not answering."""
    if not smtp.is_connected:
        return
    try:
        await smtp.quit(timeout=QUIT_TIMEOUT)
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        smtp.close()


@dataclass
class _Connection:
    smtp: aiosmtplib.SMTP
    sent: int = 0
    last_used: float = 0.0


class SmtpPool:
    """Sends messages over at most `size` concurrent, reused connections."""

    def __init__(self, config: SmtpConfig, size: int, per_connection: int, idle_seconds: float = IDLE_SECONDS) -> None:
        self.config = config
        self.size = size
        self.per_connection = per_connection
        self.idle_seconds = idle_seconds
        self._slots = asyncio.Semaphore(size)
        self._idle: list[_Connection] = []
        self.opened = 0

    async def _open(self) -> _Connection:
        try:
            smtp = await open_connection(self.config)
        except Exception as exc:
            raise SmtpConnectFailed(exc) from exc
        self.opened += 1
        return _Connection(smtp)

    def _take_idle(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if connection.smtp.is_connected and now - connection.last_used < self.idle_seconds:
                return connection
            connection.smtp.close()
        return None

    async def send(self, message: bytes, sender: str, recipient: str) -> str:
        """Send one message (as built by templates.build_message) to one recipient; returns the server's reply to
        DATA. Raises aiosmtplib's errors, or SmtpConnectFailed when no connection could be opened."""
        # Internationalised addresses need the server's SMTPUTF8 (aiosmtplib refuses otherwise: a permanent failure).
        options = [] if (sender + recipient).isascii() else ["SMTPUTF8"]
        async with self._slots:
            connection = self._take_idle()
            reused = connection is not None
            if connection is None:
                connection = await self._open()
            try:
                try:
                    reply = await self._transaction(connection, sender, recipient, message, options)
                except (aiosmtplib.SMTPServerDisconnected, ConnectionError):
                    if not reused:
                        raise
                    # The server closed the connection while it sat idle: open a fresh one, once.
                    connection.smtp.close()
                    connection = await self._open()
                    reply = await self._transaction(connection, sender, recipient, message, options)
            except (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPResponseException) as exc:
                code = getattr(exc, "code", 0)
                if code != 421 and connection.smtp.is_connected:
                    self._keep(connection)
                else:
                    connection.smtp.close()
                raise
            except BaseException:
                connection.smtp.close()
                raise
            connection.sent += 1
            if connection.sent >= self.per_connection:
                await close_connection(connection.smtp)
            else:
                self._keep(connection)
            return reply

    async def _transaction(self, connection: _Connection, sender: str, recipient: str, message: bytes,
                           options: list[str]) -> str:
        """MAIL, RCPT and DATA under one deadline for the whole exchange (cheaper than one timer per command, and
        a server trickling its replies cannot hold a connection for several timeouts)."""
        async with asyncio.timeout(self.config.timeout):
            _refused, reply = await connection.smtp.sendmail(sender, [recipient], message, mail_options=options,
                                                             timeout=None)
        return reply

    def _keep(self, connection: _Connection) -> None:
        connection.last_used = time.monotonic()
        self._idle.append(connection)

    async def close_idle(self, older_than: float = 0.0) -> None:
        """Close the idle connections unused for longer than `older_than` seconds (all of them by default)."""
        now = time.monotonic()
        stale = [c for c in self._idle if now - c.last_used >= older_than]
        self._idle = [c for c in self._idle if now - c.last_used < older_than]
        for connection in stale:
            with contextlib.suppress(Exception):
                await close_connection(connection.smtp)

    async def close(self) -> None:
        await self.close_idle()
