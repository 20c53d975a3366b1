"""The pure decisions behind borrower events and inbound SMS."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from dunning.borrower_events import control_change, promise_kept
from dunning.chased import effective_loan, missed_promise, plan_instalment
from dunning.inbound import reply_locale
from dunning.models.events import (
    DisputeResolved,
    GracePeriodGranted,
    LoanDisputed,
    LoanEventEnvelope,
    PaymentReceived,
    PromiseToPay,
    RepaymentPlanAgreed,
)
from dunning.models.loan import Loan, LoanStatus
from dunning.models.policy import load_policy_file
from dunning.models.state import Instalment, LoanControl

POLICY = load_policy_file()


def _loan(due: str = "2026-11-16") -> Loan:
    return Loan.model_validate(
        {
            "loan_id": "L-1",
            "borrower_id": "B-1",
            "borrower_name": "王小明",
            "phone": "+8613800138000",
            "status": "OPEN",
            "due_date": due,
            "amount_due": "3000",
            "currency": "CNY",
        }
    )


def _envelope(detail_type: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "e-1",
        "detail-type": detail_type,
        "source": "any.source",
        "account": "123456789012",
        "time": "2026-11-17T01:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
    }


# ---------------------------------------------------------------- replies (opt-out matching: test_replies.py)


def test_reply_locale_follows_the_reply() -> None:
    assert reply_locale("退订", "+14155550123", POLICY) == "zh-CN"
    assert reply_locale("STOP", "+8613800138000", POLICY) == "zh-CN"
    assert reply_locale("STOP", "+14155550123", POLICY) == "en-US"
    # Read as the matcher reads it: invisible characters and full-width letters are still English.
    assert reply_locale("\u200bＳＴＯＰ！", "+14155550123", POLICY) == "en-US"
    assert reply_locale("Stopp, merci à vous", "+14155550123", POLICY) == POLICY.default_locale


# ---------------------------------------------------------------- control changes


def test_dispute_sets_and_resolution_clears_the_hold() -> None:
    hold = control_change(LoanDisputed(loan_id="L-1", reason="fee"))
    release = control_change(DisputeResolved(loan_id="L-1", reason="ok"))
    assert hold is not None and release is not None
    assert (hold.aspect, hold.sets["dispute_hold"]) == ("dispute", True)
    assert (release.aspect, release.sets["dispute_hold"]) == ("dispute", False)


def test_promise_pauses_until_the_promised_date() -> None:
    change = control_change(PromiseToPay(loan_id="L-1", promised_date="2026-11-20", amount="1200"))
    assert change is not None
    assert change.aspect == "pause"
    assert change.sets["paused_until"] == change.sets["promised_date"] == "2026-11-20"
    assert change.sets["pause_reason"] == "promise_pending"
    assert change.sets["promise_amount"] == Decimal("1200")


def test_grace_period_pauses_and_replaces_an_earlier_promise() -> None:
    change = control_change(GracePeriodGranted(loan_id="L-1", until="2026-11-25"))
    assert change is not None
    assert change.sets == {"paused_until": "2026-11-25", "pause_reason": "grace_period"}
    assert "promised_date" in change.removes


def test_plan_is_stored_with_its_first_due_date() -> None:
    plan = RepaymentPlanAgreed(
        loan_id="L-1",
        instalments=[{"due_date": "2026-11-30", "amount": "400"}, {"due_date": "2026-12-30", "amount": "400.50"}],
    )
    change = control_change(plan)
    assert change is not None
    assert change.sets["plan_due_date"] == "2026-11-30"
    assert change.sets["plan"][1] == {"due_date": "2026-12-30", "amount": Decimal("400.50")}


def test_events_without_a_loan_control_change_none() -> None:
    payment = PaymentReceived(loan_id="L-1", amount="1", currency="CNY", paid_at="2026-11-20T00:00:00Z")
    assert control_change(payment) is None


# ---------------------------------------------------------------- promises


def test_missed_promise_only_after_its_date_and_for_the_cycle_chased() -> None:
    control = LoanControl(loan_id="L-1", promised_date=dt.date(2026, 11, 20))
    loan = _loan("2026-11-16")
    assert missed_promise(control, loan, dt.date(2026, 11, 20)) is None
    assert missed_promise(control, loan, dt.date(2026, 11, 21)) == dt.date(2026, 11, 20)
    assert missed_promise(control, _loan("2026-12-16"), dt.date(2026, 12, 21)) is None  # a later instalment
    assert missed_promise(None, loan, dt.date(2026, 11, 21)) is None


def test_promise_kept_by_enough_paid_in_time() -> None:
    control = LoanControl(loan_id="L-1", promised_date=dt.date(2026, 11, 20), promise_amount=Decimal("1200"))

    def paid(amount: str) -> PaymentReceived:
        return PaymentReceived(loan_id="L-1", amount=amount, currency="CNY", paid_at="2026-11-19T08:00:00Z")

    assert promise_kept(control, paid("1200"), dt.date(2026, 11, 20))
    assert not promise_kept(control, paid("1199.99"), dt.date(2026, 11, 19))
    assert not promise_kept(control, paid("1200"), dt.date(2026, 11, 21))


# ---------------------------------------------------------------- plans


PLAN = (
    Instalment(due_date=dt.date(2026, 11, 30), amount=Decimal("400")),
    Instalment(due_date=dt.date(2026, 12, 30), amount=Decimal("400")),
    Instalment(due_date=dt.date(2027, 1, 30), amount=Decimal("400")),
)


@pytest.mark.parametrize(
    ("amount_due", "due", "amount"),
    [
        ("1200", dt.date(2026, 11, 30), "400"),
        ("1500", dt.date(2026, 11, 30), "400"),  # more than the plan covers: nothing paid towards it yet
        ("1000", dt.date(2026, 11, 30), "200"),  # part of the first instalment paid
        ("800", dt.date(2026, 12, 30), "400"),
        ("0.01", dt.date(2027, 1, 30), "0.01"),
    ],
)
def test_plan_instalment_is_the_first_not_yet_covered(amount_due: str, due: dt.date, amount: str) -> None:
    assert plan_instalment(PLAN, Decimal(amount_due)) == Instalment(due_date=due, amount=Decimal(amount))


def test_a_paid_plan_has_no_next_instalment() -> None:
    assert plan_instalment(PLAN, Decimal(0)) is None
    assert plan_instalment((), Decimal(100)) is None


@given(st.decimals(min_value=0, max_value=2000, places=2))
def test_plan_instalment_never_asks_more_than_the_balance_or_the_instalment(amount_due: Decimal) -> None:
    nxt = plan_instalment(PLAN, amount_due)
    if nxt is not None:
        assert 0 < nxt.amount <= min(amount_due, Decimal(400))


def _planned(amount_due: str, late_fees: str | None = None) -> Loan:
    return _loan().model_copy(
        update={"amount_due": Decimal(amount_due), "late_fees": None if late_fees is None else Decimal(late_fees)}
    )


def test_without_a_plan_the_loan_is_seen_as_upstream_wrote_it() -> None:
    loan = _loan()
    assert effective_loan(loan, None) is loan
    assert effective_loan(loan, LoanControl(loan_id="L-1", dispute_hold=True)) is loan


def test_under_a_plan_the_first_unpaid_instalment_is_chased_without_late_fees() -> None:
    seen = effective_loan(_planned("1200"), LoanControl(loan_id="L-1", plan=PLAN))
    assert (seen.due_date, seen.amount_due, seen.late_fees) == (dt.date(2026, 11, 30), Decimal("400"), Decimal(0))
    assert seen.cycle == "2026-11-30"  # claims are per instalment
    assert seen.status is LoanStatus.OPEN
    assert (seen.loan_id, seen.phone, seen.currency) == ("L-1", "+8613800138000", "CNY")


def test_a_partly_paid_instalment_is_chased_for_what_is_left_and_ledger_fees_are_kept() -> None:
    seen = effective_loan(_planned("1000", late_fees="12.50"), LoanControl(loan_id="L-1", plan=PLAN))
    assert (seen.due_date, seen.amount_due, seen.late_fees) == (dt.date(2026, 11, 30), Decimal("200"), Decimal("12.50"))
    later = effective_loan(_planned("800"), LoanControl(loan_id="L-1", plan=PLAN))
    assert (later.cycle, later.amount_due) == ("2026-12-30", Decimal("400"))


def test_a_fully_paid_plan_leaves_nothing_to_chase() -> None:
    seen = effective_loan(_planned("0"), LoanControl(loan_id="L-1", plan=PLAN))
    assert seen.status is LoanStatus.PAID
    assert (seen.due_date, seen.amount_due) == (dt.date(2027, 1, 30), Decimal(0))


# ---------------------------------------------------------------- the event models


def test_envelope_picks_the_model_by_detail_type() -> None:
    parsed = LoanEventEnvelope.model_validate(
        _envelope("GracePeriodGranted", {"loan_id": "L-1", "until": "2026-11-25"})
    )
    assert isinstance(parsed.root.detail, GracePeriodGranted)
    assert parsed.root.detail.until == dt.date(2026, 11, 25)


@pytest.mark.parametrize(
    ("detail_type", "detail", "where"),
    [
        ("Unknown", {}, "does not match any of the expected tags"),
        ("PaymentReceived", {"loan_id": "L-1", "amount": 1.5, "currency": "CNY", "paid_at": "2026-11-20T00:00:00Z"},
         "not a float"),
        ("PaymentReceived", {"loan_id": "L-1", "amount": "-1", "currency": "CNY", "paid_at": "2026-11-20T00:00:00Z"},
         "detail.amount"),
        ("PaymentReceived", {"loan_id": "L-1", "amount": "1", "currency": "XXY", "paid_at": "2026-11-20T00:00:00Z"},
         "ISO 4217"),
        ("PaymentReceived", {"loan_id": "L-1", "amount": "1", "currency": "CNY", "paid_at": "2026-11-20T00:00:00"},
         "timezone"),
        ("PaymentReceived", {"loan_id": "L-1", "amount": "1", "currency": "CNY", "paid_at": 1_795_000_000},
         "ISO-8601"),  # not seconds since the epoch (the fuzz test's hostile value)
        ("PromiseToPay", {"loan_id": "L-1", "promised_date": "20/11/2026", "amount": "1"}, "YYYY-MM-DD"),
        ("RepaymentPlanAgreed", {"loan_id": "L-1", "instalments": []}, "instalments"),
        ("RepaymentPlanAgreed", {"loan_id": "L-1", "instalments": [
            {"due_date": "2026-12-01", "amount": "1"}, {"due_date": "2026-11-01", "amount": "1"}]}, "increasing"),
        ("LoanDisputed", {"loan_id": "", "reason": "x"}, "loan_id"),
        ("ContactOptOut", {"phone": "12345"}, "E.164"),
    ],
)  # fmt: skip
def test_malformed_events_are_rejected_naming_the_problem(detail_type: str, detail: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError) as exc:
        LoanEventEnvelope.model_validate(_envelope(detail_type, detail))
    assert where in str(exc.value)
