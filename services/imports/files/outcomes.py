"""What happened (or will happen) to each row: the plain input of the annotated workbook and the upload log."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from .problems import Problem


class Action(StrEnum):
    """The fate of one row in a trial run (future) or an upload (past)."""

    CREATE = "create"
    UPDATE = "update"
    LINK = "link"
    UNCHANGED = "unchanged"
    SKIP = "skip"
    ERROR = "error"


TRIAL_LABELS = {
    Action.CREATE: "will create the account",
    Action.UPDATE: "will update the account",
    Action.LINK: "will link students to the account",
    Action.UNCHANGED: "no change: the account already holds these details",
    Action.SKIP: "skipped",
    Action.ERROR: "not uploaded until fixed",
}
LOG_LABELS = {
    Action.CREATE: "added",
    Action.UPDATE: "updated",
    Action.LINK: "linked",
    Action.UNCHANGED: "unchanged",
    Action.SKIP: "skipped",
    Action.ERROR: "not uploaded (error)",
}


@dataclass(frozen=True)
class RowOutcome:
    """One row of the plan: its row number (as in the uploaded file), its action and its problems."""

    row_number: int
    action: Action
    problems: Sequence[Problem] = ()


@dataclass(frozen=True)
class LogEntry:
    """One row of an upload's log: what was done for it, to which account, and any codes it carried."""

    row_number: int
    action: Action
    logonid: str = ""
    name: str = ""
    email: str = ""
    student_ids: tuple[str, ...] = ()
    problems: Sequence[Problem] = ()
    detail: str = ""  # e.g. "first name changed; 2 students linked"


@dataclass
class Tally:
    """Counts of actions and codes over a run, for the summary sheets."""

    rows: int = 0
    actions: dict[Action, int] = field(default_factory=dict)
    codes: dict[str, int] = field(default_factory=dict)

    def add(self, action: Action, problems: Sequence[Problem]) -> None:
        self.rows += 1
        self.actions[action] = self.actions.get(action, 0) + 1
        for code in dict.fromkeys(p.code for p in problems):
            self.codes[code] = self.codes.get(code, 0) + 1


def action_of(problems: Sequence[Problem]) -> Action:
    """The action a row takes from its problems alone: error, skip, or (no verdict yet) unchanged."""
    if any(p.is_error for p in problems):
        return Action.ERROR
    if any(p.is_skip for p in problems):
        return Action.SKIP
    return Action.UNCHANGED
