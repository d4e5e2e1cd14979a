"""The final message of an import job, as notify posts it into the Slack thread the job came from."""

from __future__ import annotations

from typing import Any

from plumbing.blobs import BlobStore
from plumbing.jobs import FAILED, AlertContent, AlertFile, JobRecord
from services.imports.handlers import file_key
from services.imports.store import ImportsStore, Problem

SHOWN_PROBLEMS = 10
UPLOAD_ACTION = "imports_upload"
UNDO_ACTION = "imports_undo"
KIND_NAMES = {"parent_accounts": "parent accounts", "student_links": "student links", "roster": "roster",
              "staff": "staff accounts", "oneroster": "OneRoster roster"}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}}


def _problem_lines(problems: list[Problem]) -> str:
    return "\n".join(f"• Row {p.row_number}, {p.column or 'row'}: `{p.code}` {p.message}" for p in problems)


def _button(action_id: str, label: str, value: str, title: str, confirm: str, style: str = "primary"
            ) -> dict[str, Any]:
    return {
        "type": "button", "action_id": action_id, "text": {"type": "plain_text", "text": label},
        "value": value, "style": style,
        "confirm": {"title": {"type": "plain_text", "text": title[:100]},
                    "text": {"type": "mrkdwn", "text": confirm[:300]},
                    "confirm": {"type": "plain_text", "text": label}, "deny": {"type": "plain_text", "text": "Cancel"}},
    }


def upload_confirmation(counts: dict[str, Any], kind: str) -> str:
    """The confirm dialog's sentence, e.g. "412 accounts will be created, 37 rows with errors will be skipped"."""
    if kind in ("roster", "oneroster"):
        parts = [f"{counts.get('create', 0)} new and {counts.get('update', 0)} changed roster rows will be saved"]
    else:
        created = counts.get("create", 0)
        parts = [f"{created} account{'' if created == 1 else 's'} will be created"]
        if counts.get("update"):
            parts.append(f"{counts['update']} updated")
        if counts.get("link") or counts.get("students_linked"):
            linked = counts.get("students_linked", 0)
            parts.append(f"{linked} student link{'' if linked == 1 else 's'} added")
        if counts.get("invitations"):
            invited = counts["invitations"]
            parts.append(f"{invited} invitation{'' if invited == 1 else 's'} emailed")
    errors = counts.get("errors", 0)
    parts.append(f"{errors} row{'s' if errors != 1 else ''} with errors will be skipped")
    return ", ".join(parts) + "."


def compose(store: ImportsStore, blobs: BlobStore) -> Any:
    async def build(job: JobRecord) -> AlertContent | None:
        def problems() -> list[Problem]:
            with store.db.read() as session:
                return store.problems_page(session, job.id, 0, SHOWN_PROBLEMS)
        shown = await store.db.run(problems)
        filename = job.payload.get("filename", "the file")
        kind = KIND_NAMES.get(job.payload.get("kind", ""), "")
        counts = job.result.get("counts", {})
        if job.state == FAILED:
            text = f"The {job.kind.replace('_', ' ')} of {filename} failed: {job.error_message or job.summary}"
            return AlertContent(text, [_section(f":x: {text}")])
        blocks: list[dict[str, Any]] = []
        files: tuple[AlertFile, ...] = ()
        if job.kind == "trial_run":
            text = f"Trial run of {filename} ({kind} file): {job.summary}."
            blocks.append(_section(f"*Trial run of {filename}* ({kind} file, {counts.get('rows', 0)} rows)\n"
                                   f"{job.summary}."))
            if counts.get("invitations"):
                blocks.append(_section(f"{counts['invitations']} row(s) have no password: those parents will be "
                                       "emailed an invitation link."))
            for warning in job.result.get("file_warnings", [])[:5]:
                blocks.append(_section(f":warning: {warning}"))
            files = await _files(store, blobs, job, "annotated", "Annotated trial run")
            if shown:
                more = counts.get("errors", 0) + counts.get("warnings", 0) > len(shown)
                blocks.append(_section("*First problems*\n" + _problem_lines(shown)
                                       + ("\n…the annotated workbook has them all." if more else "")))
            applicable = sum(counts.get(k, 0) for k in ("create", "update", "link"))
            if applicable:
                blocks.append({"type": "actions", "elements": [_button(
                    UPLOAD_ACTION, "Upload", job.id, "Upload these rows?",
                    upload_confirmation(counts, job.payload.get("kind", "")))]})
            else:
                blocks.append(_section("Nothing to upload yet: fix the rows above in the annotated workbook and "
                                       "drop it back into this thread for a new trial run."))
        elif job.kind == "upload":
            text = f"Upload of {filename} finished: {job.summary}."
            blocks.append(_section(f":white_check_mark: *Upload of {filename} finished*\n{job.summary}."))
            files = await _files(store, blobs, job, "log", "Upload log")
            blocks.append({"type": "actions", "elements": [_button(
                UNDO_ACTION, "Undo this upload", job.id, "Undo this upload?",
                "Accounts this upload created that nobody has signed in to yet are removed, and the student links "
                "it added are taken away. Nothing else changes.", style="danger")]})
        else:
            text = f"Undo of the upload of {filename} finished: {job.summary}."
            blocks.append(_section(f"*Undo of the upload of {filename}*\n{job.summary}."))
            if shown:
                blocks.append(_section("*Not undone*\n" + "\n".join(f"• {p.message}" for p in shown)))
        return AlertContent(text, blocks, files)

    return build


async def _files(store: ImportsStore, blobs: BlobStore, job: JobRecord, name: str, title: str
                 ) -> tuple[AlertFile, ...]:
    if name not in job.result.get("files", []):
        return ()
    try:
        data = await store.db.run(blobs.get, file_key(job.id, name))
    except KeyError:
        return ()
    stem = job.payload.get("filename", "import").rsplit(".", 1)[0] or "import"
    return (AlertFile(f"{stem}-{name}.xlsx", data, title),)
