"""The pure rules, one by one, with the exact sentence staff see."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from email_validator import EmailNotValidError, validate_email

from services.accounts import codec, credentials, roster_rules, rules, throttling
from services.accounts.domain import (
    Account,
    AccountStatus,
    AccountType,
    BatchResult,
    Contact,
    Problem,
    Relationship,
    RowAction,
    RowResult,
    Student,
    TwoFactor,
)

# Usernames ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "code", "message"), [
    ("", "E_REQUIRED", "The username is missing: type a username of at least 6 characters."),
    ("   ", "E_REQUIRED", "The username is missing: type a username of at least 6 characters."),
    ("abc", "E_USERNAME_SHORT",
     "The username 'abc' has only 3 characters: use at least 6 (usernames are not case-sensitive)."),
    ("a", "E_USERNAME_SHORT",
     "The username 'a' has only 1 character: use at least 6 (usernames are not case-sensitive)."),
    ("jo smith", "E_USERNAME_CHARS",
     "The username 'jo smith' contains a space: usernames cannot contain spaces (use . _ or - instead)."),
    ("jsmith\t01", "E_USERNAME_CHARS",
     "The username contains a control character (such as a tab or a line break): retype it using letters a-z, "
     "digits and . _ - @ only."),
    ("jsmith\u200b01", "E_USERNAME_CHARS",
     "The username contains a control character (such as a tab or a line break): retype it using letters a-z, "
     "digits and . _ - @ only."),
    ("jsmith!#", "E_USERNAME_CHARS",
     "The username 'jsmith!#' contains '!#': use letters a-z, digits and . _ - @ only."),
    ("x" * 151, "E_USERNAME_CHARS", "The username has 151 characters: use at most 150."),
])
def test_a_bad_username_is_named_with_its_fix(raw: str, code: str, message: str) -> None:
    _value, problems = rules.check_username(raw, "LOGONID")
    assert problems == [Problem(code, "LOGONID", message)]


@pytest.mark.parametrize("raw", ["jsmith", "J.Smith-01", "jane_doe@example.org", "  padded01  ", "x" * 150])
def test_good_usernames_pass_trimmed(raw: str) -> None:
    value, problems = rules.check_username(raw)
    assert problems == []
    assert value == raw.strip()


def test_username_keys_ignore_case_and_surrounding_spaces() -> None:
    assert rules.username_key("  JSmith01 ") == rules.username_key("jsmith01") == "jsmith01"


# Passwords ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("password", "said"), [
    ("Ab1", "is too short (3 characters)"),
    ("abcdefg1", "has no upper-case letter"),
    ("ABCDEFG1", "has no lower-case letter"),
    ("Abcdefgh", "has no digit"),
    ("abcdefgh", "has no upper-case letter and has no digit"),
    ("abc", "is too short (3 characters), has no upper-case letter and has no digit"),
])
def test_password_composition_rules_say_what_is_missing(password: str, said: str) -> None:
    assert rules.check_password(password, "jsmith01") == [Problem(
        "E_PASSWORD_RULES", "password",
        f"The password needs at least 8 characters with an upper-case letter, a lower-case letter and a digit; "
        f"this one {said}.")]


def test_the_username_itself_is_refused_as_a_password_whatever_the_case() -> None:
    assert rules.check_password("JSmith2024", "jsmith2024") == [Problem(
        "E_PASSWORD_COMMON", "password", "The password is the same as the username: choose a different one.")]


@pytest.mark.parametrize("password", ["Password1", "Welcome123", "Qwerty123", "Summer2024", "Passw0rd"])
def test_common_passwords_are_refused(password: str) -> None:
    assert rules.check_password(password, "jsmith01") == [Problem(
        "E_PASSWORD_COMMON", "password", "The password is one of the most common passwords, the first ones "
        "attackers try: choose one nobody would guess.")]


def test_the_common_password_list_is_a_few_hundred_lower_cased_entries() -> None:
    assert 300 <= len(rules.COMMON_PASSWORDS) <= 2000
    assert all(p == p.lower() and p.strip() == p for p in rules.COMMON_PASSWORDS)


def test_a_good_password_passes_and_an_empty_one_is_left_to_the_caller() -> None:
    assert rules.check_password("Tr4vel-Gecko", "jsmith01") == []
    assert rules.check_password("", "jsmith01") == []


def test_overlong_passwords_are_refused() -> None:
    assert rules.check_password("Aa1" + "x" * 300, "jsmith01")[0].message == \
        "The password is 303 characters long: use at most 256."


# Emails -------------------------------------------------------------------------------------------------------------


def test_email_is_trimmed_kept_as_given_and_optional() -> None:
    assert rules.check_email("  Jane.Doe@Example.ORG ") == ("Jane.Doe@Example.ORG", [])
    assert rules.check_email("") == ("", [])
    assert rules.email_key(" Jane.Doe@Example.ORG") == "jane.doe@example.org"


def test_a_bad_email_says_why() -> None:
    assert rules.check_email("jane@example", "EMAIL") == ("jane@example", [Problem(
        "E_EMAIL_INVALID", "EMAIL", "The email address 'jane@example' is not valid: The part after the @-sign is "
        "not valid. It should have a period. Correct it (name@example.org).")])


def test_an_overlong_email_is_too_long() -> None:
    email = "a" * 60 + "@" + "b" * 200 + ".org"
    assert rules.check_email(email)[1][0].code == "E_FIELD_TOO_LONG"


SAMPLES = [
    "jane@example.org", "Jane.Doe@Example.COM", "a@x.o", "j+tag@school.k12.us", "o'brien@mail.ie",
    "x@localhost", "x@foo.test", "x@foo.local", "a..b@x.org", ".a@x.org", "a.@x.org", "jane@exa_mple.org",
    "j@x.123", "jane@-x.org", "jane@x-.org", '"q"@x.org', "jane@xn--bcher-kva.example", "jane@ab--cd.org",
    "jane@@x.org", "jane x@x.org", "jané@example.org", "jane@exämple.org", "a" * 64 + "@x.org",
    "a" * 65 + "@x.org", "jane@" + "d" * 63 + ".org", "jane@" + "d" * 64 + ".org", "{}@x.org", "a@b",
    "a@x.onion", "a@1.2.3.4", "a@[1.2.3.4]", "user@sub.domain.co.uk", "first_last@domain.travel",
]


@pytest.mark.parametrize("email", SAMPLES)
def test_the_fast_path_agrees_with_email_validator(email: str) -> None:
    try:
        validate_email(email, check_deliverability=False)
        expected = True
    except EmailNotValidError:
        expected = False
    assert (rules.check_email(email)[1] == []) is expected
    if rules._plain_email(email):
        assert expected, "the fast path accepted what email-validator refuses"


# Names, flags, types, ids -------------------------------------------------------------------------------------------


def test_names() -> None:
    assert rules.check_name(" Jane ", "FIRST_NAME", "first name") == ("Jane", [])
    assert rules.check_name("", "FIRST_NAME", "first name", required=True) == ("", [Problem(
        "E_REQUIRED", "FIRST_NAME", "The first name is missing: a new account needs the holder's first name.")])
    assert rules.check_name("Ja\nne", "FIRST_NAME", "first name")[1] == [Problem(
        "E_NAME_CHARS", "FIRST_NAME", "The first name contains a control character (such as a tab or a line "
        "break): retype it.")]
    assert rules.check_name("x" * 101, "LAST_NAME", "last name")[1] == [Problem(
        "E_FIELD_TOO_LONG", "LAST_NAME", "The last name has 101 characters: shorten it to at most 100.")]


@pytest.mark.parametrize(("raw", "value"), [("", None), ("Y", True), ("yes", True), ("N", False), (" n ", False),
                                            ("TRUE", True), ("0", False)])
def test_yes_no_flags(raw: str, value: bool | None) -> None:
    assert rules.parse_flag(raw, "ENABLED", "ENABLED") == (value, [])


def test_a_bad_flag_value() -> None:
    assert rules.parse_flag("maybe", "ENABLED", "ENABLED") == (None, [Problem(
        "E_FLAG_VALUE", "ENABLED", "ENABLED holds 'maybe': write Y or N, or leave it empty.")])


def test_account_types() -> None:
    assert rules.parse_type("") == (None, [])
    assert rules.parse_type("Guardian")[0] == AccountType.GUARDIAN
    assert rules.parse_type("PARENT")[0] == AccountType.GUARDIAN
    assert rules.parse_type("staff")[0] == AccountType.STAFF
    assert rules.parse_type("teacher", "USER_TYPE") == (None, [Problem(
        "E_USER_TYPE", "USER_TYPE", "'teacher' is not an account type: use GUARDIAN, STUDENT or STAFF (empty means "
        "GUARDIAN).")])


def test_ids_are_trimmed_deduplicated_in_order() -> None:
    assert rules.clean_ids([" S2", "S1", "", "S2", "S3 "]) == ("S2", "S1", "S3")


def test_unknown_students_are_listed() -> None:
    assert rules.unknown_students_problem(["S9"]).message == \
        "Student id S9 is not in the roster: check the id, or import the roster first."
    assert rules.unknown_students_problem(["S9", "S8"]).message == \
        "Student ids S8, S9 are not in the roster: check the id, or import the roster first."


# Throttling ---------------------------------------------------------------------------------------------------------

T0 = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
LIMIT = throttling.Limit(3, timedelta(minutes=15), timedelta(minutes=10))


def test_failures_lock_at_the_limit_and_the_lock_lifts() -> None:
    counter = throttling.Counter()
    for minute in range(3):
        counter = throttling.after_failure(counter, LIMIT, T0 + timedelta(minutes=minute))
    assert counter.failures == 3
    assert throttling.retry_after(counter, T0 + timedelta(minutes=2)) == 600
    assert throttling.retry_after(counter, T0 + timedelta(minutes=11, seconds=59.5)) == 1
    later = T0 + timedelta(minutes=12)
    assert throttling.retry_after(counter, later) == 0
    assert throttling.after_lockout_passed(counter, later) == throttling.Counter()


def test_failures_outside_the_window_start_a_new_count() -> None:
    counter = throttling.after_failure(throttling.Counter(), LIMIT, T0)
    counter = throttling.after_failure(counter, LIMIT, T0 + timedelta(minutes=1))
    counter = throttling.after_failure(counter, LIMIT, T0 + timedelta(minutes=20))
    assert counter == throttling.Counter(1, T0 + timedelta(minutes=20), None)


# Secrets ------------------------------------------------------------------------------------------------------------


def test_tokens_are_random_or_derived_and_only_their_digest_is_kept() -> None:
    assert credentials.new_token() != credentials.new_token()
    assert len(credentials.new_token()) >= 43
    assert credentials.new_token("key", "req-1", "jsmith01") == credentials.new_token("key", "req-1", "jsmith01")
    assert credentials.new_token("key", "req-1", "jsmith01") != credentials.new_token("key", "req-2", "jsmith01")
    assert credentials.new_token("key", "req-1") != credentials.new_token("other", "req-1")
    assert len(credentials.digest("abc")) == 64


def test_totp_codes_match_within_drift_and_never_twice() -> None:
    secret = credentials.new_totp_secret()
    code = credentials.totp_code(secret, T0)
    step = credentials.matching_totp_step(secret, code, T0 + timedelta(seconds=20), 0)
    assert step is not None
    assert credentials.matching_totp_step(secret, code, T0, step) is None
    assert credentials.matching_totp_step(secret, code, T0 + timedelta(minutes=5), 0) is None
    assert credentials.matching_totp_step(secret, "12345", T0, 0) is None
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    assert credentials.matching_totp_step(secret, wrong, T0, 0) is None


def test_recovery_codes() -> None:
    codes = credentials.new_recovery_codes()
    assert len(set(codes)) == 10
    assert all(credentials.looks_like_recovery_code(c) for c in codes)
    assert credentials.recovery_digest(codes[0].upper().replace("-", " ")) == credentials.recovery_digest(codes[0])
    assert credentials.new_recovery_codes("k", "r1") == credentials.new_recovery_codes("k", "r1")
    assert not credentials.looks_like_recovery_code("123456")


def test_otpauth_uri_names_the_school_as_issuer() -> None:
    secret = credentials.new_totp_secret()
    uri = credentials.otpauth_uri(secret, "jsmith01", "Hillside Academy")
    assert uri.startswith(f"otpauth://totp/Hillside%20Academy:jsmith01?secret={secret}")
    assert "issuer=Hillside%20Academy" in uri


# Idempotency records ------------------------------------------------------------------------------------------------


def test_answers_survive_the_json_round_trip() -> None:
    account = Account("id1", "JSmith01", "Jane", "Smith", "j@x.org", AccountType.GUARDIAN, AccountStatus.INVITED,
                      ("North",), "parent", True, TwoFactor.OFF, False, ("S1", "S2"), "", T0, T0, None)
    assert codec.load(Account, codec.dump(account)) == account
    batch = BatchResult((RowResult(2, RowAction.ERROR, (Problem("E_REQUIRED", "LOGONID", "m"),), (), (), "x"),))
    assert codec.load(BatchResult, codec.dump(batch)) == batch
    assert codec.load(type(None), codec.dump(None)) is None


def test_answers_leave_out_fields_at_their_defaults_and_records_that_hold_them_still_load() -> None:
    created = RowResult(3, RowAction.CREATE, new_student_ids=("S1",), username="jsmith01", invitation_queued=True)
    stored = codec.dump(BatchResult((created,)))
    assert json.loads(stored) == {"results": [{"row_number": 3, "action": "create", "new_student_ids": ["S1"],
                                               "username": "jsmith01", "invitation_queued": True}]}
    assert codec.load(BatchResult, stored) == BatchResult((created,))
    written_in_full = ('{"results":[{"row_number":3,"action":"create","problems":[],"new_student_ids":["S1"],'
                       '"changed_fields":[],"username":"jsmith01","invitation_queued":true}]}')
    assert codec.load(BatchResult, written_in_full) == BatchResult((created,))


# Roster rules -------------------------------------------------------------------------------------------------------


def test_roster_batches_refuse_missing_and_repeated_ids() -> None:
    _s, _c, _r, problems = roster_rules.check_batch(
        [Student("S1"), Student(" S1 "), Student("")], [Contact("C1", email="not an email")], [])
    assert [(p.code, p.field) for p in problems] == [("E_DUPLICATE_CONFLICT", "students[1]"),
                                                     ("E_REQUIRED", "students[2]")]


def test_roster_diff() -> None:
    stored = {"S1": Student("S1", "Ann", "Lee"), "S2": Student("S2", "Bo", "Lee")}
    result = roster_rules.diff("student", [Student("S1", "Ann", "Lee"), Student("S2", "Bob", "Lee"), Student("S3")],
                               stored, lambda s: s.id)
    assert [c.action for c in result.changes] == ["update", "create"]
    assert result.changes[0].changed_fields == ("first_name",)
    assert result.unchanged == 1


def test_relationships_must_name_known_students_and_contacts() -> None:
    problems = roster_rules.unknown_references([Relationship("S1", "C9")], {"S1"}, {"C1"})
    assert problems[0].message == ("Relationship 1 names contact C9, not in the roster: send the student and the "
                                   "contact with it.")
