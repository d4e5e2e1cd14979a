"""Replies as plain text for the terminal: tables with aligned columns, buttons as numbered choices."""

from __future__ import annotations

import re
import textwrap

from bot.replies import Button, Fields, Reply, Table, Text

MAX_COLUMN = 46
_MARKUP = [(re.compile(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])"), r"\1"), (re.compile(r"`([^`\n]+)`"), r"\1"),
           (re.compile(r":warning:\s*"), "! "), (re.compile(r":white_check_mark:\s*"), "Done: "),
           (re.compile(r":x:\s*"), "Failed: "), (re.compile(r"(?<![\w_])_([^_\n]+)_(?![\w_])"), r"\1")]


def plain(text: str) -> str:
    """Slack's light markup (*bold*, `code`, _italic_, :warning:, :white_check_mark:, :x:) as plain text."""
    for pattern, replacement in _MARKUP:
        text = pattern.sub(replacement, text)
    return text


def table_text(table: Table) -> str:
    if not table.rows:
        return plain(table.empty)
    rows = [tuple(plain(str(cell)) for cell in row) for row in (table.headers, *table.rows)]
    widths = [min(MAX_COLUMN, max(len(row[i]) for row in rows)) for i in range(len(table.headers))]
    lines: list[str] = []
    for index, row in enumerate(rows):
        wrapped = [textwrap.wrap(cell, width) or [""] for cell, width in zip(row, widths, strict=True)]
        for depth in range(max(len(cell) for cell in wrapped)):
            parts = [(cell[depth] if depth < len(cell) else "").ljust(width)
                     for cell, width in zip(wrapped, widths, strict=True)]
            lines.append("  ".join(parts).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def fields_text(fields: Fields) -> str:
    width = max((len(label) for label, _ in fields.pairs), default=0)
    return "\n".join(f"{label.ljust(width)}  {plain(value)}" for label, value in fields.pairs)


def render(reply: Reply, first_number: int = 1) -> tuple[str, list[Button]]:
    """The text to print and the buttons in the order they were numbered."""
    pieces = [plain(reply.text)]
    for part in reply.parts:
        if isinstance(part, Text):
            pieces.append(plain(part.text))
        elif isinstance(part, Fields):
            pieces.append(fields_text(part))
        elif isinstance(part, Table):
            pieces.append(table_text(part))
    if reply.buttons:
        pieces.append("\n".join(f"  [{first_number + i}] {button.label}" for i, button in enumerate(reply.buttons))
                      + "\n(type a number to choose)")
    return "\n\n".join(pieces), list(reply.buttons)
