"""`/portal policy show [district | school NAME]` and `/portal policy set district|school NAME KEY VALUE` (checked
at once, then confirmed). A school's value overrides the district's; `inherit` puts a school back on the
district's value (or the district back on the built-in default)."""

from __future__ import annotations

import json

from google.protobuf import field_mask_pb2

from bot.account_care import TWO_FACTOR_POLICY_WORDS, policy_text
from bot.core import BotCore, Request
from bot.registry import REGISTRY, UsageError
from bot.replies import Button, Confirm, Fields, Reply, Text
from bot.services import calling
from portal.accounts.v1 import accounts_pb2

A = accounts_pb2
KEYS = ("must_change_password", "two_factor", "min_password_length", "invite_expiry_days", "default_permissions")
PERMISSIONS = ("grades", "attendance", "reports", "messages")
TWO_FACTOR = {word: number for number, word in TWO_FACTOR_POLICY_WORDS.items()}
YES, NO = frozenset({"yes", "y", "true", "on", "1"}), frozenset({"no", "n", "false", "off", "0"})
CLEAR = frozenset({"inherit", "default", "clear"})
USAGE = "/portal policy set district|school NAME KEY VALUE"
SHOW_USAGE = "/portal policy show [district | school NAME]"
VALUES = ("must_change_password yes|no, two_factor off|optional|required, min_password_length 8 to 64, "
          "invite_expiry_days 1 to 60, default_permissions a list of grades, attendance, reports, messages (or none)"
          "; inherit clears a value")


def _key(word: str) -> str:
    return word.strip().lower().replace("-", "_")


def parse_set(args: list[str]) -> tuple[str, str, str]:
    """(school, key, value text) of `district KEY VALUE` or `school NAME KEY VALUE`."""
    if not args or args[0].lower() not in ("district", "school"):
        raise UsageError(f"Say which policy: `district` or `school NAME`. Usage: `{USAGE}`")
    if args[0].lower() == "district":
        school, rest = "", args[1:]
    else:
        at = next((i for i, word in enumerate(args[1:], start=1) if _key(word) in KEYS), None)
        if at is None or at == 1:
            raise UsageError(f"Give the school's name and one of the settings ({', '.join(KEYS)}). Usage: `{USAGE}`")
        school, rest = " ".join(args[1:at]), args[at:]
    if len(rest) < 2 or _key(rest[0]) not in KEYS:
        raise UsageError(f"Give a setting and its value ({VALUES}). Usage: `{USAGE}`")
    return school, _key(rest[0]), " ".join(rest[1:]).strip()


def policy_message(school: str, key: str, text: str) -> A.Policy:
    """The Policy carrying one value (unset: cleared). Values the bot cannot read are refused here, naming the fix;
    ranges and permission names are the service's to check."""
    policy = A.Policy(school=school)
    value = text.strip().lower()
    if value in CLEAR:
        return policy
    if key == "must_change_password":
        if value not in YES | NO:
            raise UsageError(f"must_change_password is yes or no, not `{text}`.")
        policy.must_change_password = value in YES
    elif key == "two_factor":
        if value not in TWO_FACTOR:
            raise UsageError(f"two_factor is off, optional or required, not `{text}`.")
        policy.two_factor = TWO_FACTOR[value]
    elif key in ("min_password_length", "invite_expiry_days"):
        bounds = "8 to 64" if key == "min_password_length" else "1 to 60"
        if not value.isdigit():
            raise UsageError(f"{key} is a whole number from {bounds}, not `{text}`.")
        setattr(policy, key, int(value))
    else:
        names = [] if value == "none" else [part for part in value.replace(",", " ").split() if part]
        policy.default_permissions.CopyFrom(A.PermissionList(permissions=names))
    return policy


async def _update(core: BotCore, request: Request, school: str, key: str, text: str, validate_only: bool,
                  request_id: str = "") -> A.Policy:
    async with calling("accounts", request.actor):
        return await core.services.accounts.UpdatePolicy(A.UpdatePolicyRequest(
            policy=policy_message(school, key, text), update_mask=field_mask_pb2.FieldMask(paths=[key]),
            validate_only=validate_only, request_id=request_id))


def _scope(school: str) -> str:
    return f"school {school}" if school else "the district"


def _own_values(policy: A.Policy) -> str:
    """The values a saved policy sets itself."""
    parts = []
    if policy.HasField("must_change_password"):
        parts.append(f"must_change_password {'yes' if policy.must_change_password else 'no'}")
    if policy.two_factor:
        parts.append(f"two_factor {TWO_FACTOR_POLICY_WORDS.get(policy.two_factor, '?')}")
    if policy.HasField("min_password_length"):
        parts.append(f"min_password_length {policy.min_password_length}")
    if policy.HasField("invite_expiry_days"):
        parts.append(f"invite_expiry_days {policy.invite_expiry_days}")
    if policy.HasField("default_permissions"):
        parts.append(f"default_permissions {', '.join(policy.default_permissions.permissions) or 'none'}")
    return "; ".join(parts) or "nothing of its own"


@REGISTRY.command("policy", "show [district | school NAME] | set district|school NAME KEY VALUE",
                  "Policies: must change password, two-factor, minimum password length, invitation expiry, default "
                  "permissions; a school's value overrides the district's (you confirm a change).",
                  ("/portal policy show", "/portal policy show school North High",
                   "/portal policy set school North High two_factor required",
                   "/portal policy set district min_password_length 10"))
async def policy(core: BotCore, request: Request, args: list[str]) -> Reply:
    if not args or args[0].lower() not in ("show", "set"):
        raise UsageError(f"Say `show` or `set`. Usage: `{SHOW_USAGE}` or `{USAGE}`")
    if args[0].lower() == "set":
        school, key, text = parse_set(args[1:])
        checked = await _update(core, request, school, key, text, validate_only=True)
        school = checked.school
        shown = "inherit (the value above it)" if text.lower() in CLEAR else text
        value = json.dumps({"school": school, "key": key, "value": text}, separators=(",", ":"))
        return Reply(f"Set {key} of {_scope(school)} to {shown}?",
                     buttons=[Button("Set", "policy_set", value, "primary",
                                     Confirm("Change the policy?", f"Set {key} of {_scope(school)} to {shown}? It "
                                             "applies to every account of " + (school or "the district") + ".",
                                             "Set"))])
    rest = args[1:]
    async with calling("accounts", request.actor):
        if not rest:
            listed = await core.services.accounts.ListPolicies(A.ListPoliciesRequest())
            district = await core.services.accounts.GetEffectivePolicy(A.GetEffectivePolicyRequest())
            schools = "\n".join(f"*{p.school}*: {_own_values(p)}" for p in listed.schools) or "no school sets its own"
            return Reply("Policies", parts=[Fields((("District", policy_text(district)),)),
                                            Text(f"Schools' own values (the rest follows the district):\n{schools}")])
        if rest[0].lower() == "district" and len(rest) == 1:
            found = await core.services.accounts.GetEffectivePolicy(A.GetEffectivePolicyRequest())
            return Reply("The district's policy", parts=[Fields((("District", policy_text(found)),))])
        if rest[0].lower() == "school" and len(rest) > 1:
            name = " ".join(rest[1:])
            found = await core.services.accounts.GetEffectivePolicy(A.GetEffectivePolicyRequest(school=name))
            return Reply(f"The policy of {found.schools[0] if found.schools else name}",
                         parts=[Fields((("Policy", policy_text(found)),))])
    raise UsageError(f"Usage: `{SHOW_USAGE}`")


@REGISTRY.action("policy_set")
async def policy_set(core: BotCore, request: Request, _action: str, value: str) -> Reply:
    chosen = json.loads(value)
    saved = await _update(core, request, chosen["school"], chosen["key"], chosen["value"], validate_only=False,
                          request_id=f"bot:policy:{request.key}")
    return Reply(f"Policy of {_scope(saved.school)} saved: {_own_values(saved)}.")
