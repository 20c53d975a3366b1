"""Whether a loan's reminder may go out now, and if not why (docs/contract.md#policy-file). Pure.

The planner and the sender ask the same questions; the sender asks again against live data.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
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


@dataclass
class Moment:
    """What depends only on one instant and the policy: the business day, the stage a due date has reached,
    whether a window is open (and when it opens). Each is worked out once: a planning run asks for every loan
    it reads, at the same `now`, and most loans share their due date and their zones."""

    now: dt.datetime
    policy: Policy
    today: dt.date = field(init=False)
    _stages: dict[dt.date, Stage | None] = field(default_factory=dict, init=False, repr=False)
    _windows: dict[tuple[tuple[str, ...], str], tuple[bool, dt.datetime | None]] = field(
        default_factory=dict, init=False, repr=False
    )

    def __post_init__(self) -> None:
        self.today = ladder.business_date(self.now, self.policy)

    def stage(self, due_date: dt.date) -> Stage | None:
        """`ladder.current_stage` of the due date today."""
        if due_date not in self._stages:
            self._stages[due_date] = ladder.current_stage(due_date, self.today, self.policy)
        return self._stages[due_date]

    def window(self, zones: tuple[str, ...], phone: str) -> tuple[bool, dt.datetime | None]:
        """Whether the send window of these zones and number is open now; if not, when it opens (None: not soon)."""
        answer = self._windows.get((zones, phone))
        if answer is None:
            inside = compliance.in_send_window(self.now, zones, phone, self.policy)
            opens = None if inside else compliance.next_window_open(self.now, zones, phone, self.policy)
            answer = self._windows[(zones, phone)] = (inside, opens)
        return answer


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
    return evaluate_at(
        Moment(now, policy),
        loan,
        control,
        opted_out=opted_out,
        expected_cycle=expected_cycle,
        expected_stage=expected_stage,
        zones=zones,
    )


def evaluate_at(
    moment: Moment,
    loan: Loan,
    control: LoanControl | None,
    *,
    opted_out: bool,
    expected_cycle: str | None = None,
    expected_stage: str | None = None,
    zones: tuple[str, ...] | None = None,
) -> Verdict:
    """`evaluate` at `moment.now`, with the moment's answers (a caller judging many loans at one instant keeps one)."""
    now, policy = moment.now, moment.policy
    zones = zones or borrower_timezones(loan, policy)
    if loan.status is not LoanStatus.OPEN:
        return Suppress("written_off" if loan.status is LoanStatus.WRITTEN_OFF else "paid")
    if expected_cycle is not None and loan.cycle != expected_cycle:
        # The chased instalment is no longer the earliest unpaid one: it was paid.
        return Suppress("paid")
    stage = moment.stage(loan.due_date)
    if stage is None:
        return Wait("no_stage_due")
    if expected_stage is not None and stage.id != expected_stage:
        return Suppress("stage_superseded")
    held = _held(loan, control, now, moment.today, zones[0]) if control is not None else None
    if held is not None:
        return held
    if opted_out:
        return Suppress("opted_out")
    inside, opens = moment.window(zones, loan.phone)
    if not inside:
        return Wait("outside_window", opens)
    return Due(stage)


def _held(loan: Loan, control: LoanControl, now: dt.datetime, today: dt.date, tz: str) -> Suppress | None:
    """What the loan's CONTROL item holds back: a case opened for the cycle, a dispute, a pause.

    `tz` is the borrower's local day (borrower_timezone): a hold is looked at again at its midnight.
    """
    if control.case_cycle == loan.cycle:
        return Suppress("escalated")
    if control.dispute_hold:
        return Suppress("hold_dispute", compliance.next_local_midnight(now, tz))
    if control.paused_until is not None and today <= control.paused_until:
        resume = dt.datetime.combine(control.paused_until + dt.timedelta(days=1), dt.time(0), tzinfo=ZoneInfo(tz))
        return Suppress(control.pause_reason or "paused", max(resume, now))
    return None


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
