"""The one dispatcher both front-ends call: access, parsing, the command, and every failure turned into a reply."""

from __future__ import annotations

import logging
import uuid

from bot.access import REFUSAL, log_refusal
from bot.core import BotCore, Request
from bot.registry import UsageError, split_command
from bot.replies import FormResult, Reply, Text
from bot.services import ServiceProblem

log = logging.getLogger("portal.bot.dispatch")


def _unexpected(what: str) -> Reply:
    reference = uuid.uuid4().hex[:10]
    log.exception("%s failed (reference %s)", what, reference)
    return Reply(f"Something went wrong on my side (reference {reference}); the bot's log has the details.")


async def allowed(core: BotCore, request: Request, what: str) -> bool:
    """Default deny: refuse (briefly, to the requester only) and log anyone who is not staff."""
    if await core.access.allows(request.actor.id):
        return True
    log_refusal(request.actor.id, what)
    await request.surface.refuse(REFUSAL)
    return False


async def run_command(core: BotCore, request: Request, text: str) -> None:
    name, args = split_command(text)
    if not await allowed(core, request, f"/portal {name}"):
        return
    command = core.registry.commands.get(name)
    if command is None or request.surface.name not in command.surfaces:
        await request.surface.reply(Reply(f"I do not know `{name}`. Type `/portal help` to see what I can do."))
        return
    log.info("command /portal %s", name, extra={"fields": {"user": request.actor.id, "command": name}})
    try:
        reply = await command.handler(core, request, args)
    except UsageError as exc:
        reply = Reply(str(exc), parts=[Text(f"Example: `{command.examples[0]}`")] if command.examples else [])
    except ServiceProblem as exc:
        reply = Reply(exc.message)
    except Exception:
        reply = _unexpected(f"/portal {name}")
    if reply is not None:
        await request.surface.reply(reply)


async def run_action(core: BotCore, request: Request, action_id: str, value: str) -> None:
    if not await allowed(core, request, f"button {action_id}"):
        return
    handler = core.registry.actions.get(action_id)
    if handler is None:
        log.warning("no handler for button %s", action_id)
        return
    log.info("button %s", action_id, extra={"fields": {"user": request.actor.id, "action": action_id}})
    try:
        reply = await handler(core, request, action_id, value)
    except ServiceProblem as exc:
        reply = Reply(exc.message)
    except Exception:
        reply = _unexpected(f"button {action_id}")
    if reply is not None:
        await request.surface.reply(reply)


async def submit_form(core: BotCore, request: Request, callback_id: str, values: dict[str, str]) -> FormResult:
    """Errors to show on the form's fields, or the reply to send once it closes."""
    if not await core.access.allows(request.actor.id):
        log_refusal(request.actor.id, f"form {callback_id}")
        first = next(iter(core.registry.forms[callback_id].form.fields)).name
        return FormResult(errors={first: REFUSAL})
    spec = core.registry.forms[callback_id]
    try:
        return await spec.handler(core, request, values, request.key)
    except ServiceProblem as exc:
        return FormResult(errors={spec.form.fields[0].name: exc.message})
    except Exception:
        return FormResult(reply=_unexpected(f"form {callback_id}"))
