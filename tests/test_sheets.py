"""Sheet names Excel accepts (plumbing.sheets), for awkward wanted names."""

from __future__ import annotations

import re

import pytest

from plumbing.sheets import SHEET_NAME_MAX, SheetNames


@pytest.mark.parametrize(("wanted", "given"), [
    ("Jane Smith (jsmith01)", "Jane Smith (jsmith01)"),
    ("a/b\\c[d]e:f*g?h", "a_b_c_d_e_f_g_h"),
    ("'quoted'", "quoted"),
    ("   ", "Sheet"),
    ("History", "History Sheet"),
    ("x" * 40, "x" * 31),
    ("Ann O'Brien-Featherstonehaugh' (ab)", "Ann O'Brien-Featherstonehaugh"),
])
def test_a_name_is_cleaned(wanted: str, given: str) -> None:
    assert SheetNames.clean(wanted) == given


def test_names_are_unique_whatever_the_case_and_stay_within_31_characters() -> None:
    names = SheetNames()
    taken = [names.take(w) for w in ("Summary", "summary", "SUMMARY", "y" * 35, "y" * 33, "y" * 31, "'", "")]
    assert taken[:3] == ["Summary", "summary (2)", "SUMMARY (3)"]
    assert taken[3] == "y" * 31 and taken[4] == "y" * 27 + " (2)" and taken[5] == "y" * 27 + " (3)"
    assert taken[6:] == ["Sheet", "Sheet (2)"]
    assert len({t.lower() for t in taken}) == len(taken)
    for name in taken:
        assert 0 < len(name) <= SHEET_NAME_MAX and not re.search(r"[\[\]:*?/\\]", name)
        assert not name.startswith("'") and not name.endswith("'")
