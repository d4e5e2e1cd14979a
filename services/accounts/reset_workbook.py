"""The workbook a bulk reset ends with: who was reset (what was sent, whether two-factor was turned on, and what
became of the email), and who was skipped and why. openpyxl write-only; text neutralised."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from plumbing.sheets import header_cells, saved
from plumbing.workbooks import neutralise
from services.accounts.models import ResetItemRecord
from services.accounts.reset_rules import SKIP_REASONS

SENT_WORDS = {"invitation": "invitation link", "reset": "reset link", "password": "new password (must change)"}
RESET_COLUMNS = ("Username", "Name", "Email", "Sent", "Two-factor turned on", "Email delivery", "Delivery error")
SKIPPED_COLUMNS = ("Username", "Name", "Email", "Reason")


@dataclass(frozen=True)
class Delivery:
    """What notify says of one email: "sent", "failed", or "queued" (not delivered yet)."""

    state: str
    error: str = ""


@dataclass
class ResetTally:
    reset: int = 0
    skipped: int = 0
    failed: int = 0
    pending: int = 0


def reset_workbook(items: Iterable[ResetItemRecord], deliveries: Mapping[str, Delivery]) -> tuple[bytes, ResetTally]:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    done = workbook.create_sheet("Reset")
    done.freeze_panes = "A2"
    done.append(header_cells(done, RESET_COLUMNS))
    skipped_rows: list[tuple[object, ...]] = []
    tally = ResetTally()
    for item in items:
        if item.outcome == "skipped":
            tally.skipped += 1
            skipped_rows.append((item.username, item.name, item.email, SKIP_REASONS.get(item.reason, item.reason)))
            continue
        tally.reset += 1
        delivery = deliveries.get(item.email_key, Delivery("queued"))
        if delivery.state == "failed":
            tally.failed += 1
        elif delivery.state != "sent":
            tally.pending += 1
        state = {"sent": "sent", "failed": "FAILED"}.get(delivery.state, "not delivered yet")
        done.append([neutralise(v) for v in (item.username, item.name, item.email, SENT_WORDS.get(item.outcome, ""),
                                              "yes" if item.two_factor_enabled else "no", state, delivery.error)])
    skipped = workbook.create_sheet("Skipped")
    skipped.freeze_panes = "A2"
    skipped.append(header_cells(skipped, SKIPPED_COLUMNS))
    for row in skipped_rows:
        skipped.append([neutralise(v) for v in row])
    return saved(workbook), tally
