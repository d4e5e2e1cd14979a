"""Generating parent accounts from the roster (seeds 001, 003, 004).

- `plan` is the simulation: every selected student and contact with what would happen, counts and reasons. Nothing
  is written but the plan's own record (a `generate_plan` job holding the lines the run must match, and the plan
  workbook).
- `start` makes a `generate` job of a plan. The job plans again, keeps only what the plan shown said (reporting
  whatever changed in between), and applies that in chunks, each in one transaction with its audit events, its
  invitation emails (outbox) and its progress, re-checking each chunk's usernames and emails first. It ends with a
  report workbook, which notify posts into the Slack thread the run was started from.
- Auto-generation (autogenerate.py) makes `generate` jobs without a plan: they apply the fresh plan for the
  guardians the roster changes concern.
- `dashboard` and `roster_list` are the data dashboard: a plan for all contacts, as counts and lists.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from plumbing.blobs import BlobStore
from plumbing.config import Settings
from plumbing.context import current_actor
from plumbing.db import Database
from plumbing.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound, ServiceError
from plumbing.gcpause import paused_gc
from plumbing.jobs import FAILED, SUCCEEDED, AlertContent, AlertFile, JobContext, JobRecord, new_job_id
from services.accounts import generation_rules as gr
from services.accounts.batches import account_columns
from services.accounts.domain import (
    DEFAULT_ROLES,
    AccountStatus,
    AccountType,
    Call,
    Clock,
    RosterQuery,
    StudentSelector,
    TokenPurpose,
    TwoFactor,
)
from services.accounts.generation_store import GenerationStore, Scope
from services.accounts.generation_workbooks import list_workbook, plan_workbook, report_workbook
from services.accounts.jobs import AccountJobs, job_file_key
from services.accounts.mutations import Audit, Mutations, account_target
from services.accounts.roster import Roster
from services.accounts.roster_dashboard import LISTS, RosterList, duplicate_rows, roster_lists
from services.accounts.setpassword import LinkSettings, LinkTarget, issue_links
from services.accounts.store import UsernameTaken, new_id

log = logging.getLogger("portal.accounts.generation")

PLAN_KIND, RUN_KIND = "generate_plan", "generate"
# A plan can be run for a day; its files are deleted after a week.
PLAN_TTL = timedelta(days=1)
PLAN_KEPT = timedelta(days=7)
CHUNK = 500
DEFAULT_LINES, MAX_LINES = 50, 1000
MAX_CONFLICTS_KEPT = 500
WHO_WORDS = {gr.WHO_ALL: "all contacts with parental responsibility", gr.WHO_PRIMARY: "primary contacts only"}


def plan_lines_key(plan_id: str) -> str:
    return f"accounts/{plan_id}/plan-lines.json.gz"


def work_key(job_id: str) -> str:
    return f"accounts/{job_id}/work.json.gz"


def _packed(value: Any) -> bytes:
    return gzip.compress(json.dumps(value, separators=(",", ":"), default=str).encode(), compresslevel=5)


def _unpacked(data: bytes) -> Any:
    return json.loads(gzip.decompress(data))


def describe(selector: StudentSelector) -> str:
    words = {"all": "all students", "school": "school {}", "group": "group {}", "grad_year": "graduation year {}",
             "last_name_prefix": "last names starting {}", "usernames": "the students of {} accounts"}
    value = str(len(selector.usernames)) if selector.kind == "usernames" else selector.value
    return words.get(selector.kind, selector.kind).format(value)


def check_selector(selector: StudentSelector) -> None:
    Roster._check_query(RosterQuery(selector))


def check_who(who: str) -> str:
    chosen = who or gr.WHO_ALL
    if chosen not in WHO_WORDS:
        raise InvalidArgument("Say who counts: all contacts with parental responsibility, or primary contacts only.",
                              [FieldViolation("guardians", "all or primary")])
    return chosen


@dataclass(frozen=True)
class PlanView:
    """What PlanGeneration answers: the plan's id (to run it), counts, its first lines and possible duplicates."""

    plan_id: str
    summary: str
    counts: gr.Counts
    lines: list[list[str]]
    duplicates: tuple[tuple[str, ...], ...]
    has_workbook: bool
    expire_time: datetime


@dataclass(frozen=True)
class Dashboard:
    selection: str
    students: int
    counts: dict[str, int]
    lists: dict[str, RosterList]


class Operations:
    """What generation and invitations work with (emails_queued wakes the outbox relay after a commit)."""

    def __init__(self, db: Database, store: GenerationStore, mutations: Mutations, jobs: AccountJobs,
                 links: LinkSettings, settings: Settings, clock: Clock, emails_queued: Callable[[], None]) -> None:
        self.db = db
        self.store = store
        self.mutations = mutations
        self.jobs = jobs
        self.links = links
        self.settings = settings
        self.clock = clock
        self.emails_queued = emails_queued


class Generation(Operations):
    @property
    def blobs(self) -> BlobStore:
        return self.jobs.blobs

    def register(self) -> None:
        self.jobs.register(RUN_KIND, self.run, self.compose)

    # Planning ---------------------------------------------------------------------------------------------------

    def make_plan(self, scope: Scope, who: str, scheme: str) -> tuple[gr.RosterSnapshot, gr.GenerationPlan]:
        """The plan as the database stands: one read transaction, then the rules."""
        with paused_gc():
            with self.db.read() as session:
                snapshot = self.store.roster_snapshot(session, scope)
                plan = gr.plan_generation(snapshot, who)
                taken = set(snapshot.taken)
                taken |= self.store.usernames_with_prefixes(session, gr.username_bases(plan, scheme, taken))
            gr.assign_usernames(plan, scheme, taken)
        return snapshot, plan

    def _plan(self, selector: StudentSelector, who: str, line_limit: int, write_workbook: bool) -> PlanView:
        scheme = self.settings.username_scheme
        snapshot, plan = self.make_plan(Scope(selector=selector), who, scheme)
        sentence = gr.summary(plan.counts)
        # Every line only for the workbook; the answer shows the first ones.
        rows = gr.line_rows(snapshot, plan, None if write_workbook else line_limit)
        duplicates = duplicate_rows(snapshot.contacts, plan.duplicates if write_workbook else
                                    plan.duplicates[:line_limit])
        plan_id = new_job_id(self.jobs.store.id_prefix)
        now = self.clock()
        selection = {"kind": selector.kind, "value": selector.value, "usernames": list(selector.usernames)}
        self.blobs.put(plan_lines_key(plan_id), _packed({"created": now.isoformat(),
                                                           "lines": gr.shown_lines(plan)}))
        files = []
        if write_workbook:
            title = f"Generation plan for {describe(selector)} ({WHO_WORDS[who]})"
            self.blobs.put(job_file_key(plan_id, "plan"),
                           plan_workbook(title, sentence, dataclasses.asdict(plan.counts), rows, duplicates))
            files.append("plan")
        payload = {"selector": selection, "who": who, "scheme": scheme, "title": describe(selector),
                   "planned_at": now.isoformat()}
        with self.db.transaction() as session:
            self.jobs.store.create(session, PLAN_KIND, payload, actor=current_actor(), job_id=plan_id,
                                   state=SUCCEEDED)
            self.store.end_plan_record(session, plan_id, sentence,
                                       {"counts": dataclasses.asdict(plan.counts), "files": files}, now)
        return PlanView(plan_id, sentence, plan.counts, rows[:line_limit], duplicates[:line_limit],
                        write_workbook, now + PLAN_TTL)

    async def plan(self, selector: StudentSelector, who: str, line_limit: int, write_workbook: bool) -> PlanView:
        check_selector(selector)
        limit = min(line_limit or DEFAULT_LINES, MAX_LINES)
        if line_limit < 0:
            raise InvalidArgument("line_limit cannot be negative.", [FieldViolation("line_limit", "0 or more")])
        return await self.db.run(self._plan, selector, check_who(who), limit, write_workbook)

    # Starting a run ---------------------------------------------------------------------------------------------

    async def start(self, plan_id: str, send_invitations: bool, anchor: dict[str, str]) -> JobRecord:
        """The run of a plan shown to staff: once per plan, whoever clicks how often."""
        try:
            record = await self.jobs.get(plan_id.strip())
        except NotFound:
            record = None
        if record is None or record.kind != PLAN_KIND:
            raise NotFound(f"There is no generation plan {plan_id!r}: plan again with /portal generate.",
                           reason="PLAN_NOT_FOUND")
        planned_at = datetime.fromisoformat(record.payload.get("planned_at", record.created_at.isoformat()))
        if record.state != SUCCEEDED or self.clock() - planned_at > PLAN_TTL:
            raise FailedPrecondition("This plan is more than a day old: plan again, so the run applies what you "
                                     "have seen of today's roster.", reason="PLAN_EXPIRED")
        payload = {**record.payload, "plan_id": record.id, "send_invitations": send_invitations}
        counts = record.result.get("counts", {})
        total = counts.get("accounts_to_create", 0) + counts.get("accounts_gaining_students", 0)
        return await self.jobs.start(RUN_KIND, payload, anchor=anchor, request_id=f"{RUN_KIND}:{record.id}",
                                     total=total)

    # The run ----------------------------------------------------------------------------------------------------

    def _scope(self, job: JobRecord) -> Scope:
        if job.payload.get("autogenerate"):
            with self.db.read() as session:
                return self.store.pending_scope(session, job.id)
        chosen = job.payload["selector"]
        return Scope(selector=StudentSelector(chosen["kind"], chosen.get("value", ""),
                                              tuple(chosen.get("usernames", ()))))

    def _prepare(self, job: JobRecord) -> dict[str, Any]:
        """Plan again; keep what the plan shown said; write down the work (what a resumed run continues)."""
        payload = job.payload
        snapshot, plan = self.make_plan(self._scope(job), payload.get("who", gr.WHO_ALL),
                                        payload.get("scheme", self.settings.username_scheme))
        changes: list[gr.Change] = []
        if payload.get("plan_id"):
            try:
                shown_data = _unpacked(self.blobs.get(plan_lines_key(payload["plan_id"])))
            except KeyError:
                raise FailedPrecondition("The plan's lines are no longer kept: plan again.",
                                         reason="PLAN_EXPIRED") from None
            shown = {(s, c): (action, username) for s, c, action, username in shown_data["lines"]}
            changes = gr.restrict(plan, shown)
        students = snapshot.students

        def schools(student_ids: Sequence[str]) -> list[str]:
            return list(dict.fromkeys(students[s].school for s in student_ids if students[s].school))

        work = {
            "title": payload.get("title", ""), "who": payload.get("who", gr.WHO_ALL),
            "counts": dataclasses.asdict(plan.counts),
            "creates": [[g.username, g.first_name, g.last_name, g.email, g.contact_id, g.student_ids,
                         schools(g.student_ids)] for g in plan.creates],
            "links": [[c.account_id, c.username, c.student_ids, c.adopt_contact_id] for c in plan.links],
            "lines": gr.line_rows(snapshot, plan),
            "changes": [[c.student_id, c.contact_id, c.planned, c.now, "yes" if c.applied else "no", c.message]
                        for c in changes],
            "duplicates": [list(row) for row in duplicate_rows(snapshot.contacts, plan.duplicates)],
        }
        self.blobs.put(work_key(job.id), _packed(work))
        return work

    def _begin(self, context: JobContext, total: int) -> dict[str, Any]:
        checkpoint = {"phase": "apply", "next": 0, "conflicts": [],
                      "tally": {"created": 0, "linked_accounts": 0, "links": 0, "invitations": 0, "conflicts": 0}}
        with self.db.transaction() as session:
            context.store.progress(session, context.job.id, context.owner, done=0, total=total,
                                   checkpoint=checkpoint)
        return checkpoint

    async def run(self, context: JobContext) -> None:
        job = context.job
        checkpoint = dict(job.checkpoint)
        try:
            if checkpoint.get("phase") == "apply":
                work = _unpacked(await self.db.run(self.blobs.get, work_key(job.id)))
            else:
                work = await self.db.run(self._prepare, job)
        except ServiceError as exc:
            await self.db.run(self._fail, context, exc)
            self.jobs.poke_alerts()
            return
        units = [("create", item) for item in work["creates"]] + [("link", item) for item in work["links"]]
        if checkpoint.get("phase") != "apply":
            checkpoint = await self.db.run(self._begin, context, len(units))
        position = int(checkpoint["next"])
        while position < len(units):
            if context.should_stop():
                return
            end = min(position + CHUNK, len(units))
            before = checkpoint["tally"]["invitations"]
            checkpoint = await self.db.run(self._apply_chunk, context, units[position:end], end, len(units),
                                           checkpoint)
            if checkpoint["tally"]["invitations"] > before:
                self.emails_queued()
            position = end
        await self._finish(context, work, checkpoint)

    def _fail(self, context: JobContext, error: ServiceError) -> None:
        with self.db.transaction() as session:
            context.store.finish(session, context.job.id, context.owner, state=FAILED, summary=error.message,
                                 error_code=error.code.value[0], error_message=error.message)

    def _apply_chunk(self, context: JobContext, units: Sequence[tuple[str, list[Any]]], end: int, total: int,
                     checkpoint: dict[str, Any]) -> dict[str, Any]:
        job = context.job
        call = Call(job.actor.id, job.actor.name, "", job.id)
        send = bool(job.payload.get("send_invitations"))
        creates = [item for kind, item in units if kind == "create"]
        links = [item for kind, item in units if kind == "link"]

        def work(session: Session, audit: Audit) -> dict[str, Any]:
            self.store.serialize_runs(session)
            tally = dict(checkpoint["tally"])
            conflicts = list(checkpoint["conflicts"])
            invite = self._create(session, audit, job.id, creates, send, tally, conflicts)
            self._link(session, audit, job.id, links, tally, conflicts)
            if invite:
                issue_links(self.store, session, self.links, invite, TokenPurpose.INVITATION, audit.now, True,
                            job_id=job.id, new_accounts=True)
                tally["invitations"] += len(invite)
            tally["conflicts"] = checkpoint["tally"]["conflicts"] + len(conflicts) - len(checkpoint["conflicts"])
            updated = {"phase": "apply", "next": end, "tally": tally, "conflicts": conflicts[:MAX_CONFLICTS_KEPT]}
            context.store.progress(session, job.id, context.owner, done=end, total=total, checkpoint=updated)
            return updated

        for _attempt in range(3):
            try:
                return self.mutations.run(call, "GenerateAccounts", dict, work)
            except UsernameTaken:
                continue  # another writer took a username meanwhile (PostgreSQL): the re-check now sees it
        raise FailedPrecondition("Other changes to the same accounts kept arriving during the run.",
                                 reason="BATCH_CONFLICT")

    def _create(self, session: Session, audit: Audit, job_id: str, creates: Sequence[list[Any]], send: bool,
                tally: dict[str, int], conflicts: list[list[str]]) -> list[LinkTarget]:
        """Insert the chunk's new accounts (the ones whose username, email and contact nobody took since the
        plan) with their links; the invitations to send."""
        taken, owned, made = self.store.holders(session, [c[0].lower() for c in creates],
                                                [c[3].lower() for c in creates], [c[4] for c in creates])
        rows, pairs, school_pairs, invite = [], [], [], []
        for username, first_name, last_name, email, contact_id, student_ids, schools in creates:
            why = ("the username was taken" if username.lower() in taken else
                   "the email address now belongs to an account" if email.lower() in owned else
                   "the contact got an account" if contact_id in made else "")
            if why:
                conflicts.append([username, f"Not created: {why} during the run. Plan again."])
                continue
            account_id = new_id()
            rows.append(account_columns(
                account_id, username, first_name, last_name, email, AccountType.GUARDIAN,
                DEFAULT_ROLES[AccountType.GUARDIAN], AccountStatus.INVITED, False, TwoFactor.OFF, None, contact_id,
                audit.now))
            pairs += [(account_id, s) for s in student_ids]
            school_pairs += [(account_id, s) for s in schools]
            if send:
                invite.append(LinkTarget(account_id, username, first_name, email, schools[0] if schools else ""))
            audit.record("account.create", account_target(username), job_id=job_id, via="generate",
                         username=username, type=AccountType.GUARDIAN.value, email=email, student_ids=student_ids,
                         contact_id=contact_id, schools=schools, invitation=send)
            tally["created"] += 1
            tally["links"] += len(student_ids)
        self.store.insert_accounts(session, rows)
        self.store.add_schools(session, school_pairs)
        self.store.add_links(session, pairs, audit.now)
        return invite

    def _link(self, session: Session, audit: Audit, job_id: str, links: Sequence[list[Any]], tally: dict[str, int],
              conflicts: list[list[str]]) -> None:
        """Add the chunk's links to existing accounts (never removing one), and remember contacts."""
        alive = self.store.existing_account_ids(session, [item[0] for item in links])
        pairs, adopt, touched = [], [], []
        for account_id, username, student_ids, contact_id in links:
            if account_id not in alive:
                conflicts.append([username, "Not linked: the account was deleted during the run."])
                continue
            touched.append(account_id)
            if student_ids:
                pairs += [(account_id, s) for s in student_ids]
                audit.record("account.link", account_target(username), job_id=job_id, via="generate",
                             added=student_ids)
                tally["linked_accounts"] += 1
                tally["links"] += len(student_ids)
            if contact_id:
                adopt.append((account_id, contact_id))
                audit.record("account.update", account_target(username), job_id=job_id, via="generate",
                             before={"contact_id": ""}, after={"contact_id": contact_id})
        self.store.add_links(session, pairs, audit.now)
        self.store.adopt_contacts(session, adopt, audit.now)
        self.store.touch(session, touched, audit.now)

    async def _finish(self, context: JobContext, work: dict[str, Any], checkpoint: dict[str, Any]) -> None:
        job = context.job
        tally = {**checkpoint["tally"], "changed_since_plan": len(work["changes"])}
        skipped = work["counts"].get("skipped_contacts", 0)
        sentence = run_summary(tally, skipped, bool(job.payload.get("send_invitations")))
        autogenerate = bool(job.payload.get("autogenerate"))

        def report() -> bytes:
            failed = {name for name, _why in checkpoint["conflicts"]}
            accounts = [[u, f, last, e, "created", ", ".join(s), "queued" if job.payload.get("send_invitations")
                         else "not sent"] for u, f, last, e, _c, s, _sc in work["creates"] if u not in failed]
            accounts += [[u, "", "", "", "linked" + (" (contact remembered)" if c else ""), ", ".join(s), ""]
                         for _a, u, s, c in work["links"] if u not in failed]
            title = ("Auto-generation after roster changes" if autogenerate else
                     f"Generation for {work['title']} ({WHO_WORDS.get(work['who'], work['who'])})")
            return report_workbook(title, sentence, tally, accounts, work["lines"], work["changes"],
                                   checkpoint["conflicts"], work["duplicates"])

        data = await self.db.run(report)
        await self.db.run(self.blobs.put, job_file_key(job.id, "report"), data)
        # Auto-generation alerts (PORTAL_ALERT_CHANNEL, or the console) only when it did something.
        did_something = bool(tally["created"] or tally["links"])

        def finish() -> None:
            with self.db.transaction() as session:
                if autogenerate:
                    self.store.drop_pending(session, job.id)
                context.store.finish(
                    session, job.id, context.owner, state=SUCCEEDED, summary=sentence,
                    result={"counts": tally, "skipped_contacts": skipped, "files": ["report"],
                            "changes": work["changes"][:20], "conflicts": checkpoint["conflicts"][:20]},
                    attributes={k: str(v) for k, v in tally.items()},
                    alert=did_something or not autogenerate)
        await self.db.run(finish)
        await self.db.run(self.blobs.delete, work_key(job.id))
        self.jobs.poke_alerts()

    # The final message ------------------------------------------------------------------------------------------

    async def compose(self, job: JobRecord) -> AlertContent:
        auto = bool(job.payload.get("autogenerate"))
        name = "Auto-generation after the roster import" if auto else \
            f"Generation for {job.payload.get('title', 'the selection')}"
        if job.state == FAILED:
            text = f"{name} failed: {job.error_message or job.summary}"
            return AlertContent(text, [_section(f":x: {text} (`{job.id}`)")])
        text = f"{name} finished: {job.summary}."
        lines = [f":white_check_mark: *{name} finished* (`{job.id}`)", f"{job.summary}."]
        changes = job.result.get("changes", [])
        if changes:
            lines.append("*Changed since the plan:*")
            lines += [f"• Student {c[0]}, contact {c[1]}: {c[5]}" for c in changes[:5]]
            more = int(job.result.get("counts", {}).get("changed_since_plan", 0)) - 5
            if more > 0:
                lines.append(f"…and {more} more in the report.")
        conflicts = job.result.get("conflicts", [])
        if conflicts:
            lines.append("*Not done:* " + "; ".join(f"{u}: {why}" for u, why in conflicts[:3]))
        files: tuple[AlertFile, ...] = ()
        try:
            data = await self.db.run(self.blobs.get, job_file_key(job.id, "report"))
            files = (AlertFile(f"generation-report-{job.id}.xlsx", data, "Generation report"),)
        except KeyError:
            lines.append("(The report is no longer available.)")
        return AlertContent(text, [_section("\n".join(lines))], files)

    # Plan records -----------------------------------------------------------------------------------------------

    def expire_plans(self) -> int:
        """Delete the files of plans older than a week (they hold personal data), and mark them expired."""
        now = self.clock()
        with self.db.read() as session:
            old = self.store.old_plans(session, PLAN_KIND, now - PLAN_KEPT)
        for plan_id in old:
            for key in (plan_lines_key(plan_id), job_file_key(plan_id, "plan")):
                self.blobs.delete(key)
        if old:
            with self.db.transaction() as session:
                self.store.expire_plans(session, old, now)
        return len(old)

    # The data dashboard -----------------------------------------------------------------------------------------

    def _dashboard(self, selector: StudentSelector) -> Dashboard:
        snapshot, plan = self.make_plan(Scope(selector=selector), gr.WHO_ALL, self.settings.username_scheme)
        lists = roster_lists(snapshot, plan)
        counts = {name: len(found.rows) for name, found in lists.items()}
        return Dashboard(describe(selector), len(snapshot.students), counts, lists)

    async def dashboard(self, selector: StudentSelector) -> Dashboard:
        check_selector(selector)
        return await self.db.run(self._dashboard, selector)

    async def roster_list(self, selector: StudentSelector, name: str) -> tuple[str, bytes]:
        if name not in LISTS:
            raise InvalidArgument(f"There is no list {name!r}: choose one of {', '.join(LISTS)}.",
                                  [FieldViolation("list", "unknown list")])
        board = await self.dashboard(selector)
        data = await self.db.run(list_workbook, board.lists[name])
        return f"roster-{name.replace('_', '-')}.xlsx", data


def run_summary(tally: dict[str, int], skipped_contacts: int, invitations: bool) -> str:
    def many(number: int, one: str, more: str) -> str:
        return f"{number:,} {one if number == 1 else more}"

    parts = [many(tally.get("created", 0), "account created", "accounts created"),
             many(tally.get("linked_accounts", 0), "existing account gained a student",
                  "existing accounts gained a student"),
             many(tally.get("links", 0), "student link added", "student links added"),
             many(skipped_contacts, "contact skipped", "contacts skipped")]
    if invitations:
        parts.append(many(tally.get("invitations", 0), "invitation queued", "invitations queued"))
    if tally.get("conflicts"):
        parts.append(f"{tally['conflicts']:,} not done (changed during the run)")
    return ", ".join(parts)


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}}
