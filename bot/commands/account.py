"""`/portal account USERNAME|EMAIL`: one account, privately, with buttons to act on it (each confirmed);
`/portal delete USERNAME` asks before deleting."""

from __future__ import annotations

from google.protobuf import field_mask_pb2

from bot.account_care import care_buttons, care_parts, policy_part
from bot.core import BotCore, Request
from bot.formatting import enum_word, when
from bot.registry import REGISTRY, first, no_more
from bot.replies import Button, Confirm, Fields, Reply
from bot.services import calling
from portal.accounts.v1 import accounts_pb2

A = accounts_pb2
TWO_FACTOR_WORDS = {
    A.TWO_FACTOR_STATE_OFF: "off",
    A.TWO_FACTOR_STATE_REQUIRED: "required (the holder enrols at the next sign-in)",
    A.TWO_FACTOR_STATE_ENROLLED: "on (enrolled)",
}


def account_card(core: BotCore, account: A.Account, headline: str = "") -> Reply:
    zone = core.settings.zone
    name = f"{account.first_name} {account.last_name}".strip() or "-"
    students = ", ".join(account.student_ids) or "none linked"
    card = Fields((
        ("Username", account.username),
        ("Name", name),
        ("Email", account.email or "-"),
        ("Type", enum_word(A.AccountType.Name(account.type), "ACCOUNT_TYPE_") or "-"),
        ("Status", enum_word(A.AccountStatus.Name(account.status), "ACCOUNT_STATUS_") or "-"),
        ("Students", students),
        ("Last sign-in", when(account.last_sign_in_time, zone)),
        ("Two-factor", TWO_FACTOR_WORDS.get(account.two_factor, "off")),
        ("Password", "set" if account.has_password else "not set yet"),
    ))
    user = account.username
    two_factor_on = account.two_factor in (A.TWO_FACTOR_STATE_REQUIRED, A.TWO_FACTOR_STATE_ENROLLED)
    disabled = account.status == A.ACCOUNT_STATUS_DISABLED
    buttons = [
        Button("Reset password (email a link)", "account_reset", user, None,
               Confirm("Reset password?", f"Email {user} a link to set a new password (valid for an hour).",
                       "Send link")),
        Button("Send login details", "account_send_login", user, None,
               Confirm("Send login details?", f"Email {user} their username and a new password (they must change "
                       "it when they sign in). Their current password stops working.", "Send")),
        Button("Turn off two-factor" if two_factor_on else "Turn on two-factor",
               "account_2fa_off" if two_factor_on else "account_2fa_on", user, None,
               Confirm("Two-factor sign-in", f"Turn two-factor sign-in {'off' if two_factor_on else 'on'} for {user}?"
                       + ("" if two_factor_on else " They enrol an authenticator app at their next sign-in."))),
        Button("Enable" if disabled else "Disable", "account_enable" if disabled else "account_disable", user,
               None if disabled else "danger",
               Confirm("Enable account?" if disabled else "Disable account?",
                       f"{'Enable' if disabled else 'Disable'} {user}? "
                       + ("They can sign in again." if disabled else "They cannot sign in until it is enabled."))),
        delete_button(user),
        *care_buttons(account),
    ]
    return Reply(headline or f"Account {user}", parts=[card, *care_parts(account)], buttons=buttons, private=True)


def delete_button(username: str) -> Button:
    return Button("Delete", "account_delete", username, "danger",
                  Confirm("Delete account?", f"Delete {username} and its student links? This cannot be undone.",
                          "Delete"))


async def get_account(core: BotCore, request: Request, who: str) -> A.Account:
    async with calling("accounts", request.actor):
        return await core.services.accounts.GetAccount(A.GetAccountRequest(username_or_email=who))


@REGISTRY.command("account", "USERNAME|EMAIL",
                  "One account, shown only to you: students, status, last sign-in, two-factor, and buttons.",
                  ("/portal account jsmith01", "/portal account jane.smith@example.org"))
async def account(core: BotCore, request: Request, args: list[str]) -> Reply:
    usage = "/portal account USERNAME|EMAIL"
    no_more(args, 1, usage)
    found = await get_account(core, request, first(args, "account", usage))
    card = account_card(core, found)
    card.parts.append(await policy_part(core, request, found.username))
    return card


@REGISTRY.command("delete", "USERNAME", "Delete an account (you confirm first).", ("/portal delete jsmith01",))
async def delete(core: BotCore, request: Request, args: list[str]) -> Reply:
    usage = "/portal delete USERNAME"
    no_more(args, 1, usage)
    found = await get_account(core, request, first(args, "account", usage))
    card = account_card(core, found, f"Delete account {found.username}?")
    card.buttons = [delete_button(found.username)]
    return card


def _request_id(action: str, username: str, key: str) -> str:
    """One action per rendered card and button: a double click or a retried delivery does it once."""
    return f"bot:{action}:{username.lower()}:{key}"


@REGISTRY.action("account_reset", "account_send_login")
async def reset(core: BotCore, request: Request, action: str, username: str) -> Reply:
    """One account's reset or login details: the bulk reset's path (ResetAccountPassword)."""
    send_password = action == "account_send_login"
    async with calling("accounts", request.actor):
        answer = await core.services.accounts.ResetAccountPassword(A.ResetAccountPasswordRequest(
            username=username, delivery=A.RESET_DELIVERY_PASSWORD if send_password else A.RESET_DELIVERY_LINK,
            request_id=_request_id(action, username, request.key)))
    if send_password:
        return Reply(f"Login details (username and a new password, to be changed at the next sign-in) are on their "
                     f"way to {answer.email}.")
    expires = when(answer.expire_time, core.settings.zone, never="soon")
    kind = "An invitation link" if answer.invitation else "A password reset link"
    return Reply(f"{kind} is on its way to {username}'s email address ({answer.email}); it expires {expires}.")


async def _update(core: BotCore, request: Request, action: str, account: A.Account, path: str) -> A.Account:
    async with calling("accounts", request.actor):
        return await core.services.accounts.UpdateAccount(A.UpdateAccountRequest(
            account=account, update_mask=field_mask_pb2.FieldMask(paths=[path]),
            request_id=_request_id(action, account.username, request.key)))


@REGISTRY.action("account_2fa_on", "account_2fa_off")
async def two_factor(core: BotCore, request: Request, action: str, username: str) -> Reply:
    turn_on = action == "account_2fa_on"
    state = A.TWO_FACTOR_STATE_REQUIRED if turn_on else A.TWO_FACTOR_STATE_OFF
    updated = await _update(core, request, action, A.Account(username=username, two_factor=state), "two_factor")
    return account_card(core, updated, f"Two-factor sign-in is now {'required' if turn_on else 'off'} for "
                                       f"{updated.username}.")


@REGISTRY.action("account_disable", "account_enable")
async def enable_disable(core: BotCore, request: Request, action: str, username: str) -> Reply:
    enable = action == "account_enable"
    status = A.ACCOUNT_STATUS_ACTIVE if enable else A.ACCOUNT_STATUS_DISABLED
    updated = await _update(core, request, action, A.Account(username=username, status=status), "status")
    return account_card(core, updated, f"{updated.username} is now {'enabled' if enable else 'disabled'}.")


@REGISTRY.action("account_delete")
async def delete_clicked(core: BotCore, request: Request, action: str, username: str) -> Reply:
    async with calling("accounts", request.actor):
        await core.services.accounts.DeleteAccount(A.DeleteAccountRequest(
            username=username, request_id=_request_id(action, username, request.key)))
    return Reply(f"Account {username} deleted.")
