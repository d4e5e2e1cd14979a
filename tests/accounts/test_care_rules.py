"""The pure rules of account care: policies (school over district, the strictest across schools, value checks),
permissions, and contact drift."""

from __future__ import annotations

from services.accounts.drift_rules import Drift, Pair, account_values, blocked_reason, drift_of
from services.accounts.policy_rules import (
    BUILT_IN,
    PERMISSIONS,
    PolicyBook,
    PolicyValues,
    changed_permissions,
    check_permissions,
    check_values,
    decode_permissions,
    encode_permissions,
)

BOOK = PolicyBook(
    district=PolicyValues(min_password_length=10, invite_expiry_days=14),
    schools={"north high": PolicyValues(two_factor="required", invite_expiry_days=3,
                                        default_permissions=("grades", "attendance")),
             "hillside": PolicyValues(must_change_password=False, min_password_length=12,
                                      default_permissions=("grades", "reports"))},
)


def test_a_school_overrides_the_district_which_overrides_the_built_in_default() -> None:
    north = BOOK.for_school("North High")
    assert (north.two_factor, north.invite_expiry_days, north.min_password_length, north.must_change_password) == (
        "required", 3, 10, True)
    assert dict(north.sources) == {"two_factor": "North High", "invite_expiry_days": "North High",
                                   "min_password_length": "district", "must_change_password": "built-in default",
                                   "default_permissions": "North High"}
    assert PolicyBook().for_schools(()).values == BUILT_IN


def test_with_children_in_two_schools_the_stricter_value_wins() -> None:
    both = BOOK.for_schools(["Hillside", "North High"])
    assert both.two_factor == "required" and both.sources["two_factor"] == "North High"
    assert both.min_password_length == 12 and both.sources["min_password_length"] == "Hillside"
    assert both.invite_expiry_days == 3
    # Must change beats not: North High follows the built-in "yes".
    assert both.must_change_password is True
    # Default permissions: only what both schools grant.
    assert both.default_permissions == ("grades",)
    assert both.schools == ("Hillside", "North High")


def test_values_out_of_range_are_refused_naming_the_fix() -> None:
    problems = check_values(PolicyValues(min_password_length=5, invite_expiry_days=61, two_factor="always",
                                         default_permissions=("grades", "homework")),
                            ["min_password_length", "invite_expiry_days", "two_factor", "default_permissions"])
    messages = [p.message for p in problems]
    assert messages[0] == ("min_password_length must be from 8 to 64 characters; 5 is out of range: choose a number "
                           "from 8 to 64.")
    assert "invite_expiry_days must be from 1 to 60 days; 61 is out of range" in messages[1]
    assert messages[2] == "two_factor must be off, optional or required, not 'always'."
    assert "'homework' is not a permission: use grades, attendance, reports or messages" in messages[3]
    assert {p.code for p in problems} == {"E_POLICY_VALUE", "E_PERMISSION_UNKNOWN"}
    assert check_values(PolicyValues(min_password_length=64, invite_expiry_days=1), ["min_password_length",
                                                                                     "invite_expiry_days"]) == []
    assert check_values(PolicyValues(), ["colour"])[0].message.startswith("'colour' is not a policy setting")


def test_permissions_are_stored_in_one_order_and_changed_by_name() -> None:
    assert encode_permissions(["messages", "grades", "nonsense"]) == "grades,messages"
    assert decode_permissions("messages,grades") == ("grades", "messages")
    assert decode_permissions(None) == ()
    assert changed_permissions(PERMISSIONS, ["grades"], ["messages"]) == ("grades", "attendance", "reports")
    assert check_permissions([" Grades ", "REPORTS"], "grant") == (("grades", "reports"), [])
    assert check_permissions(["gradez"], "grant")[1][0].field == "grant"


def pair(**changes: object) -> Pair:
    values: dict[str, object] = dict(
        account_id="a1", username="jane@old.example", first_name="Jane", last_name="Smith",
        email="jane@old.example", contact_id="C1", contact_first_name="Jane", contact_last_name="Smith",
        contact_email="jane@old.example")
    values.update(changes)
    return Pair(**values)  # type: ignore[arg-type]


def test_an_account_matching_its_contact_does_not_drift() -> None:
    assert drift_of(pair(), "email") == ()
    assert drift_of(pair(contact_email="JANE@old.example"), "email") == ()
    # A contact whose email was removed leaves the account alone.
    assert drift_of(pair(contact_email=""), "email") == ()


def test_a_new_email_drifts_and_the_email_username_follows_under_the_email_scheme() -> None:
    fields = drift_of(pair(contact_email="jane@new.example", contact_last_name="Jones"), "email")
    assert [(f.field, f.account_value, f.contact_value) for f in fields] == [
        ("email", "jane@old.example", "jane@new.example"), ("last_name", "Smith", "Jones"),
        ("username", "jane@old.example", "jane@new.example")]
    assert account_values(Drift(pair(), fields)) == {
        "email": "jane@new.example", "email_key": "jane@new.example", "last_name": "Jones", "last_name_key": "jones",
        "username": "jane@new.example", "username_key": "jane@new.example"}
    # Under the other scheme, or for a username that is no email, the username stays.
    assert [f.field for f in drift_of(pair(contact_email="jane@new.example"), "initial_lastname")] == ["email"]
    assert [f.field for f in drift_of(pair(username="jsmith01", contact_email="jane@new.example"), "email")] == [
        "email"]


def test_applying_waits_when_the_new_email_or_username_belongs_to_someone_else() -> None:
    drift = Drift(pair(), drift_of(pair(contact_email="taken@example.org"), "email"))
    assert blocked_reason(drift, "other01", "taken@example.org") == (
        "the email taken@example.org belongs to the account other01 and the username taken@example.org is taken by "
        "the account taken@example.org")
    assert blocked_reason(drift, None, None) == ""
