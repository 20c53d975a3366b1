"""Escalation: hand a loan cycle to human collectors once SMS no longer work (DESIGN 1.3, 4.5).

A case opens, once per loan cycle, when the SMS ladder is exhausted (days past due reach
`ladder.escalation_day`), or earlier when the cycle's last `escalation.failed_in_a_row` SMS all
failed delivery, or when the borrower opted out of SMS while the loan is overdue. Loans on a
dispute hold or a promise/grace pause are left alone until it ends. The rules are pure; the
`Escalator` reads and writes through the data-access layer.

One loan never stops the run: an item that breaks the contract, or a loan whose handling raises
on its own data (fees on an absurd amount, a corrupt case or CONTROL item), is set aside with a
SUPPRESSED record (stage `escalation`, one per loan and day), a log line and a metric
(`records.SetAside`); the next daily run looks at it again.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dunning import ladder
from dunning.dal.bus import EventBus
from dunning.dal.cases import CaseRepository
from dunning.dal.deliveries import DeliveriesRepository
from dunning.dal.loans import LoansRepository
from dunning.dal.state import StateRepository
from dunning.models.delivery import Outcome
from dunning.models.jobs import utc_iso
from dunning.models.loan import InvalidLoan, Loan, outstanding, parse_loan
from dunning.models.policy import Policy
from dunning.models.state import LoanControl
from dunning.observability import MetricUnit, logger, metrics
from dunning.records import SetAside, is_loan_fault
from dunning.sharding import in_shard

DETAIL_TYPE = "CollectionCaseOpened"
# Outcomes of an SMS that actually went out to the carrier (UNCERTAIN ones are for people to review).
SMS_OUTCOMES = frozenset({Outcome.SENT, Outcome.DELIVERED, Outcome.FAILED})
BATCH = 100  # loans whose cases and controls are read in one go


@dataclass(frozen=True)
class CycleHistory:
    """What the SMS of one loan cycle achieved, oldest first."""

    reminders_sent: int
    last_outcome: str | None
    trailing_failures: int


NO_FAILURES = CycleHistory(reminders_sent=0, last_outcome=None, trailing_failures=0)  # only trailing_failures is read


def cycle_history(records: Iterable[Mapping[str, Any]], cycle: str) -> CycleHistory:
    """Summarise a loan's delivery records for one cycle (records sort by record_id = time)."""
    outcomes = [
        Outcome(str(r["outcome"]))
        for r in sorted(records, key=lambda r: str(r["record_id"]))
        if r.get("cycle") == cycle and r.get("outcome") in SMS_OUTCOMES
    ]
    trailing = 0
    for outcome in reversed(outcomes):
        if outcome is not Outcome.FAILED:
            break
        trailing += 1
    return CycleHistory(len(outcomes), outcomes[-1].value if outcomes else None, trailing)


def escalation_reason(
    loan: Loan, history: CycleHistory, today: dt.date, policy: Policy, *, opted_out: bool
) -> str | None:
    """Why the loan's cycle goes to human collectors today, or None. Only overdue loans escalate."""
    dpd = ladder.days_past_due(loan.due_date, today)
    if dpd < 1:
        return None
    if dpd >= policy.ladder.escalation_day:
        return "ladder_exhausted"
    if history.trailing_failures >= policy.escalation.failed_in_a_row:
        return "delivery_failed"
    if opted_out and outstanding(loan) > 0:
        return "opted_out"
    return None


def held_back(control: LoanControl | None, today: dt.date) -> str | None:
    """A dispute hold or a running pause (promise, grace) keeps collectors away too."""
    if control is None:
        return None
    if control.dispute_hold:
        return "hold_dispute"
    if control.paused_until is not None and today <= control.paused_until:
        return control.pause_reason or "paused"
    return None


def case_detail(
    loan: Loan, history: CycleHistory, reason: str, today: dt.date, now: dt.datetime, policy: Policy
) -> dict[str, Any]:
    """The CollectionCaseOpened detail (DESIGN 4.5); amounts as exact decimal strings."""
    return {
        "loan_id": loan.loan_id,
        "borrower_id": loan.borrower_id,
        "cycle": loan.cycle,
        "days_past_due": ladder.days_past_due(loan.due_date, today),
        "amount_due": str(loan.amount_due),
        "late_fees": str(ladder.late_fees(loan, today, policy)),
        "currency": loan.currency,
        "reminders_sent": history.reminders_sent,
        "last_outcome": history.last_outcome,
        "reason": reason,
        "opened_at": utc_iso(now),
    }


def _is_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


def _cursor_date(cursor: str) -> dt.date:
    if not _is_date(cursor):
        raise ValueError(f"cursor must be a due date (YYYY-MM-DD), got {cursor!r}")
    return dt.date.fromisoformat(cursor)


@dataclass
class EscalationReport:
    now: str
    loans_read: int = 0
    opened: Counter[str] = field(default_factory=Counter)
    completed: int = 0  # half-done cases of earlier runs whose event went out now
    already_open: int = 0
    held: Counter[str] = field(default_factory=Counter)
    invalid: Counter[str] = field(default_factory=Counter)
    complete: bool = True
    cursor: str | None = None  # where an incomplete run resumes: the first due date not yet handled

    def as_dict(self) -> dict[str, object]:
        return {
            "now": self.now,
            "loans_read": self.loans_read,
            "opened": dict(self.opened),
            "completed": self.completed,
            "already_open": self.already_open,
            "held": dict(self.held),
            "invalid": dict(self.invalid),
            "complete": self.complete,
            "cursor": self.cursor,
        }


@dataclass
class Escalator:
    loans: LoansRepository
    deliveries: DeliveriesRepository
    state: StateRepository
    cases: CaseRepository
    bus: EventBus
    policy: Policy
    retention_days: int

    @property
    def _set_aside(self) -> SetAside:
        return SetAside(self.deliveries, "escalation", self.retention_days)

    def run(
        self,
        now: dt.datetime,
        *,
        shard: int | None = None,
        shards: int = 1,
        cursor: str | None = None,
        time_left: Callable[[], float] = lambda: float("inf"),
        min_seconds_left: float = 20.0,
    ) -> EscalationReport:
        """This shard's OPEN overdue loans (read from the OpenLoansByDueDate index), in batches.

        Until escalation reads by shard, a shard run reads every overdue loan and keeps its shard's
        borrowers (dunning.sharding). Near its time limit it stops between due dates, after at least
        one: the cursor is the first due date not yet handled.
        """
        report = EscalationReport(now=now.isoformat())
        today = ladder.business_date(now, self.policy)
        batch: list[Loan] = []
        first = dt.date.min if cursor is None else _cursor_date(cursor)
        handling: str | None = None  # the due date (as stored) of the loans being handled
        for item in self.loans.open_loans_due_between(first, today - dt.timedelta(days=1)):
            if not in_shard(str(item.get("borrower_id")), shard, shards):
                continue
            due = str(item.get("due_date"))
            if handling is not None and due != handling and _is_date(due):
                self._escalate(batch, now, today, report)
                batch = []
                if time_left() < min_seconds_left:
                    # The rest is picked up by the resumed run: every step here is safe to repeat.
                    report.complete, report.cursor = False, due
                    logger.warning("escalation stopping early: time limit near", extra={"due_date": due})
                    break
            handling = due
            report.loans_read += 1
            try:
                batch.append(parse_loan(item))
            except InvalidLoan as exc:
                report.invalid[self._set_aside.invalid(exc, item, now, today)] += 1
                continue
            except Exception as exc:
                if not is_loan_fault(exc):
                    raise
                report.invalid[self._set_aside.unprocessable_item(exc, item, now, today)] += 1
                continue
            if len(batch) == BATCH:
                self._escalate(batch, now, today, report)
                batch = []
        self._escalate(batch, now, today, report)
        metrics.add_metric(name="CollectionCasesOpened", unit=MetricUnit.Count, value=sum(report.opened.values()))
        return report

    def _escalate(self, loans: list[Loan], now: dt.datetime, today: dt.date, report: EscalationReport) -> None:
        if not loans:
            return
        try:
            cases, controls = self.cases.load([(loan.loan_id, loan.cycle) for loan in loans])
        except Exception as exc:
            # A case or CONTROL item that cannot be read fails the batched read: read loan by loan,
            # so that only the loan it belongs to is set aside.
            if not is_loan_fault(exc):
                raise
            if len(loans) == 1:
                self._unprocessable(exc, loans[0], now, today, report)
            else:
                for loan in loans:
                    self._escalate([loan], now, today, report)
            return
        _, _, opted_out = self.state.load([], [loan.phone for loan in loans])
        for loan in loans:
            try:
                control = controls.get(loan.loan_id)
                self._escalate_one(loan, cases.get(loan.loan_id), control, loan.phone in opted_out, now, today, report)
            except Exception as exc:
                if not is_loan_fault(exc):
                    raise
                self._unprocessable(exc, loan, now, today, report)

    def _escalate_one(
        self,
        loan: Loan,
        case: dict[str, Any] | None,
        control: LoanControl | None,
        opted_out: bool,
        now: dt.datetime,
        today: dt.date,
        report: EscalationReport,
    ) -> None:
        if case is not None:
            if case.get("published"):
                report.already_open += 1
            else:
                self._finish(loan, case["detail"], now)
                report.completed += 1
            return
        if control is not None and control.case_cycle == loan.cycle and control.case_detail:
            # An earlier run stopped the SMS and died before recording the case: finish that case.
            detail = json.loads(control.case_detail)
            if self.cases.open(loan.loan_id, loan.cycle, loan.borrower_id, detail, now):
                self._publish(loan, detail, now)
                report.completed += 1
            else:
                report.already_open += 1
            return
        hold = held_back(control, today)
        if hold:
            report.held[hold] += 1
            return
        # Trailing failures need the history only where an SMS of the loan ever failed.
        failed_before = control is not None and control.last_failed_delivery_at is not None
        history = self._history(loan) if failed_before else NO_FAILURES
        reason = escalation_reason(loan, history, today, self.policy, opted_out=opted_out)
        if reason is None:
            return
        if not failed_before:
            history = self._history(loan)  # the case detail counts the reminders sent
        detail = case_detail(loan, history, reason, today, now, self.policy)
        if self.cases.open(loan.loan_id, loan.cycle, loan.borrower_id, detail, now):
            self._publish(loan, detail, now)
            report.opened[reason] += 1
            logger.info("collection case opened", extra={"loan_id": loan.loan_id, "reason": reason})
        else:
            report.already_open += 1  # a concurrent run opened it first

    def _unprocessable(
        self, exc: Exception, loan: Loan, now: dt.datetime, today: dt.date, report: EscalationReport
    ) -> None:
        reason = self._set_aside.unprocessable(
            exc, loan_id=loan.loan_id, borrower_id=loan.borrower_id, cycle=loan.cycle, now=now, today=today
        )
        report.invalid[reason] += 1

    def _history(self, loan: Loan) -> CycleHistory:
        return cycle_history(self.deliveries.history(loan.loan_id), loan.cycle)

    def _finish(self, loan: Loan, stored_detail: str, now: dt.datetime) -> None:
        """Complete a case an earlier run created but did not announce: the same detail, once."""
        self.cases.stop_cycle(loan.loan_id, loan.cycle)
        self._publish(loan, json.loads(stored_detail), now)

    def _publish(self, loan: Loan, detail: dict[str, Any], now: dt.datetime) -> None:
        self.bus.put(DETAIL_TYPE, detail, now)
        self.cases.mark_published(loan.loan_id, loan.cycle, now)
