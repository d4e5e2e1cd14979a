"""Contacts and lists: `/portal contact CONTACT_ID|EMAIL` (the contact card), `/portal clashes` (emails shared by a
staff account and a parent) and `/portal logons [SELECTOR]` (every parent logon as a workbook)."""

from __future__ import annotations

from bot.core import BotCore, Request
from bot.registry import REGISTRY, first, no_more
from bot.replies import Fields, OutFile, Part, Reply, Table, Text, plural
from bot.selectors import SELECTOR_WORDS, parse_selector
from bot.services import calling
from plumbing.sheets import header_cells, saved
from plumbing.workbooks import neutralise
from portal.accounts.v1 import accounts_pb2

A = accounts_pb2
CLASHES_SHOWN = 25
CLASH_COLUMNS = ("Email", "Staff username", "Staff schools", "Parent username", "Parent schools", "Parent contact")


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def card_parts(card: A.ContactCard) -> list[Part]:
    c = card.contact
    account = card.account_username or f"none: {card.no_account_reason} ({card.no_account_code})"
    fields = Fields((
        ("Contact", f"{c.first_name} {c.last_name}".strip() + f" ({c.id})"),
        ("Email", c.email or "-"),
        ("Phone", c.phone or "-"),
        ("Court order / no contact", _yes(c.no_contact)),
        ("Account", account),
    ))
    rows = tuple((s.student_id, f"{s.first_name} {s.last_name}".strip(), s.school, s.relationship or "-",
                  _yes(s.parental_responsibility), _yes(s.primary),
                  (", ".join(s.permissions) or "none") if s.linked else "not linked")
                 for s in card.students)
    return [fields, Table(("Student", "Name", "School", "Relationship", "Parental resp.", "Primary", "Account sees"),
                          rows, empty="related to no student")]


@REGISTRY.command("contact", "CONTACT_ID|EMAIL",
                  "A roster contact's card, shown only to you: students, relationship, parental responsibility, "
                  "email, and the account (or why there is none).",
                  ("/portal contact C1001", "/portal contact jane.smith@example.org"))
async def contact(core: BotCore, request: Request, args: list[str]) -> Reply:
    usage = "/portal contact CONTACT_ID|EMAIL"
    no_more(args, 1, usage)
    async with calling("accounts", request.actor):
        found = await core.services.accounts.LookupContacts(A.LookupContactsRequest(
            contact_id_or_email=first(args, "contact", usage)))
    parts: list[Part] = []
    for card in found.cards:
        parts += card_parts(card)
    headline = (f"Contact {found.cards[0].contact.id}" if len(found.cards) == 1
                else f"{len(found.cards)} contact records have {args[0]} (possibly one person typed twice)")
    return Reply(headline, parts=parts)


def _clash_workbook(clashes: list[A.StaffClash]) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Staff clashes")
    sheet.append(header_cells(sheet, CLASH_COLUMNS))
    for c in clashes:
        sheet.append([neutralise(v) for v in (c.email, c.staff_username, ", ".join(c.staff_schools),
                                               c.parent_username, ", ".join(c.parent_schools),
                                               f"{c.parent_name} ({c.parent_contact_id})")])
    return saved(workbook)


@REGISTRY.command("clashes", "", "Every email shared by a staff account and a parent, with both usernames and "
                  "schools (a staff member who is also a parent should give a personal email for the parent record).",
                  ("/portal clashes",))
async def clashes(core: BotCore, request: Request, args: list[str]) -> Reply:
    no_more(args, 0, "/portal clashes")
    found: list[A.StaffClash] = []
    token = ""
    async with calling("accounts", request.actor, seconds=60):
        while True:
            page = await core.services.accounts.ListStaffClashes(A.ListStaffClashesRequest(page_size=1000,
                                                                                           page_token=token))
            found += page.clashes
            token = page.next_page_token
            if not token:
                break
    if not found:
        return Reply("No staff account shares its email with a parent.")
    rows = tuple((c.email, c.staff_username, ", ".join(c.staff_schools) or "-",
                  c.parent_username or "(no account: generation skips it)", ", ".join(c.parent_schools) or "-",
                  f"{c.parent_name} ({c.parent_contact_id})" if c.parent_contact_id else "-")
                 for c in found[:CLASHES_SHOWN])
    parts: list[Part] = [Table(CLASH_COLUMNS, rows)]
    files = []
    if len(found) > CLASHES_SHOWN:
        parts.append(Text(f"…and {len(found) - CLASHES_SHOWN} more: all of them are in the workbook."))
        files.append(OutFile("staff-clashes.xlsx", _clash_workbook(found), "Staff clashes"))
    return Reply(f"{plural(len(found), 'email')} shared by a staff account and a parent. Fix: the staff member "
                 "gives a personal email for their parent record, or rename one of the accounts.",
                 parts=parts, files=files)


@REGISTRY.command("logons", f"[{SELECTOR_WORDS}]",
                  "Every parent logon of the selection as a workbook: username, names, email, status, students and "
                  "their permissions, two-factor, invitation, created, last sign-in.",
                  ("/portal logons", "/portal logons school North High", "/portal logons grad 2031"))
async def logons(core: BotCore, request: Request, args: list[str]) -> Reply:
    selector, described = parse_selector(args or ["all"], f"/portal logons [{SELECTOR_WORDS}]")
    kind = selector.WhichOneof("kind")
    described = "all parents" if kind == "all" else described
    filename, data = "parent-logons.xlsx", bytearray()
    narrowed = {kind: getattr(selector, kind)} if kind in ("school", "group", "grad_year", "last_name_prefix") else {}
    async with calling("accounts", request.actor, seconds=300):
        counted = await core.services.accounts.ListAccounts(A.ListAccountsRequest(
            type=A.ACCOUNT_TYPE_GUARDIAN, page_size=1, **narrowed))
        async for chunk in core.services.accounts.ExportLogons(A.ExportLogonsRequest(selector=selector)):
            filename = chunk.filename or filename
            data += chunk.data
    return Reply(f"{plural(counted.total_size, 'parent logon')} ({described}): the workbook lists every one.",
                 files=[OutFile(filename, bytes(data), f"Parent logons ({described})")])
