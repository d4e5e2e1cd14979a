"""A refused form's errors, on its fields: the service's field violations (google.rpc.BadRequest) by the form
field they name, and the whole message on one field when it names none."""

from __future__ import annotations

from collections.abc import Mapping

from bot.replies import Form
from bot.services import ServiceProblem


def field_for(form: Form, path: str, aliases: Mapping[str, str] = {}, fallback: str = "") -> str:
    """`account.username` -> `username`; a path naming no field of the form lands on `fallback` (or the first)."""
    last = path.rsplit(".", 1)[-1].split("[", 1)[0]
    name = aliases.get(last, last)
    return name if name in {f.name for f in form.fields} else (fallback or form.fields[0].name)


def form_errors(form: Form, problem: ServiceProblem, aliases: Mapping[str, str] = {},
                fallback: str = "") -> dict[str, str]:
    errors: dict[str, str] = {}
    for violation in problem.violations:
        name = field_for(form, violation.field, aliases, fallback)
        errors[name] = f"{errors[name]} {violation.description}" if name in errors else violation.description
    if not errors:
        errors[fallback or form.fields[0].name] = problem.message
    return errors
