"""The rules of generation, without a database: who counts, every skip reason, one account per guardian, usernames,
possible duplicates, the dashboard's lists, the run's re-check against the plan shown, and invitation states."""

from __future__ import annotations

import pytest

from plumbing import status_codes as sc
from services.accounts import generation_rules as gr
from services.accounts.roster_dashboard import roster_lists


def student(sid: str, last: str = "Smith") -> gr.RosterStudent:
    return gr.RosterStudent(sid, f"Kid{sid}", last, 2031, "7B", "Hillside")


def contact(cid: str, first: str = "Jane", last: str = "Smith", email: str = "", phone: str = "", address: str = "",
            no_contact: bool = False) -> gr.RosterContact:
    return gr.RosterContact(cid, first, last, email, phone, address, no_contact)


def link(sid: str, cid: str, pr: bool = True, primary: bool = True) -> gr.RosterLink:
    return gr.RosterLink(sid, cid, "mother", pr, primary)


def account(aid: str, username: str, email: str = "", kind: str = "guardian", contact_id: str = "",
            students: tuple[str, ...] = (), first: str = "Jane", last: str = "Smith") -> gr.ExistingAccount:
    return gr.ExistingAccount(aid, username, first, last, email.lower(), kind, contact_id, set(students))


def snapshot(students: list[gr.RosterStudent], contacts: list[gr.RosterContact], links: list[gr.RosterLink],
             accounts: list[gr.ExistingAccount] = (), taken: set[str] | None = None) -> gr.RosterSnapshot:
    return gr.RosterSnapshot({s.id: s for s in students}, list(links), {c.id: c for c in contacts}, list(accounts),
                             set(taken or {a.username.lower() for a in accounts}))


def planned(snap: gr.RosterSnapshot, who: str = gr.WHO_ALL, scheme: str = gr.SCHEME_EMAIL) -> gr.GenerationPlan:
    plan = gr.plan_generation(snap, who)
    taken = set(snap.taken)
    gr.assign_usernames(plan, scheme, taken)
    return plan


def by_pair(plan: gr.GenerationPlan) -> dict[tuple[str, str], gr.PlanLine]:
    return {(line.student_id, line.contact_id): line for line in plan.lines}


# Every skip reason ----------------------------------------------------------------------------------------------

def test_every_skip_reason_has_its_code_and_the_totals_count_them() -> None:
    students = [student(f"S{i}") for i in range(1, 9)]
    contacts = [
        contact("C1", email=""),                                      # no email
        contact("C2", email="pat@example.org"),                       # no parental responsibility
        contact("C3", email="lee@example.org"),                       # not primary (primary only)
        contact("C4", email="court@example.org", no_contact=True),    # court order
        contact("C5", email="teacher@school.example"),                # staff email
        contact("C6", first="Ann", email="family@example.org"),       # shared with a different guardian
        contact("C7", first="Bob", email="family@example.org"),
        contact("C8", email="not an email"),                          # invalid
    ]
    links = [link("S1", "C1"), link("S2", "C2", pr=False), link("S3", "C3", primary=False), link("S4", "C4"),
             link("S5", "C5"), link("S6", "C6"), link("S7", "C7"), link("S8", "C8")]
    staff = account("A1", "teacher01", "teacher@school.example", kind="staff")
    plan = planned(snapshot(students, contacts, links, [staff]), gr.WHO_PRIMARY)
    codes = {pair[1]: (line.action, line.code) for pair, line in by_pair(plan).items()}
    assert codes == {
        "C1": (gr.SKIP, sc.S_NO_EMAIL.code), "C2": (gr.SKIP, sc.S_NO_PARENTAL_RESPONSIBILITY.code),
        "C3": (gr.SKIP, sc.S_NOT_PRIMARY.code), "C4": (gr.SKIP, sc.S_COURT_ORDER.code),
        "C5": (gr.SKIP, sc.S_STAFF_EMAIL.code), "C6": (gr.SKIP, sc.S_SHARED_EMAIL.code),
        "C7": (gr.SKIP, sc.S_SHARED_EMAIL.code), "C8": (gr.SKIP, sc.S_INVALID_EMAIL.code),
    }
    assert "teacher01" in by_pair(plan)[("S5", "C5")].note
    assert "Bob Smith" in by_pair(plan)[("S6", "C6")].note
    counts = plan.counts
    assert counts.reasons == {sc.S_NO_EMAIL.code: 1, sc.S_NO_PARENTAL_RESPONSIBILITY.code: 1,
                              sc.S_NOT_PRIMARY.code: 1, sc.S_COURT_ORDER.code: 1, sc.S_STAFF_EMAIL.code: 1,
                              sc.S_SHARED_EMAIL.code: 2, sc.S_INVALID_EMAIL.code: 1}
    assert counts.skipped_lines == counts.skipped_contacts == 8
    assert counts.accounts_to_create == 0 and counts.students_without_account == 8
    assert [shared.kind for shared in plan.shared_emails] == ["guardians", "staff"]
    for code in counts.reasons:
        assert sc.lookup(code).code.startswith("S_")


def test_a_court_order_on_the_same_person_elsewhere_blocks_every_record_of_them() -> None:
    contacts = [contact("C1", email="dad@example.org"), contact("C2", email="dad@example.org", no_contact=True)]
    plan = planned(snapshot([student("S1"), student("S2")], contacts, [link("S1", "C1"), link("S2", "C2")]))
    assert [(line.action, line.code) for line in plan.lines] == [(gr.SKIP, sc.S_COURT_ORDER.code)] * 2
    assert "C2" in plan.lines[0].note and not plan.creates


def test_all_contacts_versus_primary_contacts_only() -> None:
    contacts = [contact("C1", "Jane", email="jane@example.org"), contact("C2", "John", email="john@example.org")]
    snap = snapshot([student("S1")], contacts, [link("S1", "C1", primary=True), link("S1", "C2", primary=False)])
    everyone = planned(snap, gr.WHO_ALL)
    assert [line.action for line in everyone.lines] == [gr.CREATE, gr.CREATE]
    assert everyone.counts.accounts_to_create == 2
    primary = planned(snap, gr.WHO_PRIMARY)
    assert [(line.action, line.code) for line in primary.lines] == [(gr.CREATE, ""),
                                                                    (gr.SKIP, sc.S_NOT_PRIMARY.code)]
    assert primary.counts.accounts_to_create == 1 and primary.counts.skipped_contacts == 1


# One account per guardian ---------------------------------------------------------------------------------------

def test_siblings_sharing_a_contact_get_one_account_linked_to_both() -> None:
    plan = planned(snapshot([student("S1"), student("S2")], [contact("C1", email="jane@example.org")],
                            [link("S1", "C1"), link("S2", "C1")]))
    assert len(plan.creates) == 1
    assert plan.creates[0].student_ids == ["S1", "S2"] and plan.creates[0].username == "jane@example.org"
    assert [line.username for line in plan.lines] == ["jane@example.org"] * 2
    assert plan.counts.accounts_to_create == 1 and plan.counts.links_to_add == 2


def test_two_contact_records_with_one_email_are_one_guardian() -> None:
    contacts = [contact("C1", "Jane", email="Jane@Example.org"), contact("C2", "jane ", email="jane@example.org")]
    plan = planned(snapshot([student("S1"), student("S2")], contacts, [link("S1", "C1"), link("S2", "C2")]))
    assert len(plan.creates) == 1
    assert plan.creates[0].contact_ids == ["C1", "C2"] and plan.creates[0].student_ids == ["S1", "S2"]
    assert "Same guardian as contact C1" in by_pair(plan)[("S2", "C2")].note


def test_an_existing_account_gains_the_new_sibling_and_keeps_the_first() -> None:
    existing = account("A1", "jane@example.org", "jane@example.org", contact_id="C1", students=("S1",))
    plan = planned(snapshot([student("S1"), student("S2")], [contact("C1", email="jane@example.org")],
                            [link("S1", "C1"), link("S2", "C1")], [existing]))
    assert [line.action for line in plan.lines] == [gr.COMPLETE, gr.LINK]
    assert not plan.creates
    assert [(c.account_id, c.student_ids) for c in plan.links] == [("A1", ["S2"])]
    assert plan.counts.accounts_gaining_students == 1 and plan.counts.complete == 1


def test_an_account_found_by_email_is_linked_and_remembers_its_contact() -> None:
    existing = account("A1", "jsmith01", "jane@example.org")
    plan = planned(snapshot([student("S1")], [contact("C1", email="jane@example.org")], [link("S1", "C1")],
                            [existing]))
    assert plan.lines[0].action == gr.LINK and plan.lines[0].username == "jsmith01"
    assert plan.links[0].adopt_contact_id == "C1"


def test_an_email_held_by_another_persons_account_is_a_shared_email() -> None:
    someone = account("A1", "bob.jones", "family@example.org", first="Bob", last="Jones")
    plan = planned(snapshot([student("S1")], [contact("C1", email="family@example.org")], [link("S1", "C1")],
                            [someone]))
    assert (plan.lines[0].action, plan.lines[0].code) == (gr.SKIP, sc.S_SHARED_EMAIL.code)
    assert "bob.jones" in plan.lines[0].note


def test_an_account_made_for_the_contact_counts_even_when_its_email_changed() -> None:
    existing = account("A1", "old@example.org", "old@example.org", contact_id="C1", students=("S1",))
    contacts = [contact("C1", email="new@example.org"), contact("C2", email="new@example.org")]
    plan = planned(snapshot([student("S1"), student("S2")], contacts, [link("S1", "C1"), link("S2", "C2")],
                            [existing]))
    assert [(line.action, line.username) for line in plan.lines] == [(gr.COMPLETE, "old@example.org"),
                                                                     (gr.LINK, "old@example.org")]


def test_possible_duplicates_are_reported_and_never_merged() -> None:
    contacts = [contact("C1", email="jane@example.org", phone="(555) 010-1234"),
                contact("C2", email="jane.smith@work.example", phone="555 010 1234"),
                contact("C3", first="Jané", email="", address="1 High St."),
                contact("C4", first="jane", email="x@example.org", address="1 high st")]
    links = [link("S1", "C1"), link("S2", "C2"), link("S3", "C3"), link("S3", "C4")]
    plan = planned(snapshot([student("S1"), student("S2"), student("S3")], contacts, links))
    assert [(g.contact_ids, g.matched_on) for g in plan.duplicates] == [(("C1", "C2"), "phone"),
                                                                       (("C3", "C4"), "address")]
    assert len(plan.creates) == 3  # C1, C2 and C4: nothing merged (C3 has no email)
    line = by_pair(plan)[("S1", "C1")]
    assert line.code == sc.W_POSSIBLE_DUPLICATE.code and "C2" in line.note
    assert plan.counts.possible_duplicates == 2


def test_the_same_name_and_phone_with_the_same_email_is_one_guardian_not_a_duplicate() -> None:
    contacts = [contact("C1", email="jane@example.org", phone="5550101234"),
                contact("C2", email="jane@example.org", phone="5550101234")]
    plan = planned(snapshot([student("S1"), student("S2")], contacts, [link("S1", "C1"), link("S2", "C2")]))
    assert not plan.duplicates and len(plan.creates) == 1


# Usernames ------------------------------------------------------------------------------------------------------

def test_initial_and_last_name_usernames_are_unique_across_the_district() -> None:
    contacts = [contact("C1", "Jane", "Smith", "a@example.org"), contact("C2", "John", "Smith", "b@example.org"),
                contact("C3", "José", "O'Brien", "c@example.org"), contact("C4", "Li", "Wu", "d@example.org")]
    students = [student(f"S{i}") for i in range(1, 5)]
    links = [link(f"S{i}", f"C{i}") for i in range(1, 5)]
    staff = account("A1", "JSmith", "staff@school.example", kind="staff")
    plan = planned(snapshot(students, contacts, links, [staff]), scheme=gr.SCHEME_INITIAL)
    names = {g.contact_id: g.username for g in plan.creates}
    assert names == {"C1": "jsmith2", "C2": "jsmith3", "C3": "jobrien", "C4": "lwu001"}


@pytest.mark.parametrize(("base", "taken", "expected"), [
    ("jsmith", set(), "jsmith"), ("jsmith", {"jsmith"}, "jsmith2"), ("jsmith", {"jsmith", "jsmith2"}, "jsmith3"),
    ("lwu", set(), "lwu001"), ("lwu", {"lwu001"}, "lwu002"), ("ab", set(), "ab0001"),
])
def test_numbered_usernames(base: str, taken: set[str], expected: str) -> None:
    assert gr.next_username(base, set(taken), {}) == expected


def test_the_email_scheme_falls_back_when_the_email_cannot_be_the_username() -> None:
    contacts = [contact("C1", "Jane", "Smith", "jane+kids@example.org"),
                contact("C2", "Paul", "Jones", "paul@example.org")]
    holder = account("A1", "paul@example.org", "paul.jones@other.example", first="Paula", last="Jones")
    plan = planned(snapshot([student("S1"), student("S2")], contacts, [link("S1", "C1"), link("S2", "C2")],
                            [holder]))
    names = {g.contact_id: g.username for g in plan.creates}
    assert names == {"C1": "jsmith", "C2": "pjones"}
    line = by_pair(plan)[("S1", "C1")]
    assert line.code == sc.W_USERNAME_FALLBACK.code and "characters" in line.note


def test_username_bases_are_only_asked_for_when_needed() -> None:
    snap = snapshot([student("S1")], [contact("C1", email="jane@example.org")], [link("S1", "C1")])
    plan = gr.plan_generation(snap, gr.WHO_ALL)
    assert gr.username_bases(plan, gr.SCHEME_EMAIL, set()) == set()
    assert gr.username_bases(plan, gr.SCHEME_EMAIL, {"jane@example.org"}) == {"jsmith"}
    assert gr.username_bases(plan, gr.SCHEME_INITIAL, set()) == {"jsmith"}


# The run against the plan shown ---------------------------------------------------------------------------------

def test_restrict_keeps_what_was_shown_and_reports_what_changed() -> None:
    students = [student(f"S{i}") for i in range(1, 5)]
    contacts = [contact("C1", email="a@example.org"), contact("C2", "Bo", email="b@example.org"),
                contact("C3", "Cy", email=""), contact("C4", "Di", email="d@example.org")]
    before = planned(snapshot(students, contacts, [link("S1", "C1"), link("S2", "C2"), link("S3", "C3")]))
    shown = {(s, c): (action, user) for s, c, action, user in gr.shown_lines(before)}
    # Since the plan: C2's email is now a staff member's; C3 got an email; a new relationship S4-C4 appeared.
    contacts[2] = contact("C3", "Cy", email="c@example.org")
    staff = account("A9", "bdavis", "b@example.org", kind="staff")
    fresh = planned(snapshot(students, contacts, [link("S1", "C1"), link("S2", "C2"), link("S3", "C3"),
                                                  link("S4", "C4")], [staff]))
    changes = gr.restrict(fresh, shown)
    assert [g.contact_id for g in fresh.creates] == ["C1"]
    by_contact = {c.contact_id: c for c in changes}
    assert set(by_contact) == {"C2", "C3", "C4"}
    assert not by_contact["C2"].applied and sc.S_STAFF_EMAIL.code in by_contact["C2"].message
    assert not by_contact["C3"].applied and "New since the plan" in by_contact["C3"].message
    assert by_contact["C4"].planned == "not in the plan"


def test_restrict_applies_a_creation_as_a_link_when_the_account_appeared_meanwhile() -> None:
    snap = snapshot([student("S1")], [contact("C1", email="a@example.org")], [link("S1", "C1")])
    shown = {(s, c): (a, u) for s, c, a, u in gr.shown_lines(planned(snap))}
    made = account("A1", "a@example.org", "a@example.org", contact_id="C1")
    fresh = planned(snapshot([student("S1")], [contact("C1", email="a@example.org")], [link("S1", "C1")], [made]))
    changes = gr.restrict(fresh, shown)
    assert not fresh.creates and [c.student_ids for c in fresh.links] == [["S1"]]
    assert changes[0].applied and "linked to it" in changes[0].message


def test_restrict_of_an_unchanged_plan_changes_nothing() -> None:
    snap = snapshot([student("S1"), student("S2")], [contact("C1", email="a@example.org")],
                    [link("S1", "C1"), link("S2", "C1")])
    first = planned(snap)
    shown = {(s, c): (a, u) for s, c, a, u in gr.shown_lines(first)}
    fresh = planned(snap)
    assert gr.restrict(fresh, shown) == []
    assert [(g.username, g.student_ids) for g in fresh.creates] == [("a@example.org", ["S1", "S2"])]


# The dashboard and the summary ----------------------------------------------------------------------------------

def test_dashboard_lists() -> None:
    students = [student("S1"), student("S2"), student("S3")]
    contacts = [contact("C1", email=""), contact("C2", email="a@example.org"), contact("C3", email="a@example.org",
                                                                                        first="Al")]
    snap = snapshot(students, contacts, [link("S1", "C1"), link("S2", "C2", pr=False), link("S3", "C3")])
    lists = roster_lists(snap, planned(snap))
    counts = {name: len(found.rows) for name, found in lists.items()}
    assert counts == {"students_without_account": 3, "missing_email": 1, "no_parental_responsibility": 1,
                      "shared_email": 1, "staff_email": 0, "possible_duplicates": 0, "invalid_email": 0,
                      "court_order": 0}
    assert lists["missing_email"].rows[0][:2] == ("C1", "Jane Smith")


def test_summary_sentence() -> None:
    counts = gr.Counts(accounts_to_create=214, accounts_gaining_students=37, skipped_contacts=12)
    assert gr.summary(counts) == ("214 accounts will be created, 37 existing accounts gain a student, "
                                  "12 contacts skipped")
    assert gr.summary(gr.Counts(accounts_to_create=1, accounts_gaining_students=1, skipped_contacts=1)) == (
        "1 account will be created, 1 existing account gains a student, 1 contact skipped")


# Invitations ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("facts", "state"), [
    ({"signed_in": True}, gr.ACCEPTED), ({"token_used": True}, gr.ACCEPTED), ({"emailed": False}, gr.NOT_SENT),
    ({"handed_over": False}, gr.PENDING), ({"delivery": "queued"}, gr.PENDING), ({"delivery": "sent"}, gr.DELIVERED),
    ({"delivery": "failed", "last_error": "550 5.1.1 no such user"}, gr.BOUNCED),
    ({"delivery": "failed", "last_error": "bad address: newline"}, gr.BOUNCED),
    ({"delivery": "failed", "last_error": "gave up after 9 attempts over 24.0 h: 451 try later"}, gr.FAILED),
    ({"expired": True, "delivery": "sent"}, gr.EXPIRED),
    ({"expired": True, "delivery": "failed", "last_error": "550 no"}, gr.BOUNCED),
])
def test_invitation_states(facts: dict, state: str) -> None:
    given = {"signed_in": False, "token_used": False, "emailed": True, "expired": False, "handed_over": True,
             "delivery": "sent", "last_error": ""}
    given.update(facts)
    assert gr.invitation_state(**given) == state


@pytest.mark.parametrize("email", ["jane@example.org", "Jane.Smith+kids@example.co.uk", "not an email", "a@b",
                                   "x@localhost", "jean@exämple.fr", "a" * 250 + "@example.org", "bob@test",
                                   "o'brien@example.ie", "two@@example.org"])
def test_the_fast_email_check_agrees_with_the_rules(email: str) -> None:
    from services.accounts import rules

    assert rules.email_is_valid(email) == (not rules.check_email(email)[1])
