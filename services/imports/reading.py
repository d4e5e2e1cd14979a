"""What the imports service keeps of a file once read: its kind and its rows by canonical column name.

The file layer (services/imports/files) reads untrusted bytes at arm's length and normalises every cell; this
module turns its answer into a plain, JSON-serialisable form that the trial run stores and the upload re-reads.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass
class SheetRow:
    """One data row: its number as Excel shows it, its values by canonical column, and file-level problems."""

    row_number: int
    values: dict[str, str]
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # (code, column, message)
    skipped: bool = False

    def students(self) -> list[str]:
        raw = self.values.get("STUDENT_IDS") or self.values.get("STUDENT_ID") or ""
        return [part.strip() for part in raw.replace(",", ";").split(";") if part.strip()]


@dataclass
class ReadResult:
    kind: str
    filename: str
    # Canonical column -> header as written in the file (for messages and the annotated workbook).
    columns: dict[str, str]
    rows: list[SheetRow]
    warnings: list[str] = field(default_factory=list)
    # The sheet as read (header row first), for the annotated workbook.
    sheet: list[list[str]] = field(default_factory=list)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> ReadResult:
        raw = json.loads(data)
        rows = [SheetRow(r["row_number"], r["values"], [tuple(p) for p in r["problems"]], r["skipped"])
                for r in raw.pop("rows")]
        return cls(rows=rows, **raw)
