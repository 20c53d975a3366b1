"""evaluate(): the verdict on a loan's reminder now; claim_blocks(): when a claim stops replanning."""

from __future__ import annotations

import datetime as dt

import pytest

from dunning import decisions
from dunning.decisions import Due, Suppress, Wait
from dunning.models.loan import Loan
from dunning.models.policy import load_policy_file
from dunning.models.state import ClaimState, LoanControl, SendClaim
from tests.unit.loan_items import make_loan

POLICY = load_policy_file()
DUE = dt.date(2026, 11, 25)
NOW = dt.datetime(2026, 11, 28, 2, 0, tzinfo=dt.UTC)  # 10:00 Shanghai on day 3 past due
NIGHT = dt.datetime(2026, 11, 28, 14, 0, tzinfo=dt.UTC)  # 22:00 Shanghai, same business day


def loan(**changes: object) -> Loan:
    return make_loan(DUE, **changes)


def evaluate(
    subject: Loan, control: LoanControl | None = None, now: dt.datetime = NOW, **kwargs: object
) -> decisions.Verdict:
    kwargs.setdefault("opted_out", False)
    return decisions.evaluate(subject, control, now, POLICY, **kwargs)  # type: ignore[arg-type]


def test_due_inside_the_window_with_the_current_stage() -> None:
    verdict = evaluate(loan())
    assert isinstance(verdict, Due)
    assert verdict.stage.id == "follow_up_3"
    assert verdict.stage.kind == "follow_up"


@pytest.mark.parametrize(("status", "reason"), [("PAID", "paid"), ("CLOSED", "paid"), ("WRITTEN_OFF", "written_off")])
def test_a_loan_that_is_not_open_is_suppressed_for_good(status: str, reason: str) -> None:
    assert evaluate(loan(status=status)) == Suppress(reason)


def test_cycle_changed_since_planning_means_paid() -> None:
    # Job planned for the 11-25 instalment; live item now chases 12-25: that one was paid.
    assert evaluate(loan(due_date="2026-12-25"), expected_cycle="2026-11-25") == Suppress("paid")
    assert isinstance(evaluate(loan(), expected_cycle="2026-11-25", expected_stage="follow_up_3"), Due)


def test_a_stage_superseded_since_planning_is_not_sent() -> None:
    assert evaluate(loan(), expected_stage="overdue_notice") == Suppress("stage_superseded")


def test_no_stage_before_courtesy_or_from_escalation_on() -> None:
    assert evaluate(loan(due_date="2026-12-20")) == Wait("no_stage_due")
    assert evaluate(loan(due_date="2026-10-01")) == Wait("no_stage_due")


def test_dispute_hold_defers_to_the_next_local_midnight() -> None:
    verdict = evaluate(loan(), LoanControl(loan_id="L-1", dispute_hold=True))
    assert verdict == Suppress("hold_dispute", dt.datetime(2026, 11, 28, 16, 0, tzinfo=dt.UTC))


def test_an_escalated_cycle_gets_no_more_collection_sms() -> None:
    assert evaluate(loan(), LoanControl(loan_id="L-1", case_cycle="2026-11-25")) == Suppress("escalated")
    assert isinstance(evaluate(loan(), LoanControl(loan_id="L-1", case_cycle="2026-10-25")), Due)


def test_a_pause_defers_until_the_day_after_it_ends() -> None:
    control = LoanControl(loan_id="L-1", paused_until=dt.date(2026, 11, 30), pause_reason="promise_pending")
    verdict = evaluate(loan(), control)
    assert isinstance(verdict, Suppress)
    assert verdict.reason == "promise_pending"
    # Midnight starting 12-01 in the borrower's zone (Shanghai).
    assert verdict.retry_after == dt.datetime(2026, 11, 30, 16, 0, tzinfo=dt.UTC)
    # The pause is over once its last day has passed.
    ended = LoanControl(loan_id="L-1", paused_until=dt.date(2026, 11, 27), pause_reason="grace_period")
    assert isinstance(evaluate(loan(), ended), Due)
    unnamed = LoanControl(loan_id="L-1", paused_until=dt.date(2026, 11, 28))
    assert evaluate(loan(), unnamed).reason == "paused"  # type: ignore[union-attr]


def test_opted_out_is_suppressed_for_good() -> None:
    assert evaluate(loan(), opted_out=True) == Suppress("opted_out")


def test_outside_the_window_waits_until_it_opens() -> None:
    verdict = evaluate(loan(), now=NIGHT)
    assert verdict == Wait("outside_window", dt.datetime(2026, 11, 29, 1, 0, tzinfo=dt.UTC))


def test_the_window_is_the_borrowers_local_time() -> None:
    # 02:00Z is 21:00 the day before in New York: outside; 14:00Z is 09:00 there: inside.
    new_yorker = loan(phone="+12025550143", timezone="America/New_York", locale="en-US")
    assert isinstance(evaluate(new_yorker), Wait)
    assert isinstance(evaluate(new_yorker, now=NIGHT), Due)


def test_stop_reasons_outrank_the_window() -> None:
    # At night a paid or opted-out loan is still recorded as such, not left waiting.
    assert evaluate(loan(status="PAID"), now=NIGHT) == Suppress("paid")
    assert evaluate(loan(), now=NIGHT, opted_out=True) == Suppress("opted_out")


def claim(state: ClaimState, minutes_ago: int, retry_after: dt.datetime | None = None) -> SendClaim:
    return SendClaim(
        loan_id="L-1",
        cycle="2026-11-25",
        stage="follow_up_3",
        state=state,
        updated_at=NOW - dt.timedelta(minutes=minutes_ago),
        retry_after=retry_after,
    )


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        (None, None),
        (claim(ClaimState.SENT, 600), "already_sent"),
        (claim(ClaimState.SUPPRESSED, 600), "already_suppressed"),
        (claim(ClaimState.UNCERTAIN, 600), "already_uncertain"),
        (claim(ClaimState.SENDING, 600), "sending"),
        (claim(ClaimState.PLANNED, 10), "already_planned"),
        (claim(ClaimState.PLANNED, 50), None),  # its job looks lost: plan again
        (claim(ClaimState.DEFERRED, 60, NOW + dt.timedelta(minutes=1)), "deferred"),
        (claim(ClaimState.DEFERRED, 60, NOW), None),
        (claim(ClaimState.DEFERRED, 60), None),
    ],
)
def test_claim_blocks(subject: SendClaim | None, expected: str | None) -> None:
    assert decisions.claim_blocks(subject, NOW) == expected


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        (claim(ClaimState.PLANNED, 10), NOW + dt.timedelta(minutes=40)),  # updated 10 minutes ago, + REPLAN_AFTER
        (claim(ClaimState.DEFERRED, 60, NOW + dt.timedelta(hours=3)), NOW + dt.timedelta(hours=3)),
        (claim(ClaimState.SENDING, 1), NOW + dt.timedelta(minutes=49)),  # a refused sender may put it back
        (claim(ClaimState.SENT, 600), None),
        (claim(ClaimState.SUPPRESSED, 600), None),
    ],
)
def test_replan_at_is_when_the_planner_must_look_at_a_claim_again(
    subject: SendClaim, expected: dt.datetime | None
) -> None:
    assert decisions.replan_at(subject) == expected
    if expected is not None and subject.state is not ClaimState.SENDING:
        assert decisions.claim_blocks(subject, expected - dt.timedelta(seconds=1)) is not None
        assert decisions.claim_blocks(subject, expected) is None
