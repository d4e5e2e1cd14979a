"""What a command answers, independent of where it is shown: the Slack and console renderers both draw these."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Confirm:
    """A confirm dialog in front of a button (Slack's `confirm` object; a yes/no question in the console)."""

    title: str
    text: str
    confirm: str = "Yes"
    deny: str = "Cancel"


@dataclass(frozen=True)
class Button:
    label: str
    action_id: str
    value: str
    style: str | None = None  # "primary" or "danger"
    confirm: Confirm | None = None


@dataclass(frozen=True)
class Text:
    """A paragraph; *bold* and `code` are understood by both renderers."""

    text: str


@dataclass(frozen=True)
class Fields:
    """Label and value pairs (an account card)."""

    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    empty: str = "nothing to show"


@dataclass(frozen=True)
class OutFile:
    filename: str
    data: bytes
    title: str = ""


Part = Text | Fields | Table


@dataclass
class Reply:
    """One answer: a headline (also Slack's notification text), parts, buttons and files.

    `private` replies reach only the person who asked (ephemeral or a direct message in Slack).
    """

    text: str
    parts: list[Part] = field(default_factory=list)
    buttons: list[Button] = field(default_factory=list)
    files: list[OutFile] = field(default_factory=list)
    private: bool = True


@dataclass(frozen=True)
class Choice:
    value: str
    label: str


@dataclass(frozen=True)
class FormField:
    """One input of a form: a Slack modal block, or one question in the console."""

    name: str
    label: str
    kind: str = "text"  # "text", "select", "checkbox"
    optional: bool = False
    hint: str = ""
    placeholder: str = ""
    choices: tuple[Choice, ...] = ()
    initial: str = ""
    secret: bool = False


@dataclass(frozen=True)
class Form:
    callback_id: str
    title: str
    submit: str
    fields: tuple[FormField, ...]


@dataclass
class FormResult:
    """What a submitted form leads to: errors to show on its fields (the form stays open), or a reply."""

    errors: dict[str, str] = field(default_factory=dict)
    reply: Reply | None = None


def plural(count: int, word: str, many: str | None = None) -> str:
    return f"{count:,} {word if count == 1 else (many or word + 's')}"
