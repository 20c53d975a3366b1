"""The reminder ladder (docs/contract.md#policy-file): which stage is due for a loan on a business day. Pure."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from functools import cache
from zoneinfo import ZoneInfo

from dunning.models.loan import Loan
from dunning.models.money import minor_unit, quantize
from dunning.models.policy import Ladder, Policy


@dataclass(frozen=True, order=True)
class Stage:
    """One rung: `id` is unique per cycle (`follow_up_6`), `kind` picks the template."""

    day: int
    id: str
    kind: str


@cache
def ladder_stages(ladder: Ladder) -> tuple[Stage, ...]:
    fixed = [Stage(s.day, s.name, s.name) for s in ladder.stages]
    rule = ladder.follow_up
    follow_ups = [
        Stage(day, f"follow_up_{day}", "follow_up") for day in range(rule.first_day, rule.last_day + 1, rule.every_days)
    ]
    return tuple(fixed + follow_ups)


def business_date(now: dt.datetime, policy: Policy) -> dt.date:
    """The lender's calendar date at `now` (due dates are dates in that calendar)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(ZoneInfo(policy.business_timezone)).date()


def next_business_day(now: dt.datetime, policy: Policy) -> dt.datetime:
    """The instant (UTC) the lender's next calendar day starts: when stages move on."""
    tomorrow = business_date(now, policy) + dt.timedelta(days=1)
    return dt.datetime.combine(tomorrow, dt.time(0), tzinfo=ZoneInfo(policy.business_timezone)).astimezone(dt.UTC)


def days_past_due(due_date: dt.date, today: dt.date) -> int:
    return (today - due_date).days


def current_stage(due_date: dt.date, today: dt.date, policy: Policy) -> Stage | None:
    """The latest stage reached and not yet superseded; None before the first or from escalation on.

    A book that is already overdue when the product starts gets its current stage once,
    never every stage it missed.
    """
    dpd = days_past_due(due_date, today)
    if dpd >= policy.ladder.escalation_day:
        return None
    reached = [stage for stage in ladder_stages(policy.ladder) if stage.day <= dpd]
    return reached[-1] if reached else None


def due_date_window(today: dt.date, policy: Policy) -> tuple[dt.date, dt.date]:
    """Inclusive range of due dates that can have a stage due today (what the planner reads)."""
    stages = ladder_stages(policy.ladder)
    latest = today - dt.timedelta(days=stages[0].day)
    earliest = today - dt.timedelta(days=policy.ladder.escalation_day - 1)
    return earliest, latest


def late_fees(loan: Loan, today: dt.date, policy: Policy) -> Decimal:
    """The ledger's fees when given; else the policy's daily rate, capped, half-up to the minor unit."""
    if loan.late_fees is not None:
        return quantize(loan.late_fees, loan.currency)
    dpd = max(days_past_due(loan.due_date, today), 0)
    rule = policy.late_fee
    # The cap is a ceiling: rounded down, so rounding can never lift the fee above it.
    cap = (loan.amount_due * rule.cap_rate).quantize(minor_unit(loan.currency), rounding=ROUND_DOWN)
    return min(quantize(loan.amount_due * rule.daily_rate * dpd, loan.currency), cap)


def pay_by(send_date: dt.date, due_date: dt.date, policy: Policy) -> dt.date:
    """Deadline stated in the SMS: the due date before it passes, else send date + pay_by_days."""
    if send_date < due_date:
        return due_date
    return send_date + dt.timedelta(days=policy.pay_by_days)
