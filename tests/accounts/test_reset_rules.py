"""The pure rules of resets and usage reports: who is skipped and what each account is sent, the selection a
selector means, generated passwords, and a report's date range in the school's time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from plumbing.errors import InvalidArgument
from services.accounts import rules
from services.accounts.domain import AccountStatus, AccountType, TwoFactor
from services.accounts.reset_rules import (
    Candidate,
    Outcome,
    ResetSpec,
    decide,
    generated_password,
    not_found,
    selection,
)
from services.accounts.usage_rules import check_range, local, parse_day, utc_bounds


def candidate(status: AccountStatus = AccountStatus.ACTIVE, email: str = "a@example.org",
              two_factor: TwoFactor = TwoFactor.OFF, has_password: bool = True) -> Candidate:
    return Candidate("id1", "Parent01", "Pat", "Able", email, status, two_factor, has_password)


@pytest.mark.parametrize(("account", "two_factor", "password", "outcome", "reason", "turned_on"), [
    (candidate(AccountStatus.DISABLED), False, False, Outcome.SKIPPED, "ACCOUNT_DISABLED", False),
    (candidate(email=""), True, False, Outcome.SKIPPED, "NO_EMAIL", False),
    (candidate(AccountStatus.INVITED, has_password=False), False, False, Outcome.INVITATION, "", False),
    (candidate(AccountStatus.INVITED, has_password=True), True, False, Outcome.RESET, "", True),
    (candidate(), True, True, Outcome.PASSWORD, "", True),
    (candidate(two_factor=TwoFactor.ENROLLED), True, False, Outcome.RESET, "", False),
    (candidate(two_factor=TwoFactor.REQUIRED), True, False, Outcome.RESET, "", False),
])
def test_what_a_reset_does_to_one_account(account: Candidate, two_factor: bool, password: bool, outcome: Outcome,
                                          reason: str, turned_on: bool) -> None:
    decision = decide(account, ResetSpec(selection("all"), two_factor, password))
    assert (decision.outcome, decision.reason, decision.two_factor_on) == (outcome, reason, turned_on)


def test_selectors_mean_parent_accounts_unless_usernames_are_named() -> None:
    assert selection("all").type == AccountType.GUARDIAN
    assert selection("group", " 7B ").group == "7B" and selection("grad_year", "2031").grad_year == 2031
    named = selection("usernames", usernames=["a1b2c3", " ", "a1b2c3", "x9y8z7"], never_signed_in=True)
    assert named.type is None and named.usernames == ("a1b2c3", "x9y8z7") and named.never_signed_in
    spec = ResetSpec(selection("school", "North"), True, False, ())
    assert ResetSpec.from_json(spec.to_json()) == spec
    missing = not_found(["Known01", "nobody99", "NOBODY99"], {"known01"})
    assert [(d.candidate.username, d.reason) for d in missing] == [("nobody99", "ACCOUNT_NOT_FOUND"),
                                                                  ("NOBODY99", "ACCOUNT_NOT_FOUND")]


def test_generated_passwords_follow_the_rules() -> None:
    seen = {generated_password("parent01") for _ in range(200)}
    assert len(seen) == 200
    assert all(not rules.check_password(p, "parent01") and len(p) == 12 for p in seen)
    assert not any(ch in p for p in seen for ch in "0O1lI")


def test_a_report_range_is_whole_days_in_the_school_time_zone() -> None:
    london = ZoneInfo("Europe/London")
    low, high = utc_bounds(date(2026, 3, 29), date(2026, 3, 29), london)  # the clocks go forward that night
    assert (low, high) == (datetime(2026, 3, 29, 0, 0, tzinfo=UTC), datetime(2026, 3, 29, 23, 0, tzinfo=UTC))
    assert local(datetime(2026, 7, 1, 12, 30, 5, 999, tzinfo=UTC), london) == datetime(2026, 7, 1, 13, 30, 5)
    with pytest.raises(InvalidArgument):
        parse_day("01/09/2026", "start_date")
    with pytest.raises(InvalidArgument):
        check_range(date(2026, 9, 2), date(2026, 9, 1))
    with pytest.raises(InvalidArgument):
        check_range(date(2020, 1, 1), date(2026, 1, 1))
