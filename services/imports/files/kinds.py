"""Kinds of file, recognised by their header row (most specific first), and the columns each kind reads.

Headers are compared ignoring case, spaces, underscores, hyphens and dots, and common synonyms are accepted
(USERNAME for LOGONID, SURNAME for LAST_NAME, ...). `match_header` maps a header row to a kind and its columns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from openpyxl.utils import get_column_letter


class Kind(StrEnum):
    """What a file holds (the names match the FileKind enum of the imports API)."""

    ROSTER = "roster"
    STAFF = "staff"
    PARENT_ACCOUNTS = "parent_accounts"
    STUDENT_LINKS = "student_links"
    ONEROSTER = "oneroster"  # a OneRoster bundle, read as roster rows


# Canonical column names -> the other names staff's files use for them (before normalisation).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "LOGONID": ("LOGON_ID", "LOGON", "USERNAME", "USER_NAME", "USER_ID", "LOGIN", "LOGIN_ID", "LOGIN_NAME",
                "LOGON_NAME"),
    "FIRST_NAME": ("FORENAME", "FORENAMES", "GIVEN_NAME", "FIRST"),
    "LAST_NAME": ("SURNAME", "FAMILY_NAME", "LAST"),
    "EMAIL": ("E_MAIL", "EMAIL_ADDRESS", "E_MAIL_ADDRESS"),
    "PASSWORD": ("INITIAL_PASSWORD",),
    "USER_TYPE": ("LOGON_TYPE", "ACCOUNT_TYPE"),
    "STUDENT_IDS": ("STUDENTS",),
    "STUDENT_ID": ("STUDENT_NUMBER", "PUPIL_ID"),
    "MUST_CHANGE_PASSWORD": ("CHANGE_PASSWORD", "CHANGE_PASSWORD_AT_NEXT_LOGON", "USER_MUST_CHANGE_PASSWORD"),
    "ENABLED": ("ACTIVE",),
    "STAFF_ID": ("EMPLOYEE_ID",),
    "SCHOOL": ("SCHOOL_NAME",),
    "STUDENT_FIRST_NAME": ("STUDENT_FORENAME", "STUDENT_GIVEN_NAME"),
    "STUDENT_LAST_NAME": ("STUDENT_SURNAME", "STUDENT_FAMILY_NAME"),
    "STUDENT_NAME": (),
    "GRAD_YEAR": ("GRADUATION_YEAR", "YEAR_OF_GRADUATION"),
    "GROUP": ("GROUP_NAME",),
    "CONTACT_ID": (),
    "CONTACT_FIRST_NAME": ("CONTACT_FORENAME", "CONTACT_GIVEN_NAME"),
    "CONTACT_LAST_NAME": ("CONTACT_SURNAME", "CONTACT_FAMILY_NAME"),
    "CONTACT_EMAIL": ("CONTACT_EMAIL_ADDRESS", "CONTACT_E_MAIL"),
    "RELATIONSHIP": ("RELATION",),
    "PARENTAL_RESPONSIBILITY": ("HAS_PARENTAL_RESPONSIBILITY",),
    "PRIMARY_CONTACT": ("PRIORITY_CONTACT",),
    "CONTACT_PHONE": ("CONTACT_TELEPHONE", "CONTACT_PHONE_NUMBER"),
    "CONTACT_ADDRESS": (),
    "COURT_ORDER": (),
    "STATUS": (),
    "MESSAGE": (),
}

_STRIP = re.compile(r"[\s_\-.\u200b\ufeff]+")


def normalise_header(text: str) -> str:
    """A header as compared: upper case without spaces, underscores, hyphens, dots, BOM or zero-width spaces."""
    return _STRIP.sub("", str(text)).upper()


_BY_NORMALISED: dict[str, str] = {}
for _name, _others in SYNONYMS.items():
    for _spelling in (_name, *_others):
        _BY_NORMALISED[normalise_header(_spelling)] = _name


def canonical_column(header: str) -> str | None:
    """The canonical column a header names (any kind), or None for a header the portal never reads."""
    return _BY_NORMALISED.get(normalise_header(header))


@dataclass(frozen=True)
class KindSpec:
    """How a kind is recognised and which columns it reads.

    keys: all present means "this kind"; required: must then be present too; optional: read when present;
    forbidden: presence rules the kind out; informational: ignored silently; aliases: canonical renames in this
    kind (STUDENT_ID means STUDENT_IDS in a parent-accounts file).
    """

    kind: Kind
    title: str
    keys: tuple[str, ...]
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    forbidden: tuple[str, ...] = ()
    informational: tuple[str, ...] = ("STATUS", "MESSAGE")
    aliases: dict[str, str] = field(default_factory=dict)
    display: tuple[str, ...] = ()  # the columns in the order staff see them (keys + required + optional)

    @property
    def columns(self) -> tuple[str, ...]:
        return self.keys + self.required + self.optional

    def describe(self) -> str:
        """One line for staff: the kind's title, its columns, and which of them are optional."""
        order = self.display or self.columns
        text = f"{self.title}: {', '.join(c for c in order if c not in self.optional)}"
        return text + (f" (optional {', '.join(c for c in order if c in self.optional)})" if self.optional else "")


ROSTER_COLUMNS = (
    "STUDENT_ID", "STUDENT_FIRST_NAME", "STUDENT_LAST_NAME", "GRAD_YEAR", "GROUP", "SCHOOL", "CONTACT_ID",
    "CONTACT_FIRST_NAME", "CONTACT_LAST_NAME", "CONTACT_EMAIL", "RELATIONSHIP", "PARENTAL_RESPONSIBILITY",
    "PRIMARY_CONTACT")
ROSTER_OPTIONAL = ("CONTACT_PHONE", "CONTACT_ADDRESS", "COURT_ORDER")
PARENT_COLUMNS = ("LOGONID", "FIRST_NAME", "LAST_NAME", "EMAIL", "PASSWORD", "USER_TYPE", "STUDENT_IDS",
                  "MUST_CHANGE_PASSWORD", "ENABLED")
# Template columns a parent-accounts import ignores: they are there for staff to see whose row it is.
INFORMATIONAL_STUDENT_COLUMNS = ("STUDENT_NAME", "STUDENT_FIRST_NAME", "STUDENT_LAST_NAME", "GRAD_YEAR", "GROUP",
                                 "SCHOOL")

SPECS: tuple[KindSpec, ...] = (
    KindSpec(Kind.ROSTER, "roster (one row per student and contact)", keys=("STUDENT_ID", "CONTACT_ID"),
             required=ROSTER_COLUMNS[1:6] + ROSTER_COLUMNS[7:], optional=ROSTER_OPTIONAL,
             informational=("STATUS", "MESSAGE", "STUDENT_NAME"), display=ROSTER_COLUMNS + ROSTER_OPTIONAL),
    KindSpec(Kind.STAFF, "staff accounts", keys=("STAFF_ID", "LOGONID", "EMAIL"),
             required=("FIRST_NAME", "LAST_NAME"), optional=("SCHOOL",), forbidden=("STUDENT_IDS", "STUDENT_ID"),
             display=("STAFF_ID", "LOGONID", "FIRST_NAME", "LAST_NAME", "EMAIL", "SCHOOL")),
    KindSpec(Kind.PARENT_ACCOUNTS, "parent accounts", keys=("LOGONID", "EMAIL", "STUDENT_IDS"),
             required=("FIRST_NAME", "LAST_NAME"),
             optional=("PASSWORD", "USER_TYPE", "MUST_CHANGE_PASSWORD", "ENABLED"),
             informational=("STATUS", "MESSAGE", *INFORMATIONAL_STUDENT_COLUMNS),
             aliases={"STUDENT_ID": "STUDENT_IDS"}, display=PARENT_COLUMNS),
    KindSpec(Kind.STUDENT_LINKS, "student links", keys=("LOGONID", "STUDENT_ID"), forbidden=("EMAIL",),
             informational=("STATUS", "MESSAGE", "FIRST_NAME", "LAST_NAME", *INFORMATIONAL_STUDENT_COLUMNS),
             aliases={"STUDENT_IDS": "STUDENT_ID"}),
)
SPEC_BY_KIND: dict[Kind, KindSpec] = {spec.kind: spec for spec in SPECS}
SPEC_BY_KIND[Kind.ONEROSTER] = SPEC_BY_KIND[Kind.ROSTER]


@dataclass(frozen=True, slots=True)
class ColumnRef:
    """Where a column sits in the file: its canonical name, its header as written, its letter and 0-based index."""

    name: str
    header: str
    letter: str
    index: int


@dataclass(frozen=True)
class HeaderMatch:
    """A header row read as one kind: the columns found, those missing, repeated, renamed and ignored."""

    spec: KindSpec
    columns: dict[str, ColumnRef]
    missing: tuple[str, ...]
    duplicates: tuple[tuple[ColumnRef, ColumnRef], ...]
    ignored: tuple[ColumnRef, ...]  # headers this kind does not read (warned about)
    informational: tuple[ColumnRef, ...]  # headers ignored silently
    synonyms: tuple[ColumnRef, ...]  # columns found under another name than the canonical one

    @property
    def kind(self) -> Kind:
        return self.spec.kind


def _column_for(spec: KindSpec, header: str) -> str | None:
    name = canonical_column(header)
    return spec.aliases.get(name, name) if name else None


def match_header(cells: list[str]) -> HeaderMatch | None:
    """The first kind (most specific first) whose key columns are all in `cells`, or None."""
    present = {canonical_column(c) for c in cells if c}
    for spec in SPECS:
        names = {spec.aliases.get(n, n) for n in present if n}
        if set(spec.keys) <= names and not (set(spec.forbidden) & present):
            return _build_match(spec, cells)
    return None


def _build_match(spec: KindSpec, cells: list[str]) -> HeaderMatch:
    columns: dict[str, ColumnRef] = {}
    duplicates, ignored, informational, synonyms = [], [], [], []
    for index, header in enumerate(cells):
        if not str(header).strip():
            continue
        name = _column_for(spec, header)
        ref = ColumnRef(name or "", str(header).strip(), get_column_letter(index + 1), index)
        if name in spec.columns:
            if name in columns:
                duplicates.append((columns[name], ref))
                continue
            columns[name] = ref
            if normalise_header(header) != normalise_header(name):
                synonyms.append(ref)
        elif name in spec.informational:
            informational.append(ref)
        else:
            ignored.append(ref)
    missing = tuple(c for c in spec.keys + spec.required if c not in columns)
    return HeaderMatch(spec, columns, missing, tuple(duplicates), tuple(ignored), tuple(informational),
                       tuple(synonyms))


def kinds_help() -> str:
    """The kinds of file the portal reads and their columns, as one line each (for refusal messages)."""
    lines = [f"- {spec.describe()}" for spec in SPECS]
    lines.append("- a OneRoster 1.1 .zip bundle: users.csv (students, and parents or guardians linked through "
                 "agentSourcedIds), with orgs.csv, classes.csv and enrollments.csv when present")
    return "\n".join(lines)
