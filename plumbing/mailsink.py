"""A local mail sink for trials without a mail server: saves every message under the data dir's mail/ folder and
prints one line per message, so a newcomer sees the invitations the system sends."""

from __future__ import annotations

import email
import email.policy
import sys
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class SavingHandler:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.count = 0

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        self.count += 1
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{self.count:06d}.eml"
        path = self.folder / name
        path.write_bytes(envelope.content)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        print(f"mail: to {', '.join(envelope.rcpt_tos)}: {message['Subject']}  ({path})", file=sys.stderr, flush=True)
        return "250 Message accepted for delivery"


def start_mail_sink(folder: Path, host: str, port: int) -> Controller:
    controller = Controller(SavingHandler(folder), hostname=host, port=port)
    controller.start()
    return controller
