"""Per-student permissions: `/portal permissions USERNAME STUDENT_ID +grades -messages`, and the account view's
**Permissions** buttons (a form with a box per permission). Other links of the account are never touched."""

from __future__ import annotations

import json

from bot.account_care import permissions_text
from bot.commands.account import account_card, get_account
from bot.core import BotCore, Request
from bot.form_errors import form_errors
from bot.registry import REGISTRY, UsageError
from bot.replies import Choice, Form, FormField, FormResult, Reply
from bot.services import ServiceProblem, calling
from portal.accounts.v1 import accounts_pb2

A = accounts_pb2
PERMISSIONS = ("grades", "attendance", "reports", "messages")
USAGE = "/portal permissions USERNAME [STUDENT_ID +grades -messages]"

PERMISSIONS_FORM = Form(
    callback_id="account_permissions",
    title="Permissions",
    submit="Save",
    fields=(FormField("permissions", "What the parent may see of this student", kind="checkbox", optional=True,
                      choices=tuple(Choice(name, name.capitalize()) for name in PERMISSIONS)),),
)


def parse_changes(words: list[str]) -> tuple[list[str], list[str]]:
    """`+grades -messages` (or `+grades,-messages`) -> (["grades"], ["messages"]); names are checked by the
    service, which names the valid ones."""
    grant, revoke = [], []
    for word in (part for item in words for part in item.split(",") if part):
        if word[0] not in "+-" or len(word) == 1:
            raise UsageError(f"Put + or - before each permission ({', '.join(PERMISSIONS)}), e.g. `+grades "
                             f"-messages`; `{word}` has neither. Usage: `{USAGE}`")
        (grant if word[0] == "+" else revoke).append(word[1:].lower())
    return grant, revoke


async def update_link(core: BotCore, request: Request, username: str, student_id: str, grant: list[str],
                      revoke: list[str], request_id: str) -> A.Account:
    async with calling("accounts", request.actor, seconds=2.5):
        return await core.services.accounts.UpdateStudentPermissions(A.UpdateStudentPermissionsRequest(
            username=username, student_id=student_id, grant=grant, revoke=revoke, request_id=request_id))


def _link(account: A.Account, student_id: str) -> A.StudentLink | None:
    return next((link for link in account.links if link.student_id == student_id), None)


@REGISTRY.command("permissions", "USERNAME [STUDENT_ID +grades -messages]",
                  "What a parent may see of each child (grades, attendance, reports, messages): show or change one "
                  "link's permissions.",
                  ("/portal permissions jsmith01 100234 +grades -messages", "/portal permissions jsmith01"))
async def permissions(core: BotCore, request: Request, args: list[str]) -> Reply:
    if not args:
        raise UsageError(f"Which account? Usage: `{USAGE}`")
    account = await get_account(core, request, args[0])
    if len(args) == 1:
        return account_card(core, account, f"Permissions of {account.username}")
    student_id = args[1]
    current = _link(account, student_id)
    if current is None:
        raise UsageError(f"{account.username} is not linked to student {student_id} (linked: "
                         f"{', '.join(account.student_ids) or 'none'}): link them first with `/portal link "
                         f"{account.username} {student_id}`.")
    if len(args) == 2:
        return account_card(core, account, f"{account.username} may see of {student_id}: "
                                            f"{permissions_text(current)}")
    grant, revoke = parse_changes(args[2:])
    updated = await update_link(core, request, account.username, student_id, grant, revoke,
                                f"bot:permissions:{request.key}")
    link = _link(updated, student_id)
    shown = permissions_text(link) if link is not None else "none"
    return account_card(core, updated, f"{updated.username} may now see of {student_id}: {shown}.")


@REGISTRY.action("account_permissions")
async def permissions_clicked(core: BotCore, request: Request, _action: str, value: str) -> None:
    chosen = json.loads(value)
    account = await get_account(core, request, chosen["username"])
    link = _link(account, chosen["student_id"])
    field = PERMISSIONS_FORM.fields[0]
    form = Form(PERMISSIONS_FORM.callback_id, f"Permissions: {chosen['student_id']}"[:24], PERMISSIONS_FORM.submit, (
        FormField(field.name, field.label, field.kind, True, f"{account.username}, student {chosen['student_id']}",
                  choices=field.choices, initial=",".join(link.permissions) if link is not None else ""),))
    await request.surface.open_form(form, {"channel": request.channel, "username": account.username,
                                           "student_id": chosen["student_id"]})


@REGISTRY.form(PERMISSIONS_FORM)
async def permissions_submitted(core: BotCore, request: Request, values: dict[str, str], key: str) -> FormResult:
    username, student_id = request.metadata.get("username", ""), request.metadata.get("student_id", "")
    if not username or not student_id:
        return FormResult(errors={"permissions": "This form lost track of its account: open it again from "
                                                 "/portal account USERNAME."})
    wanted = [name for name in values.get("permissions", "").split(",") if name]
    try:
        updated = await update_link(core, request, username, student_id, wanted,
                                    [name for name in PERMISSIONS if name not in wanted],
                                    f"bot:permissions-form:{key}:{','.join(sorted(wanted))}")
    except ServiceProblem as problem:
        return FormResult(errors=form_errors(PERMISSIONS_FORM, problem, fallback="permissions"))
    link = _link(updated, student_id)
    shown = permissions_text(link) if link is not None else "none"
    return FormResult(reply=account_card(core, updated, f"{updated.username} may now see of {student_id}: {shown}."))
