"""Replies and forms as Block Kit: messages, modals, and the values of a submitted modal."""

from __future__ import annotations

import json
from typing import Any

from bot.replies import Button, Fields, Form, FormField, Reply, Table, Text

SECTION_CHARS = 2900
MAX_BLOCKS = 48
CODE_TABLE_WIDTH = 90


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _plain(text: str, limit: int = 75) -> dict[str, Any]:
    return {"type": "plain_text", "text": text[:limit], "emoji": True}


def _chunks(lines: list[str], limit: int = SECTION_CHARS) -> list[str]:
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for line in lines:
        line = line[:limit]
        if current and size + len(line) + 1 > limit:
            chunks.append("\n".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line) + 1
    if current:
        chunks.append("\n".join(current))
    return chunks


def table_blocks(table: Table) -> list[dict[str, Any]]:
    if not table.rows:
        return [_section(f"_{table.empty}_")]
    widths = [max(len(str(row[i])) for row in (table.headers, *table.rows)) for i in range(len(table.headers))]
    if sum(widths) + 2 * len(widths) <= CODE_TABLE_WIDTH:
        lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                 for row in (table.headers, *table.rows)]
        return [_section(f"```{chunk}```") for chunk in _chunks(lines, SECTION_CHARS - 6)]
    lines = [f"*{row[0]}*  " + "  ·  ".join(str(cell) for cell in row[1:] if str(cell)) for row in table.rows]
    return [_section(chunk) for chunk in _chunks(lines)]


def fields_blocks(fields: Fields) -> list[dict[str, Any]]:
    items = [{"type": "mrkdwn", "text": f"*{label}*\n{value}"[:1900]} for label, value in fields.pairs]
    return [{"type": "section", "fields": items[i:i + 10]} for i in range(0, len(items), 10)]


def button_element(button: Button) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "button", "text": _plain(button.label), "action_id": button.action_id,
                               "value": button.value}
    if button.style:
        element["style"] = button.style
    if button.confirm is not None:
        element["confirm"] = {"title": _plain(button.confirm.title, 100), "text": _plain(button.confirm.text, 300),
                              "confirm": _plain(button.confirm.confirm, 30), "deny": _plain(button.confirm.deny, 30)}
    return element


def blocks_for(reply: Reply) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [_section(reply.text[:SECTION_CHARS])]
    for part in reply.parts:
        if isinstance(part, Text):
            blocks += [_section(chunk) for chunk in _chunks(part.text.splitlines() or [""])]
        elif isinstance(part, Fields):
            blocks += fields_blocks(part)
        elif isinstance(part, Table):
            blocks += table_blocks(part)
    if len(blocks) > MAX_BLOCKS:
        blocks = [*blocks[:MAX_BLOCKS - 1], _section("_…more than fits in one message; the console shows all._")]
    if reply.buttons:
        blocks.append({"type": "actions", "elements": [button_element(b) for b in reply.buttons[:25]]})
    return blocks


def _element(field: FormField) -> dict[str, Any]:
    if field.kind == "select":
        options = [{"text": _plain(c.label), "value": c.value} for c in field.choices]
        element: dict[str, Any] = {"type": "static_select", "action_id": field.name, "options": options}
        initial = next((o for o in options if o["value"] == field.initial), None)
        if initial is not None:
            element["initial_option"] = initial
        return element
    if field.kind == "checkbox":
        options = [{"text": _plain(c.label), "value": c.value} for c in field.choices]
        element = {"type": "checkboxes", "action_id": field.name, "options": options}
        ticked = field.initial.split(",")
        chosen = [o for o in options if o["value"] in ticked]
        if chosen:
            element["initial_options"] = chosen
        return element
    element = {"type": "plain_text_input", "action_id": field.name}
    if field.placeholder:
        element["placeholder"] = _plain(field.placeholder, 150)
    if field.initial:
        element["initial_value"] = field.initial
    return element


def modal_for(form: Form, metadata: dict[str, str]) -> dict[str, Any]:
    blocks = []
    for field in form.fields:
        block: dict[str, Any] = {"type": "input", "block_id": field.name, "label": _plain(field.label, 2000),
                                 "optional": field.optional, "element": _element(field)}
        if field.hint:
            block["hint"] = _plain(field.hint, 2000)
        blocks.append(block)
    return {"type": "modal", "callback_id": form.callback_id, "title": _plain(form.title, 24),
            "submit": _plain(form.submit, 24), "close": _plain("Cancel", 24),
            "private_metadata": json.dumps(metadata), "blocks": blocks}


def modal_values(view: dict[str, Any]) -> dict[str, str]:
    """Field name -> value of a submitted modal (checkbox values joined by commas)."""
    values: dict[str, str] = {}
    for block_id, actions in (view.get("state", {}).get("values") or {}).items():
        for state in actions.values():
            kind = state.get("type")
            if kind == "static_select":
                values[block_id] = ((state.get("selected_option") or {}).get("value")) or ""
            elif kind == "checkboxes":
                values[block_id] = ",".join(o.get("value", "") for o in state.get("selected_options") or ())
            else:
                values[block_id] = state.get("value") or ""
    return values
