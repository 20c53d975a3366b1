"""The credit-bureau file: buckets, exact amounts, deterministic lines, SETTLED corrections."""

from __future__ import annotations

import datetime as dt
import json
import random
from decimal import Decimal

import pytest

from dunning.bureau import BureauLine, Reported, bucket, money_text, plan_report, render
from dunning.models.loan import Loan, parse_loan
from dunning.models.policy import load_policy_file

POLICY = load_policy_file()
TODAY = dt.date(2026, 12, 12)
CONTRACT_KEYS = [
    "loan_id",
    "borrower_id",
    "reporting_date",
    "days_past_due",
    "bucket",
    "amount_overdue",
    "currency",
    "first_delinquency_date",
    "status",
]


def loan(loan_id: str, days_past_due: int, amount: str = "1000.00", currency: str = "CNY") -> Loan:
    return parse_loan(
        {
            "loan_id": loan_id,
            "borrower_id": f"B-{loan_id}",
            "borrower_name": "张三",
            "phone": "+8613800138000",
            "status": "OPEN",
            "due_date": (TODAY - dt.timedelta(days=days_past_due)).isoformat(),
            "amount_due": Decimal(amount),
            "currency": currency,
        }
    )


@pytest.mark.parametrize(
    ("days_past_due", "expected"),
    [(1, "M1"), (30, "M1"), (31, "M2"), (60, "M2"), (61, "M3"), (90, "M3"), (91, "M4+"), (400, "M4+"), (0, "M0")],
)
def test_buckets(days_past_due: int, expected: str) -> None:
    assert bucket(days_past_due) == expected


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [("1200", "CNY", "1200.00"), ("12.5", "USD", "12.50"), ("0.125", "CNY", "0.125"), ("1000", "JPY", "1000")],
)
def test_amounts_are_exact_and_padded_never_rounded(amount: str, currency: str, text: str) -> None:
    assert money_text(Decimal(amount), currency) == text


def test_lines_for_loans_past_the_threshold_with_contract_keys_in_order() -> None:
    plan = plan_report(TODAY, [loan("L-2", 31), loan("L-1", 30, "88.8")], {}, {}, POLICY)
    lines = [json.loads(raw) for raw in render(plan.lines).decode().splitlines()]
    assert [list(line) for line in lines] == [CONTRACT_KEYS, CONTRACT_KEYS]
    assert lines[0] == {
        "loan_id": "L-1",
        "borrower_id": "B-L-1",
        "reporting_date": "2026-12-12",
        "days_past_due": 30,
        "bucket": "M1",
        "amount_overdue": "88.80",
        "currency": "CNY",
        "first_delinquency_date": "2026-11-13",
        "status": "DELINQUENT",
    }
    assert [(line["loan_id"], line["bucket"]) for line in lines] == [("L-1", "M1"), ("L-2", "M2")]
    assert {r.loan_id for r in plan.save} == {"L-1", "L-2"}


def test_same_data_in_any_order_renders_the_same_bytes() -> None:
    loans = [loan(f"L-{n:03d}", 30 + n) for n in range(50)]
    first = render(plan_report(TODAY, loans, {}, {}, POLICY).lines)
    random.Random(7).shuffle(loans)
    assert render(plan_report(TODAY, loans, {}, {}, POLICY).lines) == first
    assert first.endswith(b"\n") and first.count(b"\n") == 50


def reported(loan_id: str, settled_on: dt.date | None = None) -> Reported:
    return Reported(
        loan_id=loan_id,
        borrower_id=f"B-{loan_id}",
        currency="CNY",
        first_delinquency_date=dt.date(2026, 10, 1),
        reported_since=dt.date(2026, 10, 31),
        settled_on=settled_on,
    )


def test_a_reported_loan_keeps_its_first_delinquency_date() -> None:
    plan = plan_report(TODAY, [loan("L-1", 45)], {"L-1": reported("L-1")}, {}, POLICY)
    assert plan.lines[0].first_delinquency_date == dt.date(2026, 10, 1)
    assert plan.save == []  # nothing to rewrite


def test_a_paid_loan_gets_one_settled_correction_then_leaves_the_set() -> None:
    paid = {"L-1": {"loan_id": "L-1", "status": "PAID", "due_date": "2026-10-01"}}
    plan = plan_report(TODAY, [], {"L-1": reported("L-1")}, paid, POLICY)
    assert [json.loads(line.to_json()) for line in plan.lines] == [
        {
            "loan_id": "L-1",
            "borrower_id": "B-L-1",
            "reporting_date": "2026-12-12",
            "days_past_due": 0,
            "bucket": "M0",
            "amount_overdue": "0.00",
            "currency": "CNY",
            "first_delinquency_date": "2026-10-01",
            "status": "SETTLED",
        }
    ]
    assert [r.settled_on for r in plan.save] == [TODAY]

    # A rerun of the same date repeats the correction; the next date drops the loan from the set.
    settled = {"L-1": reported("L-1", settled_on=TODAY)}
    assert plan_report(TODAY, [], settled, {}, POLICY).lines == plan.lines
    tomorrow = plan_report(TODAY + dt.timedelta(days=1), [], settled, {}, POLICY)
    assert tomorrow.lines == [] and tomorrow.remove == ["L-1"]


def test_an_open_loan_back_under_the_threshold_is_settled() -> None:
    cured = {"L-1": {"loan_id": "L-1", "status": "OPEN", "due_date": (TODAY - dt.timedelta(days=5)).isoformat()}}
    plan = plan_report(TODAY, [], {"L-1": reported("L-1")}, cured, POLICY)
    assert [line.status for line in plan.lines] == ["SETTLED"]


def test_written_off_or_missing_loans_leave_without_a_settled_line() -> None:
    live = {"L-1": {"loan_id": "L-1", "status": "WRITTEN_OFF", "due_date": "2026-01-01"}}
    plan = plan_report(TODAY, [], {"L-1": reported("L-1"), "L-2": reported("L-2")}, live, POLICY)
    assert plan.lines == []
    assert sorted(plan.remove) == ["L-1", "L-2"]
    assert plan.dropped == {"written_off": 1, "loan_missing": 1}


def test_a_settled_loan_that_falls_behind_again_starts_a_new_delinquency() -> None:
    plan = plan_report(TODAY, [loan("L-1", 30)], {"L-1": reported("L-1", settled_on=dt.date(2026, 11, 1))}, {}, POLICY)
    assert plan.lines[0].first_delinquency_date == dt.date(2026, 11, 13)
    assert plan.save[0].settled_on is None


def test_line_model_refuses_inexact_amount_text() -> None:
    with pytest.raises(ValueError, match="amount_overdue"):
        BureauLine(
            loan_id="L",
            borrower_id="B",
            reporting_date=TODAY,
            days_past_due=31,
            bucket="M2",
            amount_overdue="1e3",
            currency="CNY",
            first_delinquency_date=TODAY,
            status="DELINQUENT",
        )
