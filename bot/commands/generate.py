"""`/portal generate [all|primary] [SELECTOR]`: the plan of generating parent accounts from the roster (the counts,
the first lines, the whole plan as a workbook) with Run buttons, each confirmed. The run's progress and its report
arrive in a thread (the report posted by notify)."""

from __future__ import annotations

from bot.core import BotCore, Request
from bot.flows import start_job_once
from bot.registry import REGISTRY
from bot.replies import Button, Confirm, OutFile, Reply, Table, Text, plural
from bot.selectors import SELECTOR_WORDS, parse_selector
from bot.services import calling
from portal.accounts.v1 import accounts_pb2
from portal.common.v1 import jobs_pb2

A = accounts_pb2
USAGE = f"/portal generate [all|primary] [{SELECTOR_WORDS}]"
SHOWN_LINES = 10
SELECTOR_STARTS = ("all", "school", "group", "grad", "lastname")
WHO = {"all": (A.GUARDIAN_SCOPE_ALL, "all contacts with parental responsibility"),
       "primary": (A.GUARDIAN_SCOPE_PRIMARY, "primary contacts only")}
ACTION_WORDS = {A.GENERATION_ACTION_CREATE: "create", A.GENERATION_ACTION_LINK: "link",
                A.GENERATION_ACTION_COMPLETE: "complete", A.GENERATION_ACTION_SKIP: "skip"}
RUN, RUN_QUIET = "generate_run", "generate_run_quiet"


def parse(args: list[str]) -> tuple[str, jobs_pb2.Selector, str]:
    """Who counts, the students, and a description of the students. `generate` alone: all contacts, all students."""
    who, rest = "all", list(args)
    if rest and rest[0].lower() in WHO and (len(rest) == 1 or rest[1].lower() in SELECTOR_STARTS):
        who, rest = rest[0].lower(), rest[1:]
    selector, described = parse_selector(rest or ["all"], USAGE)
    return who, selector, described


async def plan_file(core: BotCore, request: Request, plan_id: str) -> bytes:
    data = bytearray()
    async with calling("accounts", request.actor, seconds=120):
        async for chunk in core.services.accounts.DownloadJobFile(A.DownloadJobFileRequest(job_id=plan_id,
                                                                                           name="plan")):
            data += chunk.data
    return bytes(data)


@REGISTRY.command("generate", "[all|primary] [SELECTOR]",
                  "Plan parent accounts for the roster's guardians (a simulation first), then Run it.",
                  ("/portal generate", "/portal generate primary grad 2031", "/portal generate all group 7B"))
async def generate(core: BotCore, request: Request, args: list[str]) -> Reply:
    who, selector, described = parse(args)
    scope, who_words = WHO[who]
    async with calling("accounts", request.actor, seconds=300):
        answer = await core.services.accounts.PlanGeneration(A.PlanGenerationRequest(
            selector=selector, guardians=scope, line_limit=SHOWN_LINES, write_workbook=True))
    counts = answer.counts
    parts: list[Text | Table] = [Text(
        f"*{answer.summary}.* {plural(counts.links_to_add, 'student link')} to add, "
        f"{plural(counts.complete, 'line')} already complete, {plural(counts.students, 'student')} selected, "
        f"{plural(counts.students_without_account, 'student')} with no contact getting an account.")]
    if answer.reasons:
        parts.append(Table(("skipped", "code", "why"), tuple((str(r.count), r.code, r.meaning)
                                                              for r in answer.reasons)))
    if counts.possible_duplicates:
        parts.append(Text(f":warning: {plural(counts.possible_duplicates, 'possible duplicate contact')} (same name "
                          "and phone or address, different email): listed in the workbook, never merged."))
    parts.append(Table(("student", "contact", "email", "action", "username", "code"), tuple(
        (line.student_name or line.student_id, line.contact_name or line.contact_id, line.email or "-",
         ACTION_WORDS.get(line.action, "?"), line.username or "-", line.code or "")
        for line in answer.lines), empty="No students or contacts selected."))
    files = [OutFile(f"generation-plan-{answer.plan_id}.xlsx", await plan_file(core, request, answer.plan_id),
                     f"Generation plan ({described})")] if answer.has_workbook else []
    buttons = []
    if counts.accounts_to_create or counts.accounts_gaining_students:
        what = f"{answer.summary}."
        buttons = [
            Button("Run (email invitations)", RUN, answer.plan_id, "primary",
                   Confirm("Run this plan?", f"{what} The {plural(counts.accounts_to_create, 'new account')} get an "
                                             "invitation email with a link to set a password.", "Run")),
            Button("Run without emails", RUN_QUIET, answer.plan_id, None,
                   Confirm("Run without emails?", f"{what} No invitation is emailed now; send them later with "
                                                  "/portal resend-invites.", "Run")),
        ]
    else:
        parts.append(Text("Nothing to create or link: every guardian who should have an account has one."))
    return Reply(f"Generation plan for {described} ({who_words}): {answer.summary}.", parts=parts, buttons=buttons,
                 files=files)


@REGISTRY.action(RUN, RUN_QUIET)
async def run_clicked(core: BotCore, request: Request, action: str, plan_id: str) -> Reply | None:
    """Either button runs the plan once; the second click (of either) is told it was started."""
    async def start(anchor: jobs_pb2.SlackAnchor) -> jobs_pb2.Job:
        return await core.services.accounts.StartGeneration(A.StartGenerationRequest(
            plan_id=plan_id, send_invitations=action == RUN, anchor=anchor, request_id=f"{plan_id}:run"))

    return await start_job_once(core, request, f"generate:{plan_id}", "generation", plan_id, "Generation running…",
                                start, service="accounts")
