"""Planning run: find loans with a reminder due, record what is held back, enqueue send jobs.

The schedule fires hourly, but most hours nothing the planner read can have changed: every
borrower is asleep or already handled. A complete run therefore leaves an agenda saying when its
answer could first change (a window opens, a deferral or a stale plan expires, the business day
turns, at the latest after LONGEST_SLEEP), and fires before then read only that agenda. A borrower
event or a send-time deferral bumps the agenda's poke version, so the next fire reads again.

One loan never stops a run: an item that breaks the contract, or a loan whose handling raises
on its own data (arithmetic on an absurd amount, a corrupt state item), is set aside with a
SUPPRESSED record (stage `planning`, one per loan and day), a log line and a metric, and the run
goes on (`records.SetAside`). Such a loan is looked at again at the next read of the book.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from dunning import compliance, decisions, ladder
from dunning.borrower_events import effective_loan
from dunning.dal.deliveries import DeliveriesRepository
from dunning.dal.loans import LoansRepository
from dunning.dal.queue import JobQueue
from dunning.dal.state import ClaimKey, StateRepository
from dunning.models.jobs import JobLine, SendJob, utc_iso
from dunning.models.loan import InvalidLoan, Loan, LoanStatus, outstanding, parse_loan
from dunning.models.money import quantize
from dunning.models.policy import Policy
from dunning.models.state import ClaimState, LoanControl, PlannerAgenda, SendClaim
from dunning.observability import MetricUnit, logger, metrics
from dunning.records import SetAside, is_loan_fault, suppression_record

MAX_LINES_PER_JOB = 25
STATE_BATCH = 200  # loans whose state is read in one go
# The longest the planner goes without reading the book: how late, at worst, it notices a loan
# that upstream added or changed without any event of ours (it cannot miss one: the read finds it).
LONGEST_SLEEP = dt.timedelta(hours=6)


@dataclass
class _Wake:
    """The earliest instant at which this run's answer could change."""

    at: dt.datetime

    def no_later_than(self, when: dt.datetime | None) -> None:
        if when is not None and when < self.at:
            self.at = when


INSTALMENTS_CURSOR = "instalments"  # a resumed run with only the repayment plans left


def _parse_cursor(cursor: str | None) -> dt.date | None:
    """The first due date a resumed run plans (a date after every window once only instalments are left)."""
    if cursor is None:
        return None
    if cursor == INSTALMENTS_CURSOR:
        return dt.date.max
    try:
        return dt.date.fromisoformat(cursor)
    except ValueError:
        raise ValueError(f"cursor must be a due date (YYYY-MM-DD) or {INSTALMENTS_CURSOR!r}, got {cursor!r}") from None


Candidates = dict[str, list[tuple[Loan, ladder.Stage]]]  # borrower id -> their loans due now, with the stage


@dataclass
class PlanReport:
    now: str
    segment: int
    total_segments: int
    loans_read: int = 0
    jobs_enqueued: int = 0
    lines_enqueued: int = 0
    invalid: Counter[str] = field(default_factory=Counter)
    suppressed: Counter[str] = field(default_factory=Counter)
    waiting: Counter[str] = field(default_factory=Counter)
    due_dates_done: int = 0
    complete: bool = True
    cursor: str | None = None  # where an incomplete run resumes (the state machine passes it back)
    asleep_until: str | None = None  # set when the agenda said nothing can have changed yet

    def as_dict(self) -> dict[str, object]:
        return {
            "now": self.now,
            "segment": self.segment,
            "total_segments": self.total_segments,
            "loans_read": self.loans_read,
            "jobs_enqueued": self.jobs_enqueued,
            "lines_enqueued": self.lines_enqueued,
            "invalid": dict(self.invalid),
            "suppressed": dict(self.suppressed),
            "waiting": dict(self.waiting),
            "due_dates_done": self.due_dates_done,
            "complete": self.complete,
            "cursor": self.cursor,
            "asleep_until": self.asleep_until,
        }


@dataclass
class _Run:
    """One planning run: its clock, what it found, and when its answer could first change."""

    now: dt.datetime
    today: dt.date
    report: PlanReport
    wake: _Wake
    candidates: Candidates = field(default_factory=lambda: defaultdict(list))


@dataclass
class Planner:
    loans: LoansRepository
    state: StateRepository
    deliveries: DeliveriesRepository
    queue: JobQueue
    policy: Policy
    retention_days: int

    @property
    def _set_aside(self) -> SetAside:
        return SetAside(self.deliveries, "planning", self.retention_days)

    def run(
        self,
        now: dt.datetime,
        *,
        shard: int | None = None,
        shards: int = 1,
        cursor: str | None = None,
        time_left: Callable[[], float] = lambda: float("inf"),
        min_seconds_left: float = 20.0,
    ) -> PlanReport:
        """Plan this shard's due dates; stop cleanly between due dates when time runs short.

        Until the planner reads by shard, a shard is one of the old due-date segments (no shard:
        every due date). The cursor is the first due date not yet planned (`instalments` once only
        the repayment plans are left); every invocation plans at least one due date before it
        looks at the clock, so a resumed shard always moves on.
        """
        segment, total_segments = (0, 1) if shard is None else (shard, shards)
        if not 0 <= segment < total_segments:
            raise ValueError(f"shard must be in 0..{total_segments - 1}, got {segment}")
        resume_from = _parse_cursor(cursor)
        report = PlanReport(now=now.isoformat(), segment=segment, total_segments=total_segments)
        agenda, poke_version = self.state.planner_agenda(segment, total_segments)
        # A resumed run (cursor) finishes what it started, whatever the agenda says.
        if (
            cursor is None
            and agenda is not None
            and agenda.poke_version == poke_version
            and agenda.read_at <= now < agenda.wake_at
        ):
            report.asleep_until = utc_iso(agenda.wake_at)
            metrics.add_metric(name="PlannerRunsAsleep", unit=MetricUnit.Count, value=1)
            return report
        wake = _Wake(min(ladder.next_business_day(now, self.policy), now + LONGEST_SLEEP))
        run = _Run(now, ladder.business_date(now, self.policy), report, wake)
        earliest, latest = ladder.due_date_window(run.today, self.policy)
        # Unsharded runs read the whole window in one query; a shard reads its own due dates.
        days = [
            earliest + dt.timedelta(days=n)
            for n in range((latest - earliest).days + 1)
            if (earliest + dt.timedelta(days=n)).toordinal() % total_segments == segment
        ]
        ranges = [(earliest, latest)] if total_segments == 1 and resume_from is None else [(day, day) for day in days]
        if resume_from is not None:
            ranges = [(first, last) for first, last in ranges if first >= resume_from]
        progressed = False
        for first, last in ranges:
            if progressed and time_left() < min_seconds_left:
                report.complete, report.cursor = False, first.isoformat()
                logger.warning("planner stopping early: time limit near", extra={"due_date": first.isoformat()})
                break
            self._decide_in_batches(self._consider_all(self.loans.open_loans_due_between(first, last), {}, run), run)
            report.due_dates_done += (last - first).days + 1
            progressed = True
        if report.complete and progressed and time_left() < min_seconds_left:
            report.complete, report.cursor = False, INSTALMENTS_CURSOR
        elif report.complete:
            self._plan_instalments(earliest, latest, set(days), run)
        self._enqueue(run)
        metrics.add_metric(name="JobsEnqueued", unit=MetricUnit.Count, value=report.jobs_enqueued)
        if report.complete and cursor is None:
            # An incomplete run leaves the old agenda, already due: the next fire reads again. So
            # does a resumed one: its last invocation saw only the due dates it planned itself.
            agenda = PlannerAgenda(wake_at=wake.at, read_at=now, poke_version=poke_version)
            self.state.save_planner_agenda(segment, total_segments, agenda)
        return report

    def _plan_instalments(self, earliest: dt.date, latest: dt.date, days: set[dt.date], run: _Run) -> None:
        """Loans under a repayment plan with an instalment in this run's due dates (one Query).

        A loan whose upstream due date is in the window was read from OpenLoansByDueDate (by
        this run or by the shard owning that date) and is left to that read.
        """
        instalments = {
            loan_id: due_date
            for loan_id, due_date in self.state.plan_loans_due_between(earliest, latest)
            if due_date in days
        }
        items = [
            item
            for item in self.loans.get_many(sorted(instalments)).values()
            if item.get("status") == LoanStatus.OPEN.value
            and not earliest.isoformat() <= str(item.get("due_date") or "") <= latest.isoformat()
        ]
        self._decide_in_batches(self._consider_all(items, instalments, run), run)

    def _consider_all(
        self, items: Iterable[dict[str, object]], instalments: Mapping[str, dt.date], run: _Run
    ) -> list[tuple[Loan, ladder.Stage]]:
        """The loans that may be due now (instalments: the plan's due date per loan id, if any)."""
        due = []
        for item in items:
            considered = self._consider(item, instalments.get(str(item.get("loan_id"))), run)
            if considered is not None:
                due.append(considered)
        return due

    def _decide_in_batches(self, due: list[tuple[Loan, ladder.Stage]], run: _Run) -> None:
        for start in range(0, len(due), STATE_BATCH):
            self._decide(due[start : start + STATE_BATCH], run)

    def _consider(
        self,
        item: dict[str, object],
        instalment_due: dt.date | None,
        run: _Run,
    ) -> tuple[Loan, ladder.Stage] | None:
        """The loan and the stage it may be due for, or None when no state need be read for it."""
        run.report.loans_read += 1
        try:
            loan = parse_loan(item)
        except InvalidLoan as exc:
            run.report.invalid[self._set_aside.invalid(exc, item, run.now, run.today)] += 1
            return None
        except Exception as exc:
            if not is_loan_fault(exc):
                raise
            run.report.invalid[self._set_aside.unprocessable_item(exc, item, run.now, run.today)] += 1
            return None
        try:
            stage = ladder.current_stage(instalment_due or loan.due_date, run.today, self.policy)
            if stage is None:
                return None
            # The sums its SMS will state: a loan whose amounts break them is set aside here, never enqueued.
            quantize(outstanding(loan) + ladder.late_fees(loan, run.today, self.policy), loan.currency)
            timezone = decisions.borrower_timezone(loan, self.policy)
            if not compliance.in_send_window(run.now, timezone, loan.phone, self.policy):
                # Cheap pure check first: most hours most borrowers are asleep; no state read for them.
                run.report.waiting["outside_window"] += 1
                run.wake.no_later_than(compliance.next_window_open(run.now, timezone, loan.phone, self.policy))
                return None
        except Exception as exc:
            if not is_loan_fault(exc):
                raise
            self._unprocessable(exc, loan, run)
            return None
        return loan, stage

    def _decide(self, due: list[tuple[Loan, ladder.Stage]], run: _Run) -> None:
        keys: list[ClaimKey] = [(loan.loan_id, loan.cycle, stage.id) for loan, stage in due]
        try:
            claims, controls, opted_out = self.state.load(keys, [loan.phone for loan, _ in due])
        except Exception as exc:
            # A state item that cannot be read (a corrupt CONTROL or claim) fails the batched read:
            # read loan by loan, so that only the loan it belongs to is set aside.
            if not is_loan_fault(exc):
                raise
            if len(due) == 1:
                self._unprocessable(exc, due[0][0], run)
            else:
                for one in due:
                    self._decide([one], run)
            return
        # Under a repayment plan the loan is chased per instalment: its stage and claim follow the instalment.
        chased: list[tuple[Loan, ClaimKey]] = []
        for (upstream, _), guessed in zip(due, keys, strict=True):
            try:
                found = self._chase(upstream, guessed, controls.get(upstream.loan_id), run)
            except Exception as exc:
                if not is_loan_fault(exc):
                    raise
                self._unprocessable(exc, upstream, run)
                continue
            if found is not None:
                chased.append(found)
        read = set(keys)
        unread = [key for _, key in chased if key not in read]
        if unread:
            try:
                claims.update(self.state.load(unread, [])[0])
            except Exception as exc:
                if not is_loan_fault(exc):
                    raise
                chased = [(ln, key) for ln, key in chased if key in read or self._load_claim(ln, key, claims, run)]
        for loan, key in chased:
            try:
                self._verdict(loan, key, claims.get(key), controls.get(loan.loan_id), loan.phone in opted_out, run)
            except Exception as exc:
                if not is_loan_fault(exc):
                    raise
                self._unprocessable(exc, loan, run)

    def _chase(
        self, upstream: Loan, guessed: ClaimKey, control: LoanControl | None, run: _Run
    ) -> tuple[Loan, ClaimKey] | None:
        """The loan as collection sees it and the claim it is chased under; None when nothing is due."""
        loan = effective_loan(upstream, control)
        if loan is upstream:
            return loan, guessed
        stage = ladder.current_stage(loan.due_date, run.today, self.policy)
        if loan.status is not LoanStatus.OPEN or stage is None:
            run.report.waiting["plan_paid" if loan.status is not LoanStatus.OPEN else "no_stage_due"] += 1
            return None
        return loan, (loan.loan_id, loan.cycle, stage.id)

    def _load_claim(self, loan: Loan, key: ClaimKey, claims: dict[ClaimKey, SendClaim], run: _Run) -> bool:
        """Read one claim after a batched read failed; False (the loan set aside) when it cannot be read."""
        try:
            claims.update(self.state.load([key], [])[0])
        except Exception as exc:
            if not is_loan_fault(exc):
                raise
            self._unprocessable(exc, loan, run)
            return False
        return True

    def _verdict(
        self,
        loan: Loan,
        key: ClaimKey,
        claim: SendClaim | None,
        control: LoanControl | None,
        opted_out: bool,
        run: _Run,
    ) -> None:
        if claim is not None and decisions.claim_blocks(claim, run.now):
            run.wake.no_later_than(decisions.replan_at(claim))
            return
        verdict = decisions.evaluate(loan, control, run.now, self.policy, opted_out=opted_out)
        if isinstance(verdict, decisions.Due):
            run.candidates[loan.borrower_id].append((loan, verdict.stage))
        elif isinstance(verdict, decisions.Suppress):
            self._suppress(loan, key, verdict, run.now, run.report)
            run.wake.no_later_than(verdict.retry_after)
        else:
            run.report.waiting[verdict.why] += 1
            run.wake.no_later_than(verdict.until)

    def _suppress(
        self, loan: Loan, key: ClaimKey, verdict: decisions.Suppress, now: dt.datetime, report: PlanReport
    ) -> None:
        state = ClaimState.DEFERRED if verdict.retry_after else ClaimState.SUPPRESSED
        record = suppression_record(
            loan_id=loan.loan_id,
            borrower_id=loan.borrower_id,
            cycle=loan.cycle,
            stage=key[2],
            reason=verdict.reason,
            now=now,
            retention_days=self.retention_days,
            amount_due=loan.amount_due,
            currency=loan.currency,
        )
        # Record first: a crash after it only repeats the record, never loses the decision.
        self.deliveries.put(record)
        self.state.settle(
            key,
            loan.borrower_id,
            state,
            now,
            reason=verdict.reason,
            retry_after=verdict.retry_after,
            record_id=record.record_id,
        )
        report.suppressed[verdict.reason] += 1
        metrics.add_metric(name=f"Suppressed_{verdict.reason}", unit=MetricUnit.Count, value=1)

    def _unprocessable(self, exc: Exception, loan: Loan, run: _Run) -> None:
        reason = self._set_aside.unprocessable(
            exc, loan_id=loan.loan_id, borrower_id=loan.borrower_id, cycle=loan.cycle, now=run.now, today=run.today
        )
        run.report.invalid[reason] += 1

    def _enqueue(self, run: _Run) -> None:
        now, candidates, report = run.now, run.candidates, run.report
        stale_before = now - decisions.REPLAN_AFTER
        jobs: list[SendJob] = []
        for borrower_id, due in candidates.items():
            lines = [
                JobLine(loan_id=loan.loan_id, cycle=loan.cycle, stage=stage.id)
                for loan, stage in due
                if self.state.plan((loan.loan_id, loan.cycle, stage.id), borrower_id, now, stale_before)
            ]
            for start in range(0, len(lines), MAX_LINES_PER_JOB):
                jobs.append(
                    SendJob(
                        borrower_id=borrower_id, lines=tuple(lines[start : start + MAX_LINES_PER_JOB]), planned_at=now
                    )
                )
        failed = self.queue.send(jobs)
        if failed:
            # Their claims stay PLANNED: the next run re-enqueues them once REPLAN_AFTER has passed.
            logger.error("some jobs were not accepted by SQS", extra={"count": len(failed)})
            metrics.add_metric(name="EnqueueFailures", unit=MetricUnit.Count, value=len(failed))
        if candidates:
            # The claims just planned (by this run or a concurrent one) are replanned after
            # REPLAN_AFTER if their job is lost or never accepted: a fire must read them then.
            run.wake.no_later_than(now + decisions.REPLAN_AFTER)
        report.jobs_enqueued = len(jobs) - len(failed)
        report.lines_enqueued = sum(len(j.lines) for j in jobs if j not in failed)
