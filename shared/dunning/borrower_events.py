"""Borrower events (docs/contract.md#events-in): what they change, and the service SMS they cause.

Replies to our SMS are `inbound`'s.

The decisions are pure functions (`control_change`, `promise_kept`; and in `chased`, re-exported
here: `missed_promise`, `plan_instalment`, `effective_loan`); `BorrowerEvents` applies them to StateTable.
Every write is idempotent and ordered: an aspect of a loan's CONTROL item (dispute, pause,
plan) changes only for an event newer than the last one applied to it, so a redelivered or
late event changes nothing. The planner and the sender read the result through
`decisions.evaluate` (hold_dispute, promise_pending, grace_period, opted_out), on the loan as
`effective_loan` shows it under an agreed repayment plan.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from dunning import ladder
from dunning.case_closing import CaseCloser
from dunning.chased import chased_due as chased_due
from dunning.chased import effective_loan as effective_loan
from dunning.chased import missed_promise as missed_promise
from dunning.chased import plan_instalment as plan_instalment
from dunning.compose import reference_code, render_service
from dunning.dal.ladder import LadderRepository
from dunning.dal.loans import LoansRepository
from dunning.dal.state import StateRepository
from dunning.erasure import Erasure
from dunning.models.events import (
    BorrowerErasureRequested,
    ContactOptIn,
    ContactOptOut,
    DisputeResolved,
    GracePeriodGranted,
    LoanDisputed,
    LoanEvent,
    LoanEventDetail,
    PaymentReceived,
    PromiseToPay,
    RepaymentPlanAgreed,
)
from dunning.models.loan import InvalidLoan, LoanStatus, parse_loan
from dunning.models.policy import Policy
from dunning.models.state import LoanControl
from dunning.notices import LoanSubject, Notice, Notices
from dunning.observability import MetricUnit, logger, mask_phone, metrics

PAYMENT_CONFIRMATION = "payment_confirmation"


class EventRejected(ValueError):
    """A well-formed event the policy refuses; `reason` names the field and the rule, never its value."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------- pure decisions


@dataclass(frozen=True)
class ControlChange:
    """Attributes of the loan's CONTROL item one event sets and removes, for one aspect."""

    aspect: str  # dispute, pause or plan: events of one aspect are ordered by their time
    sets: dict[str, Any]
    removes: tuple[str, ...] = ()


def control_change(detail: LoanEventDetail) -> ControlChange | None:
    """The CONTROL change an event makes; None for events that change no loan control."""
    if isinstance(detail, LoanDisputed):
        return ControlChange("dispute", {"dispute_hold": True, "dispute_reason": detail.reason})
    if isinstance(detail, DisputeResolved):
        return ControlChange("dispute", {"dispute_hold": False, "dispute_reason": detail.reason})
    if isinstance(detail, PromiseToPay):
        promised = detail.promised_date.isoformat()
        return ControlChange(
            "pause",
            {
                "paused_until": promised,
                "pause_reason": "promise_pending",
                "promised_date": promised,
                "promise_amount": detail.amount,
            },
        )
    if isinstance(detail, GracePeriodGranted):
        # The newer arrangement replaces an earlier promise: it is no longer "broken" when it passes.
        return ControlChange(
            "pause",
            {"paused_until": detail.until.isoformat(), "pause_reason": "grace_period"},
            ("promised_date", "promise_amount"),
        )
    if isinstance(detail, RepaymentPlanAgreed):
        plan = [{"due_date": i.due_date.isoformat(), "amount": i.amount} for i in detail.instalments]
        return ControlChange("plan", {"plan": plan, "plan_due_date": detail.instalments[0].due_date.isoformat()})
    return None


def pause_problem(detail: LoanEventDetail, today: dt.date, max_pause_days: int) -> str | None:
    """Why a promise or grace period cannot pause collection (past, or beyond the policy maximum); else None."""
    if isinstance(detail, PromiseToPay):
        field, until = "detail.promised_date", detail.promised_date
    elif isinstance(detail, GracePeriodGranted):
        field, until = "detail.until", detail.until
    else:
        return None
    if until < today:
        return f"{field}: is already past (business date)"
    if until > today + dt.timedelta(days=max_pause_days):
        return f"{field}: is more than max_pause_days ({max_pause_days}) ahead"
    return None


def promise_kept(control: LoanControl | None, payment: PaymentReceived, business_day: dt.date) -> bool:
    """A payment of at least the promised amount, made by the promised date (business calendar)."""
    if control is None or control.promised_date is None:
        return False
    enough = control.promise_amount is None or payment.amount >= control.promise_amount
    return enough and business_day <= control.promised_date


# ---------------------------------------------------------------- effects


def superseded_broken_promise(control: LoanControl | None, event_day: dt.date) -> dt.date | None:
    """The promise a new promise or grace replaces, when it had already been broken by `event_day`.

    A promise still on CONTROL after its date was not kept (a keeping payment removes it).
    """
    if control is None or control.promised_date is None or control.promised_date >= event_day:
        return None
    return control.promised_date


@dataclass
class BorrowerEvents:
    loans: LoansRepository
    state: StateRepository
    ladder: LadderRepository
    notices: Notices
    policy: Policy
    closer: CaseCloser | None = None  # closes collection cases of a loan a payment leaves PAID

    def apply(self, event: LoanEvent, now: dt.datetime) -> dict[str, Any]:
        """Apply one loan event; the result says what changed (for the log and the reply)."""
        detail = event.detail
        kind = event.detail_type
        problem = pause_problem(detail, ladder.business_date(now, self.policy), self.policy.max_pause_days)
        if problem is not None:
            raise EventRejected(problem)  # before any write: a refused pause changes nothing
        change = control_change(detail)
        if change is not None:
            loan_id = str(getattr(detail, "loan_id", ""))
            if isinstance(detail, PromiseToPay | GracePeriodGranted):
                self._remember_broken_promise(loan_id, event.time)
            applied = self.state.update_control(loan_id, change.aspect, event.time, change.sets, change.removes)
            # Also when not applied: a redelivery after a crash between the write and the index or the poke.
            item = self.ladder.item(loan_id)
            if isinstance(detail, RepaymentPlanAgreed) and item is not None:
                chased = chased_due(item)
                if chased is not None and chased != item.get("ladder_due"):
                    self.ladder.follow(item, chased)  # the index chases the next unpaid instalment
            self._poke(item)  # a hold, pause or plan changed what may be due
            metric = "LoanEventsApplied" if applied else "LoanEventsStale"
            metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
            message = "loan event applied" if applied else "loan event already applied or older: ignored"
            logger.info(message, extra={"event_type": kind, "loan_id": loan_id, "aspect": change.aspect})
            return {"event": kind, "loan_id": loan_id, "applied": applied}
        if isinstance(detail, ContactOptOut):
            self.state.opt_out(detail.phone, "event", event.id, now)
            logger.info("number opted out by event", extra={"phone": mask_phone(detail.phone)})
            metrics.add_metric(name="OptOuts", unit=MetricUnit.Count, value=1)
            return {"event": kind, "applied": True}
        if isinstance(detail, ContactOptIn):
            # No poke: the planner never reads opt-outs (the sender does), so nothing it decides changes.
            self.state.opt_in(detail.phone)
            logger.info("number opted back in by event", extra={"phone": mask_phone(detail.phone)})
            return {"event": kind, "applied": True}
        if isinstance(detail, BorrowerErasureRequested):
            erased = Erasure(self.state, self.notices.deliveries).erase(detail, event.id, now)
            return {"event": kind, "applied": True, **erased}
        if isinstance(detail, PaymentReceived):
            confirmed = self.payment_received(detail, now)
            # Under a plan a payment moves the chase to the next instalment, which may be due already.
            self._poke(self.ladder.item(detail.loan_id))
            return {"event": kind, "loan_id": detail.loan_id, **confirmed}
        raise AssertionError(f"unhandled loan event {kind}")  # the union above is exhaustive

    def _remember_broken_promise(self, loan_id: str, event_time: dt.datetime) -> None:
        """Before a promise or grace replaces the current promise, keep it if it was broken (escalation counts them).

        Done first: a crash before the CONTROL write is redone by the redelivery (the set ADD is idempotent).
        """
        broken = superseded_broken_promise(
            self.state.get_control(loan_id), ladder.business_date(event_time, self.policy)
        )
        if broken is not None:
            self.state.note_broken_promise(loan_id, broken)
            logger.info("broken promise remembered", extra={"loan_id": loan_id, "promised_date": broken.isoformat()})

    def _poke(self, item: Mapping[str, Any] | None) -> None:
        """Wake the planner shard of the loan's bucket, only for a loan in the ladder (OPEN and valid)."""
        bucket = item.get("ladder_bucket") if item is not None else None
        if bucket:
            self.state.wake_planner(int(str(bucket)))

    def payment_received(self, payment: PaymentReceived, now: dt.datetime) -> dict[str, Any]:
        """Confirm the payment by SMS once, with the balance the live loan still shows.

        Upstream publishes PaymentReceived once its ledger has the payment, so the LoansTable
        item is the balance; the planner and sender stop chasing it from that item.
        """
        item = self.loans.get_many([payment.loan_id]).get(payment.loan_id)
        if item is None:
            return self._not_confirmed(payment, "loan_not_found")
        try:
            loan = parse_loan(item)
        except InvalidLoan as exc:
            return self._not_confirmed(payment, exc.reason)
        if loan.currency != payment.currency:
            return self._not_confirmed(payment, "currency_mismatch")

        today = ladder.business_date(now, self.policy)
        control = self.state.get_control(loan.loan_id)
        paid_on = ladder.business_date(payment.paid_at, self.policy)
        if control is not None and control.promised_date is not None and promise_kept(control, payment, paid_on):
            self.state.clear_promise(loan.loan_id, control.promised_date)
        if self.closer is not None:
            self.closer.close(loan, now)  # the item says PAID (or CLOSED): the loan's cases close

        remaining = Decimal(0)
        if loan.status is LoanStatus.OPEN:
            remaining = loan.amount_due + ladder.late_fees(loan, today, self.policy)
        locale = loan.locale or self.policy.default_locale
        payment_id = f"{payment.paid_at.astimezone(dt.UTC).isoformat()}#{payment.amount}"
        reference = reference_code(loan.loan_id, loan.cycle, PAYMENT_CONFIRMATION)
        sms = render_service(
            self.policy,
            kind=PAYMENT_CONFIRMATION,
            locale=locale,
            name=loan.borrower_name,
            loan_id=loan.loan_id,
            currency=loan.currency,
            reference=reference,
            paid=payment.amount,
            remaining=remaining,
        )
        notice = Notice(
            kind=PAYMENT_CONFIRMATION,
            owner=f"LOAN#{loan.loan_id}",
            event_id=payment_id,
            phone=loan.phone,
            sms=sms,
            locale=locale,
            reference=reference,
            subject=LoanSubject(loan.loan_id, loan.borrower_id, loan.cycle, loan.amount_due, loan.currency),
        )
        result = self.notices.send(notice, now)
        return {"confirmation": result.value, "remaining": str(remaining)}

    def _not_confirmed(self, payment: PaymentReceived, reason: str) -> dict[str, Any]:
        logger.warning("payment not confirmed by SMS", extra={"loan_id": payment.loan_id, "reason": reason})
        metrics.add_metric(name="PaymentConfirmationSkipped", unit=MetricUnit.Count, value=1)
        return {"confirmation": "skipped", "reason": reason}
