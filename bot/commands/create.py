"""`/portal create`: a form (a Slack modal, questions in the console) whose errors come back on its fields."""

from __future__ import annotations

import hashlib
import json

import grpc

from bot.commands.account import account_card
from bot.core import BotCore, Request
from bot.form_errors import form_errors
from bot.registry import REGISTRY
from bot.replies import Choice, Form, FormField, FormResult
from bot.services import ServiceProblem, calling
from portal.accounts.v1 import accounts_pb2

A = accounts_pb2
TYPES = {"guardian": A.ACCOUNT_TYPE_GUARDIAN, "student": A.ACCOUNT_TYPE_STUDENT, "staff": A.ACCOUNT_TYPE_STAFF}
INVITE = "invite"

CREATE_FORM = Form(
    callback_id="account_create",
    title="New portal account",
    submit="Create",
    fields=(
        FormField("username", "Username", hint="At least 6 characters; not case-sensitive.",
                  placeholder="jsmith01"),
        FormField("first_name", "First name"),
        FormField("last_name", "Surname"),
        FormField("email", "Email", placeholder="jane.smith@example.org"),
        FormField("type", "Type", kind="select", initial="guardian",
                  choices=tuple(Choice(key, key.capitalize()) for key in TYPES)),
        FormField("password", "Password", optional=True, secret=True,
                  hint="At least 8 characters with an upper-case letter, a lower-case letter and a digit. "
                       "Leave empty to send an invitation instead."),
        FormField("invite", "Invitation", kind="checkbox", optional=True, initial=INVITE,
                  choices=(Choice(INVITE, "Send invitation (an email with a link to set a password)"),)),
        FormField("students", "Students", optional=True, placeholder="100234, 100235",
                  hint="Student ids to link, separated by commas or spaces."),
    ),
)
# Service field paths (google.rpc.BadRequest) that are named differently from the form's fields.
FIELD_ALIASES = {"student_ids": "students", "surname": "last_name", "send_invitation": "invite"}


def errors_from(problem: ServiceProblem) -> dict[str, str]:
    fallback = "username" if problem.code == grpc.StatusCode.ALREADY_EXISTS else ""
    return form_errors(CREATE_FORM, problem, FIELD_ALIASES, fallback)


@REGISTRY.command("create", "", "Create one account in a form (password, or an emailed invitation).",
                  ("/portal create",))
async def create(core: BotCore, request: Request, _args: list[str]) -> None:
    await request.surface.open_form(CREATE_FORM, {"channel": request.channel})


def _digest(values: dict[str, str]) -> str:
    """A corrected resubmission of the same form is a new request; the same submission retried is not."""
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


@REGISTRY.form(CREATE_FORM)
async def create_submitted(core: BotCore, request: Request, values: dict[str, str], key: str) -> FormResult:
    students = [part for part in values.get("students", "").replace(",", " ").split() if part]
    password = values.get("password", "")
    account = A.Account(
        username=values.get("username", "").strip(), first_name=values.get("first_name", "").strip(),
        last_name=values.get("last_name", "").strip(), email=values.get("email", "").strip(),
        type=TYPES.get(values.get("type", "guardian"), A.ACCOUNT_TYPE_GUARDIAN), student_ids=students)
    try:
        async with calling("accounts", request.actor, seconds=2.5):
            created = await core.services.accounts.CreateAccount(A.CreateAccountRequest(
                account=account, password=password, send_invitation=not password and INVITE in values.get("invite", ""),
                request_id=f"bot:create:{key}:{_digest(values)}"))
    except ServiceProblem as problem:
        return FormResult(errors=errors_from(problem))
    how = "with the password you set" if password else (
        "an invitation email is on its way" if INVITE in values.get("invite", "") else "no password yet")
    return FormResult(reply=account_card(core, created, f"Account {created.username} created ({how})."))
