"""The chat console, driven through a pseudo-terminal as a newcomer meets it: `portal bot` without Slack."""

from __future__ import annotations

import os
import re
from pathlib import Path

from plumbing.config import Settings
from tests.bot.terminal import Terminal
from tests.support.net import free_port
from tests.support.services import make_settings, running_service

ROOT = Path(__file__).resolve().parents[2]


def console_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "PORTAL_"))}
    env.update(PORTAL_DATA_DIR=str(settings.data_dir), PORTAL_DATABASE_URL=settings.resolved_database_url,
               PORTAL_ACCOUNTS_ADDR=settings.accounts_addr, PORTAL_IMPORTS_ADDR=settings.imports_addr,
               PORTAL_NOTIFY_ADDR=settings.notify_addr, PORTAL_SERVICE_TOKEN=settings.token,
               PORTAL_BOT_PORT=str(free_port()), PORTAL_LOG_FORMAT="text", TERM="dumb")
    return env


async def test_console_help_without_services(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path / "data", sqlite_url)
    async with Terminal(console_env(settings), ROOT, tmp_path / "bot.log") as console:
        await console.expect("portal> ")
        console.type("/portal help")
        shown = await console.expect("portal> ")
        for usage in ("/portal template", "/portal account USERNAME|EMAIL", "/portal upload PATH",
                      "/portal create", "/portal undo JOB_ID"):
            assert usage in shown
        console.type("account jsmith01")
        assert "The accounts service is not answering, try again in a minute." in await console.expect(
            "portal> ", timeout=60)
        console.type("quit")
        await console.expect("bye")


async def test_console_template_then_a_trial_run_then_upload(tmp_path: Path, sqlite_url: str) -> None:
    from portal.accounts.v1 import accounts_pb2 as A
    from tests.bot.test_portal import STUDENTS, parents_csv

    settings = make_settings(tmp_path / "data", sqlite_url)
    async with running_service("accounts", settings), running_service("imports", settings), \
            running_service("notify", settings):
        from bot.services import Services

        services = Services(settings)
        await services.accounts.BatchUpsertRoster(A.BatchUpsertRosterRequest(students=[
            A.Student(id=sid, first_name=first, last_name=last, grad_year=2031, group="7B", school="North High")
            for sid, first, last in STUDENTS], request_id="console-roster"), timeout=30)
        await services.close()
        async with Terminal(console_env(settings), ROOT, tmp_path / "bot.log") as console:
            await console.expect("portal> ")
            console.type("/portal template grad 2031")
            await console.expect("File saved: ", timeout=60)
            path = Path((await console.expect("\n")).strip())
            assert path.suffix == ".xlsx"
            assert path.parent == settings.data_dir / "outbox" and path.read_bytes()[:2] == b"PK"

            sheet = tmp_path / "parents.csv"
            sheet.write_bytes(parents_csv([("parent01", "Pat", "Smith", "pat@example.org", "100234")]))
            console.type(str(sheet))
            await console.expect("Trial run running")
            alert = await console.expect("(type a number to choose)", timeout=90)
            assert "[alert] Trial run of parents.csv" in alert
            number = re.findall(r"\[(\d+)\] Upload", alert)[-1]
            console.type(number)
            await console.expect("[Upload: y")
            console.type("y")
            await console.expect("Upload running")
            await console.expect("[alert] Upload of parents.csv finished", timeout=90)
            console.type("quit")
            await console.expect("bye")
