"""The row planner on its own: every action and every status code a row can get, with handmade snapshots."""

from __future__ import annotations

from collections.abc import Iterable

from services.accounts.domain import AccountRow, AccountStatus, AccountType, RowAction
from services.accounts.planning import KnownAccount, KnownContact, Plan, Snapshot, lookups_for, plan_rows


def known(username: str, type: AccountType = AccountType.GUARDIAN, students: Iterable[str] = (), **fields: object) \
        -> KnownAccount:
    values: dict[str, object] = dict(
        id=f"id-{username.lower()}", username=username, first_name="Jane", last_name="Smith",
        email=f"{username.lower()}@example.org", type=type, status=AccountStatus.ACTIVE,
        must_change_password=False, contact_id="", signed_in=True, schools=frozenset(),
        student_ids=frozenset(students))
    values.update(fields)
    return KnownAccount(**values)  # type: ignore[arg-type]


def snapshot(accounts: Iterable[KnownAccount] = (), students: Iterable[str] = ("S1", "S2", "S3"),
             contacts: Iterable[KnownContact] = ()) -> Snapshot:
    accounts = list(accounts)
    owners: dict[str, list[str]] = {}
    for account in accounts:
        owners.setdefault(account.email.lower(), []).append(account.username)
    contacts = list(contacts)
    by_email: dict[str, list[str]] = {}
    for contact in contacts:
        by_email.setdefault(contact.email, []).append(contact.id)
    return Snapshot({a.username.lower(): a for a in accounts}, {k: tuple(v) for k, v in owners.items()},
                    frozenset(students), {c.id: c for c in contacts}, {k: tuple(v) for k, v in by_email.items()})


def row(number: int, username: str = "jsmith01", **fields: object) -> AccountRow:
    values: dict[str, object] = dict(first_name="Jane", last_name="Smith", email="jane@example.org")
    values.update(fields)
    return AccountRow(row_number=number, username=username, **values)  # type: ignore[arg-type]


def plan(rows: list[AccountRow], snap: Snapshot | None = None, invite: bool = False) -> Plan:
    return plan_rows(rows, snap or snapshot(), invite)


def codes(result_plan: Plan) -> list[list[str]]:
    return [[p.code for p in r.problems] for r in result_plan.results]


def test_a_new_account_is_created_with_its_students() -> None:
    result = plan([row(2, student_ids=("S1",), password="Tr4vel-Gecko")])
    assert result.results[0].action == RowAction.CREATE
    assert result.results[0].new_student_ids == ("S1",)
    create = result.creates[0]
    assert (create.username, create.type, create.status, create.must_change_password) == \
        ("jsmith01", AccountType.GUARDIAN, AccountStatus.INVITED, True)
    assert create.password_row == 2
    assert result.password_rows == {2}


def test_siblings_on_two_rows_are_one_account_linked_to_both() -> None:
    result = plan([row(2, "JSmith01", student_ids=("S1",)), row(3, "jsmith01", student_ids=("S2",))])
    assert [r.action for r in result.results] == [RowAction.CREATE, RowAction.LINK]
    assert [r.new_student_ids for r in result.results] == [("S1",), ("S2",)]
    assert len(result.creates) == 1
    assert result.creates[0].student_ids == ("S1", "S2")


def test_a_sibling_row_with_only_the_username_links_too() -> None:
    result = plan([row(2, student_ids=("S1",)), row(3, first_name="", last_name="", email="", student_ids=("S2",))])
    assert [r.action for r in result.results] == [RowAction.CREATE, RowAction.LINK]


def test_rows_of_one_username_that_disagree_are_all_errors() -> None:
    result = plan([row(2, first_name="Jane"), row(5, first_name="Janet", email="JANE@example.org")])
    assert codes(result) == [["E_DUPLICATE_CONFLICT"], ["E_DUPLICATE_CONFLICT"]]
    problem = result.results[0].problems[0]
    assert problem.field == "FIRST_NAME"
    assert problem.message == ("The username 'jsmith01' is on rows 2 and 5 whose FIRST_NAME disagree (FIRST_NAME: "
                               "Jane / Janet): make the rows agree (siblings share one parent's details) or use "
                               "different usernames.")
    assert result.creates == ()


def test_different_passwords_for_one_username_disagree_without_showing_them() -> None:
    result = plan([row(2, password="Tr4vel-Gecko"), row(3, password="Other-Pass9")])
    assert codes(result) == [["E_DUPLICATE_CONFLICT"], ["E_DUPLICATE_CONFLICT"]]
    assert "Gecko" not in result.results[0].problems[0].message
    assert "PASSWORD" in result.results[0].problems[0].message


def test_one_email_on_rows_with_different_usernames() -> None:
    result = plan([row(2, "jsmith01"), row(3, "janesmith", email="Jane@Example.org")])
    assert codes(result) == [["E_DUPLICATE_EMAIL"], ["E_DUPLICATE_EMAIL"]]
    assert result.results[1].problems[0].message == (
        "The email address 'jane@example.org' is on rows 2 and 3 with different usernames (janesmith, jsmith01): "
        "give one person one username, or correct the email.")


def test_an_email_already_held_by_another_account() -> None:
    result = plan([row(2, email="other01@example.org")], snapshot([known("other01")]))
    assert codes(result) == [["E_EMAIL_IN_USE"]]
    assert result.results[0].problems[0].message == (
        "The email address 'other01@example.org' already belongs to the account 'other01': use that account's "
        "username on this row, or correct the email.")


def test_a_username_held_by_a_staff_account_whatever_the_case_is_a_type_mismatch() -> None:
    result = plan([row(2, "JSMITH01", email="jsmith01@example.org")],
                  snapshot([known("jsmith01", AccountType.STAFF)]))
    assert codes(result) == [["E_TYPE_MISMATCH"]]
    assert result.results[0].problems[0].message == (
        "The username 'JSMITH01' already belongs to a staff account ('jsmith01'), and this row is for a guardian "
        "account: usernames are unique across the district whatever the type, so choose another username.")


def test_an_existing_account_gets_new_students_without_losing_the_first() -> None:
    result = plan([row(2, email="jsmith01@example.org", student_ids=("S1", "S2"))],
                  snapshot([known("jsmith01", students=("S1",))]))
    assert result.results[0].action == RowAction.LINK
    assert result.results[0].new_student_ids == ("S2",)
    assert result.updates[0].new_student_ids == ("S2",)
    assert result.creates == ()


def test_changed_details_are_an_update_naming_the_fields() -> None:
    result = plan([row(2, first_name="Janet", email="JSMITH01@example.org", enabled="N", school="North")],
                  snapshot([known("jsmith01")]))
    assert result.results[0].action == RowAction.UPDATE
    assert result.results[0].changed_fields == ("first_name", "schools", "status")
    update = result.updates[0]
    assert update.changes == {"first_name": "Janet", "status": AccountStatus.DISABLED}
    assert update.before == {"first_name": "Jane", "status": AccountStatus.ACTIVE}
    assert update.new_schools == ("North",)


def test_a_password_for_an_existing_account_is_an_update() -> None:
    result = plan([row(2, email="", password="Tr4vel-Gecko")], snapshot([known("jsmith01")]))
    assert result.results[0].changed_fields == ("must_change_password", "password")
    assert result.password_rows == {2}


def test_a_row_that_changes_nothing_is_unchanged() -> None:
    result = plan([row(2, email="jsmith01@example.org", student_ids=("S1",))],
                  snapshot([known("jsmith01", students=("S1",))]))
    assert result.results[0].action == RowAction.UNCHANGED
    assert codes(result) == [["W_UNCHANGED"]]
    assert result.updates == ()


def test_an_empty_template_row_is_skipped() -> None:
    result = plan([AccountRow(row_number=4, student_ids=("S1",))])
    assert result.results[0].action == RowAction.SKIP
    assert codes(result) == [["S_NO_ACCOUNT_WANTED"]]


def test_a_row_with_parent_data_but_no_username_is_an_error() -> None:
    result = plan([row(2, "")])
    assert codes(result) == [["E_REQUIRED"]]
    assert result.results[0].problems[0].field == "LOGONID"


def test_a_new_account_needs_both_names() -> None:
    result = plan([row(2, first_name="", last_name="")])
    assert codes(result) == [["E_REQUIRED", "E_REQUIRED"]]
    assert [p.field for p in result.results[0].problems] == ["FIRST_NAME", "LAST_NAME"]


def test_unknown_students_are_an_error_and_the_row_creates_nothing() -> None:
    result = plan([row(2, student_ids=("S1", "S404"))])
    assert codes(result) == [["E_STUDENT_UNKNOWN"]]
    assert result.results[0].problems[0].field == "STUDENT_IDS"
    assert result.creates == ()


def test_every_rule_broken_on_one_row_is_reported() -> None:
    result = plan([row(2, "abc", email="nope", password="short", type="teacher", enabled="perhaps",
                       must_change_password="x", first_name="A\tB")])
    assert sorted(codes(result)[0]) == sorted(["E_USERNAME_SHORT", "E_NAME_CHARS", "E_EMAIL_INVALID",
                                               "E_PASSWORD_RULES", "E_USER_TYPE", "E_FLAG_VALUE", "E_FLAG_VALUE"])


def test_invitations_only_for_new_accounts_without_a_password_and_with_an_email() -> None:
    result = plan([row(2, "parent01", email="p1@example.org"),
                   row(3, "parent02", email="p2@example.org", password="Tr4vel-Gecko"),
                   row(4, "parent03", email="")], invite=True)
    assert [r.invitation_queued for r in result.results] == [True, False, False]
    assert codes(result) == [[], [], ["W_NO_EMAIL"]]
    assert result.results[2].action == RowAction.CREATE


def test_the_roster_contact_is_found_by_email_and_a_no_contact_flag_stops_the_row() -> None:
    contacts = [KnownContact("C1", "jane@example.org", False), KnownContact("C2", "barred@example.org", True)]
    result = plan([row(2), row(3, "barred01", email="barred@example.org")], snapshot(contacts=contacts))
    assert result.creates[0].contact_id == "C1"
    assert codes(result) == [[], ["E_NO_CONTACT"]]


def test_lookups_name_every_key_the_rows_mention() -> None:
    lookups = lookups_for([row(2, " JSmith01 ", email="Jane@X.org", student_ids=("S1", " S2"), contact_id="C1")])
    assert lookups.username_keys == {"jsmith01"}
    assert lookups.email_keys == {"jane@x.org"}
    assert lookups.student_ids == {"S1", "S2"}
    assert lookups.contact_ids == {"C1"}


def test_student_links_rows_read_only_the_username_and_the_students() -> None:
    snap = snapshot([known("jsmith01", students=("S1",))])
    rows = [row(2, "JSMITH01", first_name="Other", email="x@example.org", password="weak", student_ids=("S2",)),
            row(3, "unknown01", student_ids=("S3",)), AccountRow(row_number=4)]
    result = plan_rows(rows, snap, send_invitations=True, links_only=True)
    assert [r.action for r in result.results] == [RowAction.LINK, RowAction.ERROR, RowAction.SKIP]
    assert codes(result) == [[], ["E_USERNAME_UNKNOWN"], ["S_NO_ACCOUNT_WANTED"]]
    assert result.updates[0].changes == {} and result.updates[0].new_student_ids == ("S2",)
    assert result.creates == () and result.password_rows == frozenset()
