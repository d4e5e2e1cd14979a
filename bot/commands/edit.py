"""Editing an account: the **Edit** form (first name, surname, email, username, type, status; a value the service
refuses is shown on its field), `/portal rename OLD NEW` (you confirm first; the parent is emailed the new
username) and `/portal enable USERNAME`."""

from __future__ import annotations

import json

from google.protobuf import field_mask_pb2

from bot.commands.account import account_card, get_account
from bot.commands.create import TYPES
from bot.commands.create import _digest as digest
from bot.core import BotCore, Request
from bot.form_errors import form_errors
from bot.registry import REGISTRY, UsageError, first, no_more
from bot.replies import Button, Choice, Confirm, Form, FormField, FormResult, Reply
from bot.services import ServiceProblem, calling
from portal.accounts.v1 import accounts_pb2

A = accounts_pb2
ENABLED, DISABLED = "enabled", "disabled"
TYPE_WORDS = {number: word for word, number in TYPES.items()}

EDIT_FORM = Form(
    callback_id="account_edit",
    title="Edit account",
    submit="Save",
    fields=(
        FormField("first_name", "First name"),
        FormField("last_name", "Surname"),
        FormField("email", "Email", optional=True),
        FormField("username", "Username", hint="At least 6 characters, unique in the district whatever the case. "
                                               "A new username keeps the sign-in history; the parent is emailed it."),
        FormField("type", "Type", kind="select", choices=tuple(Choice(key, key.capitalize()) for key in TYPES)),
        FormField("status", "Status", kind="select",
                  choices=(Choice(ENABLED, "Enabled (may sign in)"), Choice(DISABLED, "Disabled"))),
    ),
)
# Service field paths (google.rpc.BadRequest) named differently from the form's fields.
FIELD_ALIASES = {"surname": "last_name", "role": "type"}


def _status(account: A.Account) -> str:
    return DISABLED if account.status == A.ACCOUNT_STATUS_DISABLED else ENABLED


def edit_form(account: A.Account) -> tuple[Form, dict[str, str]]:
    """The form filled with the account's values, and what it remembers (the account as it was)."""
    now = {"first_name": account.first_name, "last_name": account.last_name, "email": account.email,
           "username": account.username, "type": TYPE_WORDS.get(account.type, "guardian"), "status": _status(account)}
    fields = tuple(FormField(f.name, f.label, f.kind, f.optional, f.hint, f.placeholder, f.choices, now[f.name],
                             f.secret) for f in EDIT_FORM.fields)
    return Form(EDIT_FORM.callback_id, EDIT_FORM.title, EDIT_FORM.submit, fields), now


async def open_edit(core: BotCore, request: Request, who: str) -> None:
    account = await get_account(core, request, who)
    form, was = edit_form(account)
    await request.surface.open_form(form, {"channel": request.channel, **was})


@REGISTRY.command("edit", "USERNAME|EMAIL", "Edit an account in a form: names, email, username, type, status.",
                  ("/portal edit jsmith01",))
async def edit(core: BotCore, request: Request, args: list[str]) -> None:
    usage = "/portal edit USERNAME|EMAIL"
    no_more(args, 1, usage)
    await open_edit(core, request, first(args, "account", usage))


@REGISTRY.action("account_edit")
async def edit_clicked(core: BotCore, request: Request, _action: str, username: str) -> None:
    await open_edit(core, request, username)


@REGISTRY.form(EDIT_FORM)
async def edit_submitted(core: BotCore, request: Request, values: dict[str, str], key: str) -> FormResult:
    was = request.metadata
    old = was.get("username", "")
    if not old:
        return FormResult(errors={"first_name": "This form lost track of its account: open it again with "
                                                "/portal edit USERNAME."})
    wanted = {name: values.get(name, "").strip() for name in ("first_name", "last_name", "email", "username",
                                                                "type", "status")}
    paths = [name for name in ("first_name", "last_name", "email", "type", "status") if wanted[name] != was.get(name)]
    renamed = wanted["username"] != old
    if not paths and not renamed:
        return FormResult(reply=Reply(f"Nothing changed on {old}."))
    account = A.Account(username=wanted["username"], first_name=wanted["first_name"],
                        last_name=wanted["last_name"], email=wanted["email"],
                        type=TYPES.get(wanted["type"], A.ACCOUNT_TYPE_GUARDIAN),
                        status=A.ACCOUNT_STATUS_DISABLED if wanted["status"] == DISABLED else A.ACCOUNT_STATUS_ACTIVE)
    try:
        async with calling("accounts", request.actor, seconds=2.5):
            updated = await core.services.accounts.UpdateAccount(A.UpdateAccountRequest(
                username=old, account=account,
                update_mask=field_mask_pb2.FieldMask(paths=[*paths, *(["username"] if renamed else [])]),
                request_id=f"bot:edit:{old.lower()}:{key}:{digest(wanted)}"))
    except ServiceProblem as problem:
        return FormResult(errors=form_errors(EDIT_FORM, problem, FIELD_ALIASES,
                                             "username" if renamed and not problem.violations else ""))
    said = [f"renamed from {old} (the parent is emailed the new username)"] if renamed else []
    if "email" in paths:
        said.append("the old and the new email address are both told of the change")
    headline = f"{updated.username} saved" + (f": {'; '.join(said)}." if said else ".")
    return FormResult(reply=account_card(core, updated, headline))


@REGISTRY.command("rename", "OLD NEW", "Give an account a new username (you confirm first; sign-ins are kept and "
                  "the parent is emailed the new username).", ("/portal rename jsmith01 jane.smith",))
async def rename(core: BotCore, request: Request, args: list[str]) -> Reply:
    usage = "/portal rename OLD NEW"
    if len(args) != 2:
        raise UsageError(f"Give the username now and the new one. Usage: `{usage}`")
    found = await get_account(core, request, args[0])
    new = args[1].strip()
    value = json.dumps({"old": found.username, "new": new}, separators=(",", ":"))
    return Reply(f"Rename {found.username} to {new}?",
                 buttons=[Button("Rename", "account_rename", value, "primary",
                                 Confirm("Rename account?", f"Rename {found.username} to {new}? Their sign-in "
                                         "history stays with the account, and they are emailed the new username.",
                                         "Rename"))])


@REGISTRY.action("account_rename")
async def rename_clicked(core: BotCore, request: Request, _action: str, value: str) -> Reply:
    names = json.loads(value)
    async with calling("accounts", request.actor):
        updated = await core.services.accounts.UpdateAccount(A.UpdateAccountRequest(
            username=names["old"], account=A.Account(username=names["new"]),
            update_mask=field_mask_pb2.FieldMask(paths=["username"]),
            request_id=f"bot:rename:{names['old'].lower()}:{request.key}"))
    return account_card(core, updated, f"{names['old']} is now {updated.username}; the parent is emailed the new "
                                       "username.")


@REGISTRY.command("enable", "USERNAME", "Enable a disabled account again.", ("/portal enable jsmith01",))
async def enable(core: BotCore, request: Request, args: list[str]) -> Reply:
    usage = "/portal enable USERNAME"
    no_more(args, 1, usage)
    username = first(args, "account", usage)
    async with calling("accounts", request.actor):
        updated = await core.services.accounts.UpdateAccount(A.UpdateAccountRequest(
            username=username, account=A.Account(username=username, status=A.ACCOUNT_STATUS_ACTIVE),
            update_mask=field_mask_pb2.FieldMask(paths=["status"]), request_id=f"bot:enable:{request.key}"))
    return account_card(core, updated, f"{updated.username} is enabled: they can sign in again.")
