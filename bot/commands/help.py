"""`/portal help`: generated from the registry, so every command appears with its arguments and examples."""

from __future__ import annotations

from bot.core import BotCore, Request
from bot.registry import REGISTRY
from bot.replies import Reply, Table, Text

DROP_FILE = {
    "slack": "Drop a spreadsheet (.xlsx or .csv) into a staff channel or a DM with me: I answer in its thread with "
             "a trial run, then an *Upload* button. Drop the fixed file into the same thread for a new trial run.",
    "console": "Type the path of a spreadsheet (or `/portal upload PATH`) for a trial run; the result offers "
               "Upload as a numbered choice. Files I send you are written under the outbox folder.",
}

# Commands in the order staff meet them; commands added later (not listed) follow in registration order.
ORDER = ("help", "template", "upload", "jobs", "codes", "undo", "account", "create", "link", "unlink", "delete")


def _rank(name: str) -> int:
    return ORDER.index(name) if name in ORDER else len(ORDER)


@REGISTRY.command("help", "", "List every command with examples.", ("/portal help",))
async def show_help(core: BotCore, request: Request, _args: list[str]) -> Reply:
    surface = request.surface.name
    rows = tuple((command.usage, command.summary, "  ".join(command.examples))
                 for command in sorted(core.registry.visible(surface), key=lambda c: _rank(c.name)))
    return Reply("Parent portal commands", parts=[
        Table(("command", "what it does", "examples"), rows),
        Text(DROP_FILE.get(surface, DROP_FILE["slack"])),
    ])
