"""Contact drift: `/portal drift` posts a workbook of the parent accounts whose email or name no longer matches
their roster contact (and logon ids that were the old email), with **Apply all** (confirmed);
`/portal drift apply USERNAME...` does some of them (confirmed). Applying emails each parent at both addresses."""

from __future__ import annotations

import json

from google.protobuf.timestamp_pb2 import Timestamp

from bot.core import BotCore, Request
from bot.registry import REGISTRY, UsageError
from bot.replies import Button, Confirm, OutFile, Reply, Table, Text, plural
from bot.services import calling
from portal.accounts.v1 import accounts_pb2

A = accounts_pb2
SHOWN = 10


def _stamp_value(stamp: Timestamp) -> dict[str, int]:
    return {"s": stamp.seconds, "n": stamp.nanos}


def _stamp(value: dict[str, int]) -> Timestamp:
    return Timestamp(seconds=int(value["s"]), nanos=int(value["n"]))


def _changes(drift: A.ContactDrift) -> str:
    said = "; ".join(f"{f.field.replace('_', ' ')} {f.account_value or '(none)'} → {f.contact_value}"
                     for f in drift.fields)
    return f"{said} (cannot apply: {drift.blocked})" if drift.blocked else said


def _table(items: list[A.ContactDrift]) -> Table:
    return Table(("Username", "Contact", "Changes"),
                 tuple((d.username, d.contact_id, _changes(d)) for d in items[:SHOWN]))


async def _workbook(core: BotCore, request: Request, as_of: Timestamp, usernames: list[str]) -> OutFile:
    filename, data = "contact-drift.xlsx", bytearray()
    async with calling("accounts", request.actor, seconds=120):
        async for chunk in core.services.accounts.ExportContactDrift(A.ExportContactDriftRequest(
                as_of=as_of, usernames=usernames)):
            filename = chunk.filename or filename
            data += chunk.data
    return OutFile(filename, bytes(data), "Contact drift")


@REGISTRY.command("drift", "[apply USERNAME...]",
                  "Parent accounts whose email or name no longer matches their roster contact, as a workbook with "
                  "Apply all; or apply some of them (you confirm first; parents are emailed at both addresses).",
                  ("/portal drift", "/portal drift apply jsmith01 mbrown2"))
async def drift(core: BotCore, request: Request, args: list[str]) -> Reply:
    usernames: list[str] = []
    if args:
        if args[0].lower() != "apply" or len(args) < 2:
            raise UsageError("Usage: `/portal drift` (the list), or `/portal drift apply USERNAME...`.")
        usernames = [part for word in args[1:] for part in word.replace(",", " ").split()]
    async with calling("accounts", request.actor):
        page = await core.services.accounts.ListContactDrift(A.ListContactDriftRequest(
            usernames=usernames, page_size=SHOWN))
    items = list(page.drift)
    if not page.total_size:
        if usernames:
            return Reply(f"Nothing to apply: {', '.join(usernames)} match their contact records (or have none, or "
                         "no account has that username).")
        return Reply("Every parent account matches its roster contact: nothing to update.")
    stamp = _stamp_value(page.as_of)
    if usernames:
        value = json.dumps({"as_of": stamp, "usernames": usernames}, separators=(",", ":"))
        return Reply(f"{plural(page.total_size, 'account')} would change to match the roster:",
                     parts=[_table(items)],
                     buttons=[Button("Apply", "drift_apply", value, "primary",
                                     Confirm("Apply the changes?", f"Update {plural(page.total_size, 'account')} to "
                                             "match the roster? Each parent is emailed at the old and the new "
                                             "address.", "Apply"))])
    more = [Text(f"…and {page.total_size - SHOWN} more in the workbook.")] if page.total_size > SHOWN else []
    value = json.dumps({"as_of": stamp, "count": page.total_size}, separators=(",", ":"))
    return Reply(f"{plural(page.total_size, 'parent account')} no longer match their roster contact.",
                 parts=[_table(items), *more], files=[await _workbook(core, request, page.as_of, [])],
                 buttons=[Button("Apply all", "drift_apply_all", value, "primary",
                                 Confirm("Apply all?", f"Update all {page.total_size} accounts in the workbook to "
                                         "match the roster? Each parent is emailed at the old and the new address.",
                                         "Apply all"))])


@REGISTRY.action("drift_apply_all", "drift_apply")
async def apply_clicked(core: BotCore, request: Request, action: str, value: str) -> Reply:
    chosen = json.loads(value)
    async with calling("accounts", request.actor, seconds=120):
        done = await core.services.accounts.ApplyContactDrift(A.ApplyContactDriftRequest(
            all=action == "drift_apply_all", usernames=chosen.get("usernames", []), as_of=_stamp(chosen["as_of"]),
            request_id=f"bot:{action}:{request.key}"))
    parts: list[Text | Table] = []
    if done.applied:
        parts.append(_table(list(done.applied)))
    if done.not_applied:
        lines = "\n".join(f"• {k.username}: {k.reason}" for k in list(done.not_applied)[:SHOWN])
        parts.append(Text(f"Not applied ({done.not_applied_count}):\n{lines}"))
    return Reply(f"{plural(done.applied_count, 'account')} updated to match the roster; each parent is emailed at "
                 "both addresses.", parts=list(parts))
