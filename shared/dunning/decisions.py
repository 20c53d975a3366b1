"""Whether a loan's reminder may go out now, and if not why (docs/contract.md#policy-file). Pure.

The planner and the sender ask the same questions; the sender asks again against live data.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from dunning import compliance, ladder
from dunning.ladder import Stage
from dunning.models.loan import Loan, LoanStatus
from dunning.models.policy import Policy
from dunning.models.state import FINAL_CLAIM_STATES, ClaimState, LoanControl, SendClaim

# How long a PLANNED claim may wait for its job before a planner run enqueues it again
# (its job was lost, e.g. the planner crashed between claim and enqueue).
REPLAN_AFTER = dt.timedelta(minutes=50)


@dataclass(frozen=True)
class Due:
    stage: Stage


@dataclass(frozen=True)
class Suppress:
    """Not sent. `retry_after` None means final for the stage; else plan again from then."""

    reason: str
    retry_after: dt.datetime | None = None


@dataclass(frozen=True)
class Wait:
    """Nothing to record: not yet (outside the window) or already handled."""

    why: str
    until: dt.datetime | None = None


Verdict = Due | Suppress | Wait


def borrower_timezones(loan: Loan, policy: Policy) -> tuple[str, ...]:
    """Every zone the borrower may be in (docs/contract.md#loanstable-item, `timezone`): the item's; else the
    zones of the phone number (several for a number that spans zones: the send window is the one they all share);
    the policy default only when neither gives one."""
    if loan.timezone:
        return (loan.timezone,)
    return compliance.phone_timezones(loan.phone) or (policy.default_timezone,)


def borrower_timezone(loan: Loan, policy: Policy) -> str:
    """The zone of the borrower's local day (caps, pay-by, pauses): the first of borrower_timezones.

    Any of a number's zones gives the same date inside the shared window (it is the same day in
    all of them there), which is when SMS go out.
    """
    return borrower_timezones(loan, policy)[0]


def evaluate(
    loan: Loan,
    control: LoanControl | None,
    now: dt.datetime,
    policy: Policy,
    *,
    opted_out: bool,
    expected_cycle: str | None = None,
    expected_stage: str | None = None,
    zones: tuple[str, ...] | None = None,
) -> Verdict:
    """The verdict for the loan's current stage at `now`; expected_* are the job's (send time).

    `zones`: the borrower's zones when the caller knows them better than `loan` does (the planner's
    index item holds the number's zones, not the number); else `borrower_timezones(loan)`.
    """
    today = ladder.business_date(now, policy)
    zones = zones or borrower_timezones(loan, policy)
    tz = zones[0]  # the borrower's local day (borrower_timezone)
    if loan.status is not LoanStatus.OPEN:
        return Suppress("written_off" if loan.status is LoanStatus.WRITTEN_OFF else "paid")
    if expected_cycle is not None and loan.cycle != expected_cycle:
        # The chased instalment is no longer the earliest unpaid one: it was paid.
        return Suppress("paid")
    stage = ladder.current_stage(loan.due_date, today, policy)
    if stage is None:
        return Wait("no_stage_due")
    if expected_stage is not None and stage.id != expected_stage:
        return Suppress("stage_superseded")
    if control is not None:
        if control.case_cycle == loan.cycle:
            return Suppress("escalated")
        if control.dispute_hold:
            return Suppress("hold_dispute", compliance.next_local_midnight(now, tz))
        if control.paused_until is not None and today <= control.paused_until:
            resume = dt.datetime.combine(control.paused_until + dt.timedelta(days=1), dt.time(0), tzinfo=ZoneInfo(tz))
            return Suppress(control.pause_reason or "paused", max(resume, now))
    if opted_out:
        return Suppress("opted_out")
    if not compliance.in_send_window(now, zones, loan.phone, policy):
        return Wait("outside_window", compliance.next_window_open(now, zones, loan.phone, policy))
    return Due(stage)


def claim_blocks(claim: SendClaim | None, now: dt.datetime) -> str | None:
    """Why an existing claim means the planner must not enqueue the stage again (None: go ahead)."""
    if claim is None:
        return None
    if claim.state in FINAL_CLAIM_STATES:
        return f"already_{claim.state.value.lower()}"
    if claim.state is ClaimState.SENDING:
        return "sending"
    if claim.state is ClaimState.PLANNED and now - claim.updated_at < REPLAN_AFTER:
        return "already_planned"
    if claim.state is ClaimState.DEFERRED and claim.retry_after is not None and now < claim.retry_after:
        return "deferred"
    return None


def replan_at(claim: SendClaim) -> dt.datetime | None:
    """When the planner must look at a blocking claim again; None once the stage is settled.

    PLANNED and DEFERRED claims stop blocking then. A SENDING claim is the sender's, but a
    sender refused for a while puts it back to PLANNED: look again when that would have gone stale.
    """
    if claim.state in (ClaimState.PLANNED, ClaimState.SENDING):
        return claim.updated_at + REPLAN_AFTER
    if claim.state is ClaimState.DEFERRED:
        return claim.retry_after
    return None
