"""The rules of generating parent accounts from the roster. Plain functions and dataclasses, no I/O.

Given a snapshot of the selected students, their contacts (and every contact sharing an email with them) and the
accounts those contacts already have, `plan_generation` says for every student and contact what generation does:
create an account (with the username `assign_usernames` gives it), link an existing account to the student, nothing
(already complete), or skip with a reason code. One guardian is one account: the same contact on several students,
and several contact records with the same email and name, are one guardian. Contacts that look alike (same name and
phone or address) but differ in email are reported as possible duplicates, never merged. `restrict` keeps, of a
fresh plan, only what the plan shown to staff said, and lists what changed in between.

(Per-line dataclasses are slotted and not frozen, for speed: a district plan holds hundreds of thousands.)
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from plumbing import status_codes as sc
from services.accounts import rules

CREATE, LINK, COMPLETE, SKIP = "create", "link", "complete", "skip"
ACTIONS = (CREATE, LINK, COMPLETE, SKIP)
WHO_ALL, WHO_PRIMARY = "all", "primary"
SCHEME_EMAIL, SCHEME_INITIAL = "email", "initial_lastname"
GUARDIAN = "guardian"
MIN_PHONE_DIGITS = 7
BASE_MAX = rules.USERNAME_MAX - 10

_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
_NOT_DIGIT = re.compile(r"\D+")
_PERMANENT_REPLY = re.compile(r"^5\d\d\b")


# Input: what the store reads ----------------------------------------------------------------------------------

@dataclass(slots=True)
class RosterStudent:
    id: str
    first_name: str
    last_name: str
    grad_year: int
    group: str
    school: str

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


@dataclass(slots=True)
class RosterContact:
    id: str
    first_name: str
    last_name: str
    email: str
    phone: str
    address: str
    no_contact: bool

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


@dataclass(slots=True)
class RosterLink:
    """A student-contact relationship."""

    student_id: str
    contact_id: str
    relationship: str
    parental_responsibility: bool
    primary: bool


@dataclass(slots=True)
class ExistingAccount:
    id: str
    username: str
    first_name: str
    last_name: str
    email_key: str
    type: str
    contact_id: str
    # The account's links to the students of the snapshot (others do not matter here).
    student_ids: set[str] = field(default_factory=set)


@dataclass
class RosterSnapshot:
    """Selected students with their relationships (in the order lines are reported), their contacts plus every
    contact sharing an email with one of them, the accounts those contacts have (by contact id or email), and the
    usernames in use among the candidates (email addresses)."""

    students: dict[str, RosterStudent]
    links: list[RosterLink]
    contacts: dict[str, RosterContact]
    accounts: list[ExistingAccount]
    taken: set[str] = field(default_factory=set)


# Output: the plan -----------------------------------------------------------------------------------------------

@dataclass(slots=True)
class PlanLine:
    student_id: str
    contact_id: str
    action: str
    # Username the account will get (create) or has (link, complete); empty when skipped.
    username: str = ""
    # A skip reason (S_...), or a warning (W_...) on a line that goes ahead.
    code: str = ""
    note: str = ""
    # The account's id (link, complete), or the new guardian's key (create).
    account_id: str = ""
    guardian: str = ""


@dataclass(slots=True)
class NewGuardian:
    """An account to create: one per guardian, linked to all of the guardian's selected students."""

    key: str
    first_name: str
    last_name: str
    email: str
    contact_id: str
    contact_ids: list[str]
    student_ids: list[str]
    username: str = ""
    note: str = ""
    # The email as a username ("" when it breaks the rules), once worked out.
    wanted: str | None = None

    def email_username(self) -> str:
        if self.wanted is None:
            self.wanted = email_username(self.email)
        return self.wanted


@dataclass(slots=True)
class LinkChange:
    """An existing account gaining students (and the contact id it comes from, when it had none)."""

    account_id: str
    username: str
    student_ids: list[str]
    adopt_contact_id: str = ""


@dataclass(frozen=True)
class DuplicateGroup:
    contact_ids: tuple[str, ...]
    matched_on: str


@dataclass(frozen=True)
class SharedEmail:
    email_key: str
    contact_ids: tuple[str, ...]
    kind: str  # "guardians" (several names) or "staff" (a staff or student account holds it)


@dataclass
class Counts:
    students: int = 0
    lines: int = 0
    accounts_to_create: int = 0
    accounts_gaining_students: int = 0
    links_to_add: int = 0
    complete: int = 0
    skipped_lines: int = 0
    skipped_contacts: int = 0
    students_without_account: int = 0
    possible_duplicates: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


@dataclass
class GenerationPlan:
    lines: list[PlanLine]
    creates: list[NewGuardian]
    links: list[LinkChange]
    duplicates: list[DuplicateGroup]
    shared_emails: list[SharedEmail]
    counts: Counts = field(default_factory=Counts)


@dataclass(frozen=True)
class Change:
    """A line whose outcome differs between the plan shown and the run."""

    student_id: str
    contact_id: str
    planned: str
    now: str
    applied: bool
    message: str


# Small rules --------------------------------------------------------------------------------------------------

def _fold(text: str) -> str:
    """Lower case without accents, for comparing names (plain ASCII, most names, takes the short way)."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def name_key(first_name: str, last_name: str) -> str:
    """Two records are the same name when this agrees: case, accents and spacing do not count."""
    text = f"{first_name} {last_name}"
    return " ".join((text.lower() if text.isascii() else _fold(text)).split())


def phone_key(phone: str) -> str:
    digits = _NOT_DIGIT.sub("", phone)
    return digits[-10:] if len(digits) >= MIN_PHONE_DIGITS else ""


def address_key(address: str) -> str:
    return _NOT_ALNUM.sub(" ", _fold(address)).strip()


def username_base(first_name: str, last_name: str) -> str:
    """First initial + last name in ASCII letters and digits ("José O'Brien" -> "jobrien")."""
    first = _NOT_ALNUM.sub("", _fold(first_name).encode("ascii", "ignore").decode())
    last = _NOT_ALNUM.sub("", _fold(last_name).encode("ascii", "ignore").decode())
    return ((first[:1] + last) or "parent")[:BASE_MAX]


def numbered(base: str, number: int) -> str:
    """The base with a number, at least as long as usernames must be ("jli" -> "jli001", "jsmith" -> "jsmith2")."""
    suffix = str(number)
    short = rules.USERNAME_MIN - len(base) - len(suffix)
    return base + "0" * short + suffix if short > 0 else base + suffix


def next_username(base: str, taken: set[str], counters: dict[str, int]) -> str:
    """The first free username for the base, marked taken: the bare base when free and long enough, then numbers
    ("jsmith", "jsmith2", "jsmith3"; a short base starts at "jli001")."""
    if base not in counters:
        long_enough = len(base) >= rules.USERNAME_MIN
        counters[base] = 1 if long_enough else 0
        if long_enough and base not in taken:
            taken.add(base)
            return base
    number = counters[base] + 1
    while numbered(base, number) in taken:
        number += 1
    counters[base] = number
    chosen = numbered(base, number)
    taken.add(chosen)
    return chosen


def email_username(email: str) -> str:
    """The email as a username, or "" when it breaks the username rules."""
    username, problems = rules.check_username(email)
    return "" if problems else username


def valid_email(email: str) -> bool:
    return rules.email_is_valid(email.strip())


# The plan -------------------------------------------------------------------------------------------------------

class _Guardians:
    """Who is who: contacts grouped by email, the accounts they have, and what each email is shared with."""

    def __init__(self, snapshot: RosterSnapshot) -> None:
        self.contacts = snapshot.contacts
        self.email_of: dict[str, str] = {}
        self.invalid: set[str] = set()
        self.members: dict[str, list[str]] = defaultdict(list)
        self.names: dict[str, str] = {}
        names: dict[str, set[str]] = defaultdict(set)
        self.flagged: dict[str, str] = {}
        valid_cache: dict[str, bool] = {}
        own_names, email_of, members = self.names, self.email_of, self.members
        for contact in snapshot.contacts.values():
            name = own_names[contact.id] = name_key(contact.first_name, contact.last_name)
            email = contact.email
            if not email or not (email := email.strip()):
                continue
            key = email.lower()
            ok = valid_cache.get(key)
            if ok is None:
                ok = valid_cache[key] = rules.email_is_valid(email)
            if not ok:
                self.invalid.add(contact.id)
                continue
            email_of[contact.id] = key
            members[key].append(contact.id)
            names[key].add(name)
            if contact.no_contact:
                self.flagged.setdefault(key, contact.id)
        self.shared = {key for key, found in names.items() if len(found) > 1}
        for found in self.members.values():
            if len(found) > 1:
                found.sort()
        self.by_contact: dict[str, ExistingAccount] = {}
        self.by_email: dict[str, list[ExistingAccount]] = defaultdict(list)
        for account in sorted(snapshot.accounts, key=lambda a: a.username.lower()):
            if account.type == GUARDIAN and account.contact_id:
                self.by_contact.setdefault(account.contact_id, account)
            if account.email_key:
                self.by_email[account.email_key].append(account)

        self._verdicts: dict[str, tuple[str, str, ExistingAccount | None]] = {}

    def verdict(self, contact: RosterContact) -> tuple[str, str, ExistingAccount | None]:
        """What a contact's lines get wherever the student (once the relationship qualifies): a skip code and
        note, or "" and the guardian's account (None: an account is to be created). Decided once per contact."""
        found = self._verdicts.get(contact.id)
        if found is None:
            found = self._verdicts[contact.id] = self._decide(contact)
        return found

    def _decide(self, contact: RosterContact) -> tuple[str, str, ExistingAccount | None]:
        key = self.email_of.get(contact.id, "")
        if key and key not in self.shared and key in self.flagged:
            return (sc.S_COURT_ORDER.code, "The same person (same name and email) is flagged with a court order on "
                                           f"contact {self.flagged[key]}.", None)
        account = self.by_contact.get(contact.id)
        if account is not None:
            return "", "", account
        if not contact.email.strip():
            return sc.S_NO_EMAIL.code, "The contact has no email address.", None
        if contact.id in self.invalid:
            return sc.S_INVALID_EMAIL.code, f"'{contact.email.strip()}' is not a valid email address.", None
        staff = self.non_guardian_owner(key)
        if staff is not None:
            return sc.S_STAFF_EMAIL.code, f"The email belongs to the {staff.type} account '{staff.username}'.", None
        if key in self.shared:
            others = sorted({self.contacts[c].name for c in self.members[key]} - {contact.name})
            return sc.S_SHARED_EMAIL.code, "The email is shared with " + ", ".join(others[:3]) + ".", None
        account, someone_else = self.unit_account(key, contact)
        if someone_else:
            owner = next(a for a in self.by_email[key] if a.type == GUARDIAN)
            return (sc.S_SHARED_EMAIL.code, f"The email belongs to the account '{owner.username}' of "
                                            f"{owner.first_name} {owner.last_name}".rstrip() + ".", None)
        return "", "", account

    def non_guardian_owner(self, key: str) -> ExistingAccount | None:
        owners = self.by_email.get(key)
        return next((a for a in owners if a.type != GUARDIAN), None) if owners else None

    def unit_account(self, key: str, contact: RosterContact) -> tuple[ExistingAccount | None, bool]:
        """The account of the guardian holding this email: one made for any of its contact records, else a parent
        account with the email. The flag says the email's account belongs to someone else (another name)."""
        by_contact = self.by_contact
        if by_contact:
            for member in self.members[key]:
                found = by_contact.get(member)
                if found is not None:
                    return found, False
        owners = self.by_email.get(key)
        owner = next((a for a in owners if a.type == GUARDIAN), None) if owners else None
        if owner is None:
            return None, False
        mine = owner.contact_id in self.members[key] or (
            name_key(owner.first_name, owner.last_name) == self.names[contact.id])
        return (owner, False) if mine else (None, True)


COURT_ORDER_NOTE = "The roster flags this contact with a court order or no-contact order."
NO_RESPONSIBILITY_NOTE = "No parental responsibility for this student."
NOT_PRIMARY_NOTE = "Not a primary contact of this student."


def plan_generation(snapshot: RosterSnapshot, who: str) -> GenerationPlan:
    """Every selected student and contact as a line (usernames of new accounts are given by `assign_usernames`)."""
    who_primary = who == WHO_PRIMARY
    guardians = _Guardians(snapshot)
    verdict, email_of = guardians.verdict, guardians.email_of
    contacts = snapshot.contacts
    lines: list[PlanLine] = []
    add = lines.append
    creates: dict[str, NewGuardian] = {}
    gains: dict[str, LinkChange] = {}
    adopted: dict[str, str] = {}
    accounts_by_id: dict[str, ExistingAccount] = {}
    court, no_responsibility, not_primary = (sc.S_COURT_ORDER.code, sc.S_NO_PARENTAL_RESPONSIBILITY.code,
                                             sc.S_NOT_PRIMARY.code)
    for link in snapshot.links:
        student_id, contact_id = link.student_id, link.contact_id
        contact = contacts[contact_id]
        if contact.no_contact:
            add(PlanLine(student_id, contact_id, SKIP, "", court, COURT_ORDER_NOTE))
            continue
        if not link.parental_responsibility:
            add(PlanLine(student_id, contact_id, SKIP, "", no_responsibility, NO_RESPONSIBILITY_NOTE))
            continue
        if who_primary and not link.primary:
            add(PlanLine(student_id, contact_id, SKIP, "", not_primary, NOT_PRIMARY_NOTE))
            continue
        code, note, account = verdict(contact)
        if code:
            add(PlanLine(student_id, contact_id, SKIP, "", code, note))
            continue
        if account is None:
            key = email_of[contact_id]
            guardian = creates.get(key)
            if guardian is None:
                guardian = creates[key] = NewGuardian(key, contact.first_name, contact.last_name,
                                                      contact.email.strip(), contact_id, [contact_id], [])
            elif contact_id not in guardian.contact_ids:
                guardian.contact_ids.append(contact_id)
            if student_id not in guardian.student_ids:
                guardian.student_ids.append(student_id)
            note = "" if contact_id == guardian.contact_id else (
                f"Same guardian as contact {guardian.contact_id} (same email and name): one account.")
            add(PlanLine(student_id, contact_id, CREATE, "", "", note, "", key))
            continue
        account_id = account.id
        if not account.contact_id:
            adopted.setdefault(account_id, contact_id)
        accounts_by_id[account_id] = account
        if student_id in account.student_ids:
            add(PlanLine(student_id, contact_id, COMPLETE, account.username, "", "", account_id, account_id))
            continue
        add(PlanLine(student_id, contact_id, LINK, account.username, "", "", account_id, account_id))
        gained = gains.get(account_id)
        if gained is None:
            gained = gains[account_id] = LinkChange(account_id, account.username, [])
        if student_id not in gained.student_ids:
            gained.student_ids.append(student_id)
    for account_id, contact_id in adopted.items():
        change = gains.get(account_id)
        if change is None:
            account = accounts_by_id.get(account_id)
            if account is None:
                continue
            change = gains[account_id] = LinkChange(account_id, account.username, [])
        change.adopt_contact_id = contact_id
    selected_contacts = dict.fromkeys(line.contact_id for line in lines)
    duplicates = possible_duplicates((contacts[c] for c in selected_contacts), guardians.names)
    _mark_duplicates(lines, duplicates, contacts)
    shared = [SharedEmail(key, tuple(guardians.members[key]), "guardians") for key in sorted(guardians.shared)]
    for key in sorted(guardians.by_email):
        members = guardians.members.get(key)
        if members and guardians.non_guardian_owner(key) is not None and selected_contacts.keys() & set(members):
            shared.append(SharedEmail(key, tuple(members), "staff"))
    plan = GenerationPlan(lines, list(creates.values()), list(gains.values()), duplicates, shared)
    plan.counts = count(plan, snapshot)
    return plan


def _mark_duplicates(lines: list[PlanLine], groups: list[DuplicateGroup],
                     contacts: Mapping[str, RosterContact]) -> None:
    others: dict[str, tuple[str, ...]] = {}
    matched: dict[str, str] = {}
    for group in groups:
        for contact_id in group.contact_ids:
            others[contact_id] = tuple(c for c in group.contact_ids if c != contact_id)
            matched[contact_id] = group.matched_on
    if not others:
        return
    for line in lines:
        alike = others.get(line.contact_id)
        if alike is None:
            continue
        text = (f"Possible duplicate of contact {', '.join(alike)} (same name and {matched[line.contact_id]}, "
                "different email): not merged.")
        line.note = f"{line.note} {text}".strip()
        if line.action != SKIP:
            line.code = sc.W_POSSIBLE_DUPLICATE.code


def possible_duplicates(contacts: Iterable[RosterContact],
                        names: Mapping[str, str] | None = None) -> list[DuplicateGroup]:
    """Contact records with the same name and the same phone or address whose emails differ (a missing email
    counts as different): perhaps one person typed twice. Grouped transitively. `names`: name keys already
    known, by contact id."""
    by_name: dict[str, list[RosterContact]] = defaultdict(list)
    for contact in contacts:
        name = names[contact.id] if names is not None else name_key(contact.first_name, contact.last_name)
        if name:
            by_name[name].append(contact)
    by_phone: dict[tuple[str, str], list[RosterContact]] = defaultdict(list)
    by_address: dict[tuple[str, str], list[RosterContact]] = defaultdict(list)
    for name, alike in by_name.items():
        if len(alike) < 2:
            continue  # a name nobody else has: no duplicate (most contacts)
        for contact in alike:
            phone = phone_key(contact.phone)
            if phone:
                by_phone[(name, phone)].append(contact)
            place = address_key(contact.address)
            if place:
                by_address[(name, place)].append(contact)
    parent: dict[str, str] = {}

    def root(item: str) -> str:
        while parent.get(item, item) != item:
            parent[item] = parent.get(parent[item], parent[item])
            item = parent[item]
        return item

    how: dict[str, set[str]] = defaultdict(set)
    for label, groups in (("phone", by_phone), ("address", by_address)):
        for members in groups.values():
            if len(members) < 2 or len({m.email.strip().lower() for m in members}) < 2:
                continue
            first = root(members[0].id)
            for member in members:
                how[member.id].add(label)
                other = root(member.id)
                if other != first:
                    parent[other] = first
    components: dict[str, list[str]] = defaultdict(list)
    for contact_id in how:
        components[root(contact_id)].append(contact_id)
    found = []
    for members in components.values():
        labels = set().union(*(how[m] for m in members))
        found.append(DuplicateGroup(tuple(sorted(members)), " and ".join(sorted(labels, reverse=True))))
    return sorted(found, key=lambda g: g.contact_ids)


def count(plan: GenerationPlan, snapshot: RosterSnapshot) -> Counts:
    reasons: Counter[str] = Counter()
    served: set[str] = set()
    kept: set[str] = set()
    skipped: set[str] = set()
    complete = 0
    for line in plan.lines:
        if line.action == SKIP:
            reasons[line.code] += 1
            skipped.add(line.contact_id)
            continue
        served.add(line.student_id)
        kept.add(line.contact_id)
        if line.action == COMPLETE:
            complete += 1
    return Counts(
        students=len(snapshot.students), lines=len(plan.lines), accounts_to_create=len(plan.creates),
        accounts_gaining_students=sum(1 for change in plan.links if change.student_ids),
        links_to_add=sum(len(g.student_ids) for g in plan.creates) + sum(len(c.student_ids) for c in plan.links),
        complete=complete, skipped_lines=sum(reasons.values()), skipped_contacts=len(skipped - kept),
        students_without_account=len(snapshot.students.keys() - served), possible_duplicates=len(plan.duplicates),
        reasons=dict(sorted(reasons.items())))


def summary(counts: Counts) -> str:
    """The sentence at the top of a plan: "214 accounts will be created, 37 existing accounts gain a student, ..."."""
    def many(number: int, one: str, more: str) -> str:
        return f"{number:,} {one if number == 1 else more}"

    return ", ".join([
        many(counts.accounts_to_create, "account will be created", "accounts will be created"),
        many(counts.accounts_gaining_students, "existing account gains a student",
             "existing accounts gain a student"),
        many(counts.skipped_contacts, "contact skipped", "contacts skipped"),
    ])



def line_rows(snapshot: RosterSnapshot, plan: GenerationPlan, limit: int | None = None) -> list[list[str]]:
    """Each line (the first `limit`, or all) as the workbooks and the API show it: student id and name, contact id
    and name, relationship, email, action, username, code, note."""
    students, contacts = snapshot.students, snapshot.contacts
    rows = []
    pairs = zip(plan.lines, snapshot.links, strict=True)
    for line, link in (pairs if limit is None else itertools.islice(pairs, limit)):
        contact = contacts[line.contact_id]
        rows.append([line.student_id, students[line.student_id].name, line.contact_id, contact.name,
                     link.relationship, contact.email, line.action, line.username, line.code, line.note])
    return rows

# Usernames ------------------------------------------------------------------------------------------------------

def candidate_usernames(snapshot: RosterSnapshot) -> set[str]:
    """The username keys the email scheme may want (the store says which are taken)."""
    return {c.email.strip().lower() for c in snapshot.contacts.values() if c.email.strip()}


def username_bases(plan: GenerationPlan, scheme: str, taken: set[str]) -> set[str]:
    """The first-initial + last-name bases the plan may need (the store reads the usernames starting with them)."""
    bases = set()
    for guardian in plan.creates:
        if scheme == SCHEME_EMAIL:
            wanted = guardian.email_username()
            if wanted and wanted.lower() not in taken:
                continue
        bases.add(username_base(guardian.first_name, guardian.last_name))
    return bases


def assign_usernames(plan: GenerationPlan, scheme: str, taken: set[str]) -> None:
    """Give every new guardian a username that meets the rules and is unique (in `taken` and in this plan), in a
    stable order (by name, then email), and fill it into their lines. `taken` gains the usernames given."""
    counters: dict[str, int] = {}
    numbered_ones = plan.creates
    if scheme == SCHEME_EMAIL:
        numbered_ones = []
        for guardian in plan.creates:
            wanted = guardian.email_username()
            if wanted and wanted.lower() not in taken:
                guardian.username = wanted
                taken.add(wanted.lower())
                continue
            reason = "is taken by another account" if wanted else "holds characters usernames cannot"
            guardian.note = f"The email {reason}: username {{username}} given instead ({sc.W_USERNAME_FALLBACK.code})."
            numbered_ones.append(guardian)
    for guardian in sorted(numbered_ones, key=lambda g: (g.last_name.lower(), g.first_name.lower(), g.key)):
        guardian.username = next_username(username_base(guardian.first_name, guardian.last_name), taken, counters)
        guardian.note = guardian.note.replace("{username}", guardian.username)
    by_key = {g.key: g for g in plan.creates}
    for line in plan.lines:
        if line.action == CREATE:
            guardian = by_key[line.guardian]
            line.username = guardian.username
            if guardian.note and guardian.contact_id == line.contact_id:
                line.note = f"{guardian.note} {line.note}".strip()
                line.code = line.code or sc.W_USERNAME_FALLBACK.code


# The run: the plan shown, re-checked --------------------------------------------------------------------------

ShownLines = Mapping[tuple[str, str], tuple[str, str]]
DOING = (CREATE, LINK)


def shown_lines(plan: GenerationPlan) -> list[list[str]]:
    """What the run must know of a plan shown to staff: each line's student, contact, action and username."""
    return [[line.student_id, line.contact_id, line.action, line.username] for line in plan.lines]


def _change_message(planned: str, planned_username: str, line: PlanLine) -> tuple[bool, str]:
    """Whether a line that changed since the plan is applied, and what to tell staff."""
    if planned in DOING and line.action in DOING:
        if line.action == CREATE and planned == CREATE:
            return True, f"Username {line.username} instead of {planned_username} (taken since the plan)."
        if line.action == LINK and planned == CREATE:
            return True, f"An account ({line.username}) was made for this guardian since the plan: linked to it."
        if line.action == CREATE:
            return True, (f"The account {planned_username} is gone since the plan: a new account "
                          f"{line.username} is created instead.")
        return True, (f"Planned as a link to {planned_username}; the guardian's account is now {line.username}: "
                      "linked to it.")
    if planned in DOING and line.action == COMPLETE:
        return False, "Already done since the plan: nothing to do."
    if planned in DOING:
        return False, f"Not applied: now skipped ({line.code}). {line.note}".strip()
    if line.action in DOING:
        return False, "New since the plan, not applied: plan again to see it and run it."
    return False, ""


def restrict(fresh: GenerationPlan, shown: ShownLines) -> list[Change]:
    """Keep, of a fresh plan, only the creations and links the plan shown said (as the roster stands now), and
    list every line whose outcome changed in between. `fresh` is changed in place."""
    changes: list[Change] = []
    approved: set[tuple[str, str]] = set()
    seen: set[tuple[str, str]] = set()
    for line in fresh.lines:
        pair = (line.student_id, line.contact_id)
        seen.add(pair)
        planned, planned_username = shown.get(pair, ("", ""))
        same = planned == line.action and (planned_username == line.username or line.action == SKIP)
        if same:
            if line.action in DOING:
                approved.add(pair)
            continue
        applied, message = _change_message(planned or "", planned_username, line)
        if applied:
            approved.add(pair)
        if message:
            changes.append(Change(line.student_id, line.contact_id, planned or "not in the plan", line.action,
                                  applied, message))
    for pair, (planned, _username) in shown.items():
        if pair not in seen and planned in DOING:
            changes.append(Change(pair[0], pair[1], planned, "gone", False,
                                  "No longer in the selection or the roster: not applied."))
    keep_students: dict[str, set[str]] = defaultdict(set)
    known_accounts: set[str] = set()
    for line in fresh.lines:
        pair = (line.student_id, line.contact_id)
        if pair in approved:
            keep_students[line.guardian].add(line.student_id)
        elif line.action in DOING:
            line.code, line.note = sc.W_CHANGED_SINCE_PLAN.code, "Not applied: changed since the plan."
        if line.account_id and shown.get(pair, ("", ""))[0] in (LINK, COMPLETE):
            known_accounts.add(line.account_id)
    creates = []
    for guardian in fresh.creates:
        kept = keep_students.get(guardian.key, set())
        guardian.student_ids = [s for s in guardian.student_ids if s in kept]
        if guardian.student_ids:
            creates.append(guardian)
    links = []
    for change in fresh.links:
        kept = keep_students.get(change.account_id, set())
        change.student_ids = [s for s in change.student_ids if s in kept]
        if change.student_ids or (change.adopt_contact_id and change.account_id in known_accounts):
            links.append(change)
    fresh.creates, fresh.links = creates, links
    return changes


# Invitations ----------------------------------------------------------------------------------------------------

PENDING, DELIVERED, BOUNCED, FAILED, EXPIRED, ACCEPTED, NOT_SENT = (
    "pending", "delivered", "bounced", "failed", "expired", "accepted", "not_sent")
INVITATION_STATES = (PENDING, DELIVERED, BOUNCED, FAILED, EXPIRED, ACCEPTED, NOT_SENT)


def permanent_failure(last_error: str) -> bool:
    """A delivery failure that is the address's fault (a 5xx reply, a refused address): a bounce."""
    text = last_error.strip().lower()
    return bool(_PERMANENT_REPLY.match(text)) or text.startswith(("bad address", "not supported"))


def invitation_state(*, signed_in: bool, token_used: bool, emailed: bool, expired: bool, handed_over: bool,
                     delivery: str, last_error: str = "") -> str:
    """Where a guardian's latest invitation stands. `delivery` is notify's state of its email ("queued",
    "sending", "sent", "failed"; "" when notify does not have it yet)."""
    if signed_in or token_used:
        return ACCEPTED
    if not emailed:
        return NOT_SENT
    if delivery == "failed":
        return BOUNCED if permanent_failure(last_error) else FAILED
    if expired:
        return EXPIRED
    if not handed_over or delivery in ("queued", "sending"):
        return PENDING
    return DELIVERED
