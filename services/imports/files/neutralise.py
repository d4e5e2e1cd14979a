"""The one function every workbook the system writes passes its text through, so no cell can run as a formula.
It lives in plumbing.workbooks (the accounts service's reports use it too); imported here under its old name."""

from __future__ import annotations

from plumbing.workbooks import FORMULA_TRIGGERS, MAX_CELL_CHARS, NEUTRALISING_PREFIX, neutralise

__all__ = ["FORMULA_TRIGGERS", "MAX_CELL_CHARS", "NEUTRALISING_PREFIX", "neutralise"]
