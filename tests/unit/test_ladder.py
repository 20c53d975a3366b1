"""The reminder ladder of the default policy: stages by day, due-date window, late fees, pay-by."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from dunning import ladder
from dunning.models.loan import Loan
from dunning.models.policy import load_policy_file
from tests.unit.loan_items import make_loan

POLICY = load_policy_file()
DUE = dt.date(2026, 11, 28)


def loan(**changes: object) -> Loan:
    return make_loan(DUE, **changes)


def stage_on(days_past_due: int) -> str | None:
    stage = ladder.current_stage(DUE, DUE + dt.timedelta(days=days_past_due), POLICY)
    return stage.id if stage else None


def test_default_ladder_rungs() -> None:
    stages = ladder.ladder_stages(POLICY.ladder)
    assert [(s.day, s.id, s.kind) for s in stages[:3]] == [
        (-3, "courtesy", "courtesy"),
        (0, "due_today", "due_today"),
        (1, "overdue_notice", "overdue_notice"),
    ]
    follow_ups = stages[3:]
    assert [s.day for s in follow_ups] == list(range(3, 28, 3))
    assert [s.id for s in follow_ups] == [f"follow_up_{d}" for d in range(3, 28, 3)]
    assert {s.kind for s in follow_ups} == {"follow_up"}


@pytest.mark.parametrize(
    ("days_past_due", "expected"),
    [
        (-10, None),
        (-4, None),
        (-3, "courtesy"),
        (-1, "courtesy"),
        (0, "due_today"),
        (1, "overdue_notice"),
        (2, "overdue_notice"),
        (3, "follow_up_3"),
        (5, "follow_up_3"),
        (6, "follow_up_6"),
        (27, "follow_up_27"),
        (29, "follow_up_27"),
        (30, None),
        (31, None),
        (400, None),
    ],
)
def test_current_stage_by_days_past_due(days_past_due: int, expected: str | None) -> None:
    assert stage_on(days_past_due) == expected


def test_a_book_already_overdue_gets_only_its_current_stage() -> None:
    # First seen 14 days past due: only follow_up_12 is due, none of the rungs it missed.
    assert stage_on(14) == "follow_up_12"
    # The stage keeps its id until the next rung, so a claim on it blocks a second send.
    assert {stage_on(d) for d in (12, 13, 14)} == {"follow_up_12"}


def test_the_stage_starts_at_midnight_of_the_business_calendar() -> None:
    # 2026-11-27T16:00Z is midnight of 11-28 in Shanghai, the lender's calendar.
    assert ladder.business_date(dt.datetime(2026, 11, 27, 15, 59, tzinfo=dt.UTC), POLICY) == dt.date(2026, 11, 27)
    assert ladder.business_date(dt.datetime(2026, 11, 27, 16, 0, tzinfo=dt.UTC), POLICY) == DUE


def test_the_next_business_day_starts_at_the_lenders_midnight() -> None:
    expected = dt.datetime(2026, 11, 28, 16, 0, tzinfo=dt.UTC)  # 11-29 00:00 in Shanghai
    assert ladder.next_business_day(dt.datetime(2026, 11, 27, 16, 0, tzinfo=dt.UTC), POLICY) == expected
    assert ladder.next_business_day(dt.datetime(2026, 11, 28, 15, 59, tzinfo=dt.UTC), POLICY) == expected


def test_business_date_refuses_a_naive_clock() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ladder.business_date(dt.datetime(2026, 11, 28, 10, 0), POLICY)


def test_due_date_window_bounds() -> None:
    today = dt.date(2026, 11, 28)
    earliest, latest = ladder.due_date_window(today, POLICY)
    assert (earliest, latest) == (dt.date(2026, 10, 30), dt.date(2026, 12, 1))
    # Every due date with a stage today is inside the window, and none outside has one.
    for offset in range(-60, 60):
        due = today + dt.timedelta(days=offset)
        has_stage = ladder.current_stage(due, today, POLICY) is not None
        assert has_stage == (earliest <= due <= latest), due


@pytest.mark.parametrize(
    ("amount", "currency", "days_past_due", "expected"),
    [
        ("1000.00", "CNY", -2, "0.00"),  # not yet due: no fees
        ("1000.00", "CNY", 0, "0.00"),
        ("1000.00", "CNY", 1, "0.50"),
        ("1000.00", "CNY", 10, "5.00"),
        ("10.00", "CNY", 1, "0.01"),  # 0.005 rounds half-up, not to even
        ("30.00", "CNY", 1, "0.02"),  # 0.015 -> 0.02
        ("10.10", "USD", 1, "0.01"),  # 0.00505 -> 0.01
        ("10.00", "USD", 3, "0.02"),  # 0.015 -> 0.02
        ("1000.00", "CNY", 479, "239.50"),
        ("1000.00", "CNY", 480, "240.00"),  # the cap, reached exactly
        ("1000.00", "CNY", 2000, "240.00"),  # capped at 24 %
        ("1000", "JPY", 1, "1"),  # 0.5 yen -> 1 (JPY has no minor unit)
        ("999", "JPY", 1, "0"),  # 0.4995 -> 0
        ("12345", "JPY", 7, "43"),  # 43.2075 -> 43
        ("12345", "JPY", 1000, "2962"),  # cap 2962.8: half-up would give 2963, above it; the cap rounds down
        ("10.03", "CNY", 1000, "2.40"),  # cap 2.4072: never above 24 %
    ],
)
def test_late_fees_by_rule(amount: str, currency: str, days_past_due: int, expected: str) -> None:
    due = loan(amount_due=amount, currency=currency)
    fees = ladder.late_fees(due, DUE + dt.timedelta(days=days_past_due), POLICY)
    assert fees == Decimal(expected)
    assert fees.as_tuple().exponent == Decimal(expected).as_tuple().exponent  # exact to the minor unit
    assert fees <= Decimal(amount) * POLICY.late_fee.cap_rate


def test_ledger_late_fees_override_the_rule() -> None:
    due = loan(late_fees=Decimal("12.34"))
    assert ladder.late_fees(due, DUE + dt.timedelta(days=100), POLICY) == Decimal("12.34")
    assert ladder.late_fees(loan(late_fees=Decimal(0)), DUE + dt.timedelta(days=100), POLICY) == Decimal("0.00")
    assert ladder.late_fees(loan(late_fees="7", currency="JPY", amount_due="1000"), DUE, POLICY) == Decimal(7)


def test_pay_by_is_the_due_date_before_it_passes_then_send_date_plus_three() -> None:
    assert ladder.pay_by(DUE - dt.timedelta(days=3), DUE, POLICY) == DUE
    assert ladder.pay_by(DUE, DUE, POLICY) == DUE + dt.timedelta(days=3)
    assert ladder.pay_by(DUE + dt.timedelta(days=4), DUE, POLICY) == DUE + dt.timedelta(days=7)
