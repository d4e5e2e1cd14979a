"""README's configuration stays true: every setting the processes read is documented there."""

from __future__ import annotations

from pathlib import Path

from plumbing.config import Settings

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_setting_is_documented_in_the_readme() -> None:
    text = README.read_text()
    variables = [name.upper() if name.startswith("slack_") else f"PORTAL_{name.upper()}"
                 for name in Settings.model_fields]
    assert [v for v in variables if f"`{v}`" not in text] == []
