"""The selector words used everywhere (templates, generate, resets, usage): all, school NAME, group NAME,
grad YEAR, lastname PREFIX."""

from __future__ import annotations

from bot.registry import UsageError
from portal.common.v1 import jobs_pb2

SELECTOR_WORDS = "all | school NAME | group NAME | grad YEAR | lastname PREFIX"


def parse_selector(args: list[str], usage: str) -> tuple[jobs_pb2.Selector, str]:
    """The Selector and a short description of it ("grad 2031")."""
    if not args:
        raise UsageError(f"Which students? Usage: `{usage}`")
    word, rest = args[0].lower(), " ".join(args[1:]).strip()
    if word == "all":
        if rest:
            raise UsageError(f"`all` takes nothing after it. Usage: `{usage}`")
        return jobs_pb2.Selector(all=True), "all students"
    if word in ("school", "group", "lastname", "grad") and not rest:
        raise UsageError(f"`{word}` needs a value. Usage: `{usage}`")
    if word == "school":
        return jobs_pb2.Selector(school=rest), f"school {rest}"
    if word == "group":
        return jobs_pb2.Selector(group=rest), f"group {rest}"
    if word == "lastname":
        return jobs_pb2.Selector(last_name_prefix=rest), f"last names starting {rest}"
    if word == "grad":
        if not rest.isdigit() or not 1900 < int(rest) < 2200:
            raise UsageError(f"`grad` needs a graduation year such as 2031. Usage: `{usage}`")
        return jobs_pb2.Selector(grad_year=int(rest)), f"graduation year {rest}"
    raise UsageError(f"I do not know the selector `{args[0]}`: use {SELECTOR_WORDS}.")
