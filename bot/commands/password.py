"""`/portal password USERNAME` (and the account view's **Set password**): staff type a password for the parent in a
form, never in a channel message, with "must change at next sign-in" ticked as the policy says; the password rules
(and the policy's minimum length) are checked on the field."""

from __future__ import annotations

from google.protobuf import field_mask_pb2

from bot.account_care import effective_policy
from bot.commands.account import account_card, get_account
from bot.core import BotCore, Request
from bot.form_errors import form_errors
from bot.registry import REGISTRY, first, no_more
from bot.replies import Choice, Form, FormField, FormResult
from bot.services import ServiceProblem, calling
from portal.accounts.v1 import accounts_pb2

A = accounts_pb2
MUST_CHANGE = "must_change"

PASSWORD_FORM = Form(
    callback_id="account_password",
    title="Set password",
    submit="Set password",
    fields=(
        FormField("password", "New password", secret=True,
                  hint="At least 8 characters (more if the school's policy says so) with an upper-case letter, a "
                       "lower-case letter and a digit. Tell the parent yourself: it is not emailed."),
        FormField("must_change", "At next sign-in", kind="checkbox", optional=True,
                  choices=(Choice(MUST_CHANGE, "User must change password at next sign-in"),)),
    ),
)


async def open_password(core: BotCore, request: Request, who: str) -> None:
    account = await get_account(core, request, who)
    policy = await effective_policy(core, request, account.username)
    hint = (f"At least {policy.min_password_length} characters (the policy of "
            f"{', '.join(policy.schools) or 'the district'}) with an upper-case letter, a lower-case letter and a "
            "digit. Tell the parent yourself: it is not emailed.")
    password, must_change = PASSWORD_FORM.fields
    form = Form(PASSWORD_FORM.callback_id, f"Password: {account.username}"[:24], PASSWORD_FORM.submit, (
        FormField(password.name, password.label, secret=True, hint=hint),
        FormField(must_change.name, must_change.label, kind="checkbox", optional=True, choices=must_change.choices,
                  initial=MUST_CHANGE if policy.must_change_password else "")))
    await request.surface.open_form(form, {"channel": request.channel, "username": account.username})


@REGISTRY.command("password", "USERNAME", "Set an account's password yourself, in a form (\"must change at next "
                  "sign-in\" ticked as the policy says).", ("/portal password jsmith01",))
async def password(core: BotCore, request: Request, args: list[str]) -> None:
    usage = "/portal password USERNAME"
    no_more(args, 1, usage)
    await open_password(core, request, first(args, "account", usage))


@REGISTRY.action("account_password")
async def password_clicked(core: BotCore, request: Request, _action: str, username: str) -> None:
    await open_password(core, request, username)


@REGISTRY.form(PASSWORD_FORM)
async def password_submitted(core: BotCore, request: Request, values: dict[str, str], key: str) -> FormResult:
    username = request.metadata.get("username", "")
    if not username:
        return FormResult(errors={"password": "This form lost track of its account: open it again with "
                                              "/portal password USERNAME."})
    must_change = MUST_CHANGE in values.get("must_change", "").split(",")
    try:
        async with calling("accounts", request.actor, seconds=2.5):
            updated = await core.services.accounts.UpdateAccount(A.UpdateAccountRequest(
                username=username, account=A.Account(username=username, must_change_password=must_change),
                password=values.get("password", ""),
                update_mask=field_mask_pb2.FieldMask(paths=["password", "must_change_password"]),
                # The form's view id: a refused submission stores nothing, so the corrected one may reuse it; no
                # digest of the values here, as they hold the password.
                request_id=f"bot:password:{username.lower()}:{key}"))
    except ServiceProblem as problem:
        return FormResult(errors=form_errors(PASSWORD_FORM, problem, {"new_password": "password"}, "password"))
    then = ("they must change it when they next sign in" if must_change
            else "they keep it (no change asked at sign-in)")
    return FormResult(reply=account_card(core, updated, f"Password set for {updated.username}: {then}."))
