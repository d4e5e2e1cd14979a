"""What the account view shows of account care: each linked student's permissions, the policy that applies to the
account (and where each value comes from), and the buttons that open the edit, password and permissions forms."""

from __future__ import annotations

import json

from bot.core import BotCore, Request
from bot.replies import Button, Fields, Part
from bot.services import calling
from portal.accounts.v1 import accounts_pb2

A = accounts_pb2
# Permission buttons shown on one card (Slack allows 25 buttons; the command covers the rest).
PERMISSION_BUTTONS = 10
TWO_FACTOR_POLICY_WORDS = {A.TWO_FACTOR_POLICY_OFF: "off", A.TWO_FACTOR_POLICY_OPTIONAL: "optional",
                           A.TWO_FACTOR_POLICY_REQUIRED: "required"}


def permissions_text(link: A.StudentLink) -> str:
    return ", ".join(link.permissions) or "none (sees nothing of this student)"


def care_parts(account: A.Account) -> list[Part]:
    if not account.links:
        return []
    lines = [f"{link.student_id}{f' ({link.school})' if link.school else ''}: {permissions_text(link)}"
             for link in account.links]
    return [Fields((("Permissions", "\n".join(lines)),))]


def link_value(username: str, student_id: str) -> str:
    return json.dumps({"username": username, "student_id": student_id}, separators=(",", ":"))


def care_buttons(account: A.Account) -> list[Button]:
    user = account.username
    buttons = [Button("Edit", "account_edit", user), Button("Set password", "account_password", user)]
    buttons += [Button(f"Permissions: {link.student_id}"[:75], "account_permissions",
                       link_value(user, link.student_id)) for link in account.links[:PERMISSION_BUTTONS]]
    return buttons


def policy_text(policy: A.EffectivePolicy) -> str:
    sources = dict(policy.sources)

    def source(key: str) -> str:
        return f" ({sources[key]})" if sources.get(key) else ""

    return "\n".join([
        f"must change password: {'yes' if policy.must_change_password else 'no'}{source('must_change_password')}",
        f"two-factor: {TWO_FACTOR_POLICY_WORDS.get(policy.two_factor, '-')}{source('two_factor')}",
        f"min password length: {policy.min_password_length}{source('min_password_length')}",
        f"invitation valid: {policy.invite_expiry_days} days{source('invite_expiry_days')}",
        f"default permissions: {', '.join(policy.default_permissions) or 'none'}{source('default_permissions')}",
    ])


async def effective_policy(core: BotCore, request: Request, username: str) -> A.EffectivePolicy:
    async with calling("accounts", request.actor):
        return await core.services.accounts.GetEffectivePolicy(A.GetEffectivePolicyRequest(username=username))


async def policy_part(core: BotCore, request: Request, username: str) -> Fields:
    """The effective policy of an account as one field (the stricter value wins across its schools)."""
    return Fields((("Policy", policy_text(await effective_policy(core, request, username))),))
