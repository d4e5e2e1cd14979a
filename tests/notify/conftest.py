"""Fixtures of the notify tests: a real SMTP server on loopback and settings pointing notify at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from plumbing.config import Settings
from tests.notify.helpers import FAST
from tests.support.services import make_settings
from tests.support.smtp import SmtpServer


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mail_settings(tmp_path: Path, database_url: str, smtp: SmtpServer) -> Settings:
    """Settings for a notify that sends to the `smtp` server, with short retries."""
    return make_settings(tmp_path / "data", database_url, **smtp.settings_overrides(), **FAST)
