"""The one place commands, buttons and forms are registered: `/portal help` is generated from it.

A command has a name, its arguments, a summary, examples, who may run it and where it exists (Slack, console).
Buttons (action ids) and forms (callback ids) are registered beside the commands that show them, so both
front-ends route a click or a submission to the same function.
"""

from __future__ import annotations

import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.core import BotCore, Request
    from bot.replies import Form, FormResult, Reply

STAFF = "staff"
SURFACES = frozenset({"slack", "console"})

CommandHandler = Callable[["BotCore", "Request", list[str]], Awaitable["Reply | None"]]
# (core, request, action_id, value); request.key identifies the click for idempotency.
ActionHandler = Callable[["BotCore", "Request", str, str], Awaitable["Reply | None"]]
FormHandler = Callable[["BotCore", "Request", dict[str, str], str], Awaitable["FormResult"]]


class UsageError(Exception):
    """The command's arguments are wrong; the message says what was expected."""


@dataclass(frozen=True)
class Command:
    name: str
    arguments: str
    summary: str
    examples: tuple[str, ...]
    handler: CommandHandler
    who: str = STAFF
    surfaces: frozenset[str] = SURFACES

    @property
    def usage(self) -> str:
        return f"/portal {self.name} {self.arguments}".rstrip()


@dataclass(frozen=True)
class FormSpec:
    form: Form
    handler: FormHandler


class Registry:
    def __init__(self) -> None:
        self.commands: dict[str, Command] = {}
        self.actions: dict[str, ActionHandler] = {}
        self.forms: dict[str, FormSpec] = {}

    def command(self, name: str, arguments: str, summary: str, examples: tuple[str, ...] = (),
                who: str = STAFF, surfaces: frozenset[str] = SURFACES) -> Callable[[CommandHandler], CommandHandler]:
        def register(handler: CommandHandler) -> CommandHandler:
            if name in self.commands:
                raise ValueError(f"command {name} registered twice")
            self.commands[name] = Command(name, arguments, summary, examples, handler, who, surfaces)
            return handler

        return register

    def action(self, *action_ids: str) -> Callable[[ActionHandler], ActionHandler]:
        def register(handler: ActionHandler) -> ActionHandler:
            for action_id in action_ids:
                if action_id in self.actions:
                    raise ValueError(f"action {action_id} registered twice")
                self.actions[action_id] = handler
            return handler

        return register

    def form(self, form: Form) -> Callable[[FormHandler], FormHandler]:
        def register(handler: FormHandler) -> FormHandler:
            self.forms[form.callback_id] = FormSpec(form, handler)
            return handler

        return register

    def visible(self, surface: str) -> list[Command]:
        return [c for c in self.commands.values() if surface in c.surfaces]


REGISTRY = Registry()


def split_command(text: str) -> tuple[str, list[str]]:
    """`/portal account jsmith01` or `account jsmith01` -> ("account", ["jsmith01"]). Quotes group words."""
    text = text.strip()
    if text.startswith("/portal"):
        text = text[len("/portal"):].strip()
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    if not words:
        return "help", []
    return words[0].lower(), words[1:]


def loaded_registry() -> Registry:
    """The registry with every command module imported (each registers itself)."""
    import bot.commands  # noqa: F401 - registers the commands

    return REGISTRY


def first(args: list[str], what: str, usage: str) -> str:
    if not args:
        raise UsageError(f"Which {what}? Usage: `{usage}`")
    return args[0]


def no_more(args: list[str], count: int, usage: str) -> None:
    if len(args) > count:
        raise UsageError(f"Too many words. Usage: `{usage}`")
