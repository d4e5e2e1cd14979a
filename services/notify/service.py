"""Wires the notify service into the shared server bootstrap: the servicer, and the email and alert loops."""

from __future__ import annotations

import logging
import os
import socket
import uuid

from plumbing.server import Runtime, ServiceSpec
from portal.notify.v1 import notify_pb2_grpc
from services.notify.alerts import AlertDelivery
from services.notify.core import NotifyCore
from services.notify.delivery import EmailDelivery
from services.notify.servicer import NotifyServicer

log = logging.getLogger("portal.notify")


def worker_name() -> str:
    """Who holds a lease: host, process and a random part (a restarted process is a new worker)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def setup(runtime: Runtime) -> None:
    settings = runtime.settings
    core = NotifyCore(runtime.db, settings)
    notify_pb2_grpc.add_NotifyServiceServicer_to_server(NotifyServicer(core), runtime.server)
    worker = worker_name()
    if settings.smtp_host is not None:
        runtime.background.append(
            EmailDelivery(core.store, settings, core.mail_wake, runtime.stopping, worker).run)
    else:
        log.warning("PORTAL_SMTP_HOST is not set: emails are queued and kept until a notify process with an SMTP "
                    "server sends them")
    runtime.background.append(AlertDelivery(core.store, settings, core.alert_wake, runtime.stopping, worker).run)
    if settings.slack_bot_token is None:
        log.info("Slack is not configured (SLACK_BOT_TOKEN unset); task alerts go to %s",
                 settings.data_dir / "outbox" / "alerts.log")


SPEC = ServiceSpec(name="notify", full_name="portal.notify.v1.NotifyService", setup=setup)
