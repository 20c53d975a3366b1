"""Escalation: hand a loan cycle to human collectors once SMS no longer work (docs/contract.md#events-out).

A case opens, once per loan cycle, when the SMS ladder is exhausted (days past due reach
`ladder.escalation_day`), or earlier when the cycle's last `escalation.failed_in_a_row` SMS all
failed delivery, when the borrower opted out of SMS while the loan is overdue, when the loan has
no phone an SMS can reach (`unreachable`: from the first day overdue, for an item otherwise
valid), or when two promises of the cycle were broken (`broken_promises`). Loans on a dispute
hold or a promise/grace pause are left alone until it ends; a loan on a repayment plan is judged
on its next unpaid instalment (`effective_loan`, as the planner and sender see it), so a plan kept
up to date is never past the ladder. The rules are pure; the `Escalator` reads and writes through
the data-access layer.

Closing a case when its loan is paid or closed is `case_closing`'s.

One loan never stops the run: an item that breaks the contract, or a loan whose handling raises
on its own data (fees on an absurd amount, a corrupt case or CONTROL item), is set aside with a
SUPPRESSED record (stage `escalation`, one per loan and day), a log line and a metric
(`records.SetAside`); the next daily run looks at it again.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from dunning import ladder
from dunning.chased import effective_loan, missed_promise
from dunning.dal.ladder import Cursor
from dunning.dal.ports import CaseStore, DeliveryHistory, EscalationState, EventSink, LadderPages, LiveLoans
from dunning.models.delivery import Outcome, StoredRecord
from dunning.models.loan import (
    InvalidLoan,
    Loan,
    LoanStatus,
    UnreachableLoan,
    outstanding,
    parse_loan,
    parse_unreachable,
)
from dunning.models.policy import Policy
from dunning.models.state import CollectionCase, LoanControl
from dunning.models.timestamps import utc_iso
from dunning.observability import MetricUnit, logger, metrics
from dunning.records import SetAside, is_loan_fault
from dunning.sharding import check_shard, in_shard, partitions_of_shard

DETAIL_TYPE = "CollectionCaseOpened"
BROKEN_PROMISES = 2  # broken promises in one cycle that hand it to collectors (docs/contract.md#events-out)
# Outcomes of an SMS that actually went out to the carrier (UNCERTAIN ones are for people to review).
SMS_OUTCOMES = frozenset({Outcome.SENT, Outcome.DELIVERED, Outcome.FAILED})
BATCH = 100  # loans whose cases and controls are read in one go: one page of the ladder index


@dataclass(frozen=True)
class CycleHistory:
    """What the SMS of one loan cycle achieved, oldest first."""

    reminders_sent: int
    last_outcome: str | None
    trailing_failures: int


NO_FAILURES = CycleHistory(reminders_sent=0, last_outcome=None, trailing_failures=0)  # only trailing_failures is read


def cycle_history(records: Iterable[StoredRecord], cycle: str) -> CycleHistory:
    """Summarise a loan's delivery records for one cycle (records sort by record_id = time)."""
    outcomes = [
        r.outcome for r in sorted(records, key=lambda r: r.record_id) if r.cycle == cycle and r.outcome in SMS_OUTCOMES
    ]
    trailing = 0
    for outcome in reversed(outcomes):
        if outcome is not Outcome.FAILED:
            break
        trailing += 1
    return CycleHistory(len(outcomes), outcomes[-1].value if outcomes else None, trailing)


def broken_promises(control: LoanControl | None, loan: Loan, today: dt.date) -> frozenset[dt.date]:
    """The promises of the cycle `loan` is chased for that were broken by `today`.

    Those remembered on CONTROL and the current one once its date has passed unkept (a payment
    that keeps a promise removes it); promises made about an earlier instalment do not count.
    """
    if control is None:
        return frozenset()
    broken = {day for day in control.broken_promises if day >= loan.due_date}
    current = missed_promise(control, loan, today)
    if current is not None:
        broken.add(current)
    return frozenset(broken)


def escalation_reason(
    loan: Loan,
    history: CycleHistory,
    today: dt.date,
    policy: Policy,
    *,
    opted_out: bool,
    control: LoanControl | None = None,
) -> str | None:
    """Why the loan's cycle goes to human collectors today, or None. Only overdue loans escalate.

    `loan` is the loan as collection sees it (`effective_loan`): under a repayment plan, its next
    unpaid instalment, so a plan kept up to date is neither overdue nor past the ladder.
    """
    if loan.status is not LoanStatus.OPEN:
        return None  # a fully paid plan
    dpd = ladder.days_past_due(loan.due_date, today)
    if dpd < 1:
        return None
    if isinstance(loan, UnreachableLoan):
        return "unreachable"  # no SMS ever reaches it: from the first day overdue
    if dpd >= policy.ladder.escalation_day:
        return "ladder_exhausted"
    if history.trailing_failures >= policy.escalation.failed_in_a_row:
        return "delivery_failed"
    if opted_out and outstanding(loan) > 0:
        return "opted_out"
    if len(broken_promises(control, loan, today)) >= BROKEN_PROMISES:
        return "broken_promises"
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


def plan_is_current(loan: Loan, control: LoanControl | None, today: dt.date) -> bool:
    """A repayment plan is agreed and kept: its next unpaid instalment is not past due (or none is left)."""
    if control is None or not control.plan:
        return False
    seen = effective_loan(loan, control)
    return seen.status is not LoanStatus.OPEN or ladder.days_past_due(seen.due_date, today) < 1


def case_detail(
    loan: Loan, history: CycleHistory, reason: str, today: dt.date, now: dt.datetime, policy: Policy
) -> dict[str, Any]:
    """The CollectionCaseOpened detail (docs/contract.md#events-out); amounts as exact decimal strings."""
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


@dataclass
class EscalationReport:
    now: str
    shard: int | None = None
    shards: int = 1
    loans_read: int = 0
    opened: Counter[str] = field(default_factory=Counter)
    completed: int = 0  # half-done cases of earlier runs whose event went out now
    already_open: int = 0
    held: Counter[str] = field(default_factory=Counter)
    invalid: Counter[str] = field(default_factory=Counter)
    complete: bool = True
    cursor: str | None = None  # where the next invocation resumes when not complete

    def as_dict(self) -> dict[str, object]:
        return {
            "now": self.now,
            "shard": self.shard,
            "shards": self.shards,
            "loans_read": self.loans_read,
            "opened": dict(self.opened),
            "completed": self.completed,
            "already_open": self.already_open,
            "held": dict(self.held),
            "invalid": dict(self.invalid),
            "complete": self.complete,
            "cursor": self.cursor,
        }


@dataclass(frozen=True)
class _Day:
    """A run's clock and its tally, which every loan it looks at shares."""

    now: dt.datetime
    today: dt.date  # the business date of `now`
    report: EscalationReport


@dataclass
class Escalator:
    index: LadderPages
    loans: LiveLoans
    deliveries: DeliveryHistory
    state: EscalationState
    cases: CaseStore
    bus: EventSink
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
        """Every overdue loan of the shard (ladder index items chasing a date before today), a page at a time.

        Each page's loans are read live from LoansTable (the rules judge upstream's item, and the opt-out
        check needs its number). Near the time limit the run stops between pages with a cursor; every step
        here is safe to repeat.
        """
        one, of = (0, 1) if shard is None else (shard, shards)
        check_shard(one, of)
        partitions = partitions_of_shard(one, of)
        start = Cursor.decode(cursor) if cursor is not None else Cursor(partitions[0])
        if start.partition not in partitions:
            raise ValueError(f"cursor is for partition {start.partition}, not in shard {one} of {of}")
        report = EscalationReport(now=now.isoformat(), shard=shard, shards=of)
        day = _Day(now, ladder.business_date(now, self.policy), report)
        overdue = f"{(day.today - dt.timedelta(days=1)).isoformat()}#\uffff"
        for partition in partitions[partitions.index(start.partition) :]:
            key = start.start_key if partition == start.partition else None
            while True:
                if time_left() < min_seconds_left:
                    report.complete = False
                    report.cursor = Cursor(partition, key).encode()
                    logger.warning("escalation stopping early: time limit near", extra={"partition": partition})
                    metrics.add_metric(
                        name="CollectionCasesOpened", unit=MetricUnit.Count, value=sum(report.opened.values())
                    )
                    return report
                page = self.index.page(f"{partition:02d}", "0", overdue, key, BATCH)
                mine = [str(item["loan_id"]) for item in page.items if in_shard(item["ladder_bucket"], one, of)]
                self._escalate_page(mine, day)
                key = page.next_key
                if key is None:
                    break
        metrics.add_metric(name="CollectionCasesOpened", unit=MetricUnit.Count, value=sum(report.opened.values()))
        return report

    def _escalate_page(self, loan_ids: list[str], day: _Day) -> None:
        batch: list[Loan] = []
        for item in self.loans.get_many(loan_ids).values():  # a loan deleted upstream since is gone: nothing to do
            day.report.loans_read += 1
            try:
                batch.append(self._parse(item))
            except InvalidLoan as exc:
                day.report.invalid[self._set_aside.invalid(exc, item, day.now, day.today)] += 1
            except Exception as exc:
                if not is_loan_fault(exc):
                    raise
                day.report.invalid[self._set_aside.unprocessable_item(exc, item, day.now, day.today)] += 1
        self._escalate(batch, day)

    def _escalate(self, loans: list[Loan], day: _Day) -> None:
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
                self._unprocessable(exc, loans[0], day)
            else:
                for loan in loans:
                    self._escalate([loan], day)
            return
        _, _, opted_out = self.state.load([], [loan.phone for loan in loans if loan.phone])
        for loan in loans:
            try:
                control = controls.get(loan.loan_id)
                self._escalate_one(day, loan, cases.get(loan.loan_id), control, opted_out=loan.phone in opted_out)
            except Exception as exc:
                if not is_loan_fault(exc):
                    raise
                self._unprocessable(exc, loan, day)

    def _escalate_one(
        self, day: _Day, upstream: Loan, case: CollectionCase | None, control: LoanControl | None, *, opted_out: bool
    ) -> None:
        """One loan: finish a case an earlier run left half-done, or open one when a rule says so."""
        now, today, report = day.now, day.today, day.report
        # The loan as the planner and sender see it: under a plan, its next unpaid instalment is the cycle.
        loan = effective_loan(upstream, control)
        if loan.cycle != upstream.cycle:
            case = self.cases.load([(loan.loan_id, loan.cycle)])[0].get(loan.loan_id)
        if case is not None:
            if case.published:
                report.already_open += 1
            else:
                self._finish(loan, case.detail, now)
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
        reason = escalation_reason(loan, history, today, self.policy, opted_out=opted_out, control=control)
        if reason is None:
            self._remember_broken_promise(loan, control, today)
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

    def _parse(self, item: dict[str, Any]) -> Loan:
        """The loan of an item; one valid but for its phone is an `UnreachableLoan` (a case, not a set-aside)."""
        try:
            return parse_loan(item)
        except InvalidLoan as exc:
            unreachable = parse_unreachable(item, exc)
            if unreachable is None:
                raise
            return unreachable

    def _remember_broken_promise(self, loan: Loan, control: LoanControl | None, today: dt.date) -> None:
        """Keep the current promise on CONTROL once broken, so a later promise replacing it still counts it."""
        broken = missed_promise(control, loan, today)
        if control is not None and broken is not None and broken not in control.broken_promises:
            self.state.note_broken_promise(loan.loan_id, broken)

    def _unprocessable(self, exc: Exception, loan: Loan, day: _Day) -> None:
        reason = self._set_aside.unprocessable(
            exc, loan_id=loan.loan_id, borrower_id=loan.borrower_id, cycle=loan.cycle, now=day.now, today=day.today
        )
        day.report.invalid[reason] += 1

    def _history(self, loan: Loan) -> CycleHistory:
        return cycle_history(self.deliveries.history(loan.loan_id), loan.cycle)

    def _finish(self, loan: Loan, stored_detail: str, now: dt.datetime) -> None:
        """Complete a case an earlier run created but did not announce: the same detail, once."""
        self.cases.stop_cycle(loan.loan_id, loan.cycle)
        self._publish(loan, json.loads(stored_detail), now)

    def _publish(self, loan: Loan, detail: dict[str, Any], now: dt.datetime) -> None:
        self.bus.put(DETAIL_TYPE, detail, now)
        self.cases.mark_published(loan.loan_id, loan.cycle, now)
