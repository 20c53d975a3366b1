"""Planning run: find loans with a reminder due, record what is held back, enqueue send jobs.

A run covers one shard of the book (`sharding`: the buckets b with b % shards == shard; without a
shard, every bucket) and reads only the ladder: per index partition holding its buckets, the ladder
index items (`dal.ladder`: each loan's CONTROL item, carrying upstream's values and the product's
state) whose chased due date is in the ladder's window, page by page. It decides from those items
alone (no LoansTable, claim or CONTROL read), puts what it read of each loan into its job line (the
sender decides from it and reads nothing in the usual case), takes the due stages with conditional writes that also
mark the stage on the item, and enqueues as it goes: at the end of a partition once a transaction's
worth of stages waits (a borrower's loans are all in one bucket, hence one partition: one job each).
Near its time limit it stops between pages and returns a cursor from which the next invocation
(same schedule time) resumes.

No job twice: a claim that exists is never taken again (PLANNED: its job may still be on the queue,
however long that takes). The mark on the CONTROL item (`planned` = `cycle#stage`, `planned_until`
for a deferral) lets a run skip a handled stage without any write; a run after a poke (something
changed: a send-time deferral, a borrower event) does not trust the marks and tries the claim's
conditional write instead, which a DEFERRED claim past its time lets through. A job SQS refuses
gets its claims back at once.

The schedule fires hourly, but most hours nothing the planner read can have changed: every
borrower is asleep or already handled. A complete run therefore leaves an agenda per shard saying
when its answer could first change (a window opens, a deferral expires, the business day turns, at
the latest after LONGEST_SLEEP), and fires before then read only that agenda and the shard's pokes.

One loan never stops a run: a loan whose handling raises on its own data (arithmetic on an absurd
amount, a corrupt state item) is set aside with a SUPPRESSED record (stage `planning`, one per loan
and day), a log line and a metric, and the run goes on (`records.SetAside`). Items that break the
contract never reach the index (LoanChangesFunction records them at intake).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import phonenumbers
from botocore.exceptions import BotoCoreError, ClientError

from dunning import decisions, ladder
from dunning.chased import effective_loan
from dunning.dal.ladder import Cursor
from dunning.dal.ports import JobSink, LadderPages, PlannerState, RecordSink
from dunning.dal.snapshots import snapshot_from_index
from dunning.dal.state import ClaimKey, ClaimWrite, marked_handled
from dunning.models.jobs import JobLine, SendJob
from dunning.models.loan import Loan, LoanStatus, mobile, outstanding
from dunning.models.money import quantize
from dunning.models.policy import Policy
from dunning.models.state import ClaimState, LoanControl, PlannerAgenda, SendClaim
from dunning.models.timestamps import utc_iso
from dunning.observability import MetricUnit, logger, metrics, tracer
from dunning.records import SetAside, is_loan_fault, suppression_record
from dunning.sharding import check_shard, in_shard, partitions_of_shard

MAX_LINES_PER_JOB = 25
PAGE_SIZE = 200  # index items per Query page
GIVE_BACK_ATTEMPTS = 3  # on top of the SDK's own retries: a claim left PLANNED without a job is a lost SMS
FLUSH_AT = 50  # due stages are claimed (a transaction takes 50) and enqueued at a partition's end from this many
FLUSH_LINES = 2000  # ...or as soon as this many wait (a memory bound; may split a borrower's loans in two jobs)
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


@dataclass
class PlanReport:
    now: str
    shard: int | None
    shards: int
    loans_read: int = 0
    pages_read: int = 0
    jobs_enqueued: int = 0
    lines_enqueued: int = 0
    invalid: Counter[str] = field(default_factory=Counter)
    suppressed: Counter[str] = field(default_factory=Counter)
    waiting: Counter[str] = field(default_factory=Counter)
    complete: bool = True
    cursor: str | None = None  # where the next invocation resumes when not complete
    asleep_until: str | None = None  # set when the agenda said nothing can have changed yet

    def as_dict(self) -> dict[str, object]:
        return {
            "now": self.now,
            "shard": self.shard,
            "shards": self.shards,
            "loans_read": self.loans_read,
            "pages_read": self.pages_read,
            "jobs_enqueued": self.jobs_enqueued,
            "lines_enqueued": self.lines_enqueued,
            "invalid": dict(self.invalid),
            "suppressed": dict(self.suppressed),
            "waiting": dict(self.waiting),
            "complete": self.complete,
            "cursor": self.cursor,
            "asleep_until": self.asleep_until,
        }


@cache
def stand_in_phone(region: str | None) -> str:
    """A number of the borrower's region: the send window depends on the region alone (the index holds no number).

    Cached per region (a few hundred at most): phonenumbers takes ~150 µs to find and format one."""
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE) if region else None
    if example is None:
        example = phonenumbers.example_number_for_non_geo_entity(800)
    if example is None:
        raise ValueError("no stand-in number for the send window")
    return phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)


_LOAN_FIELDS = tuple(Loan.model_fields)


class _IndexedLoan(Loan):
    """A loan read from the index: every upstream value is validated as in `Loan`; the phone is our own
    stand-in, checked once per region (`_mobile_stand_in`), so it is not parsed again for every loan."""

    phone: str


@cache
def _mobile_stand_in(phone: str) -> bool:
    """Whether `Loan` accepts the stand-in as a mobile (one without, e.g. +800, sets the loan aside as before)."""
    try:
        mobile(phone)
    except ValueError:
        return False
    return True


def indexed_loan(item: Mapping[str, Any]) -> Loan:
    """The loan as its index item holds it. Its phone is a stand-in of the number's region: the planner
    only derives the send window from it (no number to validate per loan); the job carries the item's own."""
    values = {name: value for name in _LOAN_FIELDS if (value := item.get(name)) is not None}
    values["phone"] = phone = stand_in_phone(item.get("phone_region"))
    values["borrower_name"] = "-"
    return (_IndexedLoan if _mobile_stand_in(phone) else Loan).model_validate(values)


def indexed_timezones(loan: Loan, item: Mapping[str, Any], policy: Policy) -> tuple[str, ...]:
    """The borrower's zones as `decisions.borrower_timezones` gives them for the real number: the item's
    `timezone`, else the number's zones the index keeps (`phone_zones`), else those of the stand-in."""
    if loan.timezone:
        return (loan.timezone,)
    zones = item.get("phone_zones")
    if zones:
        return tuple(str(zone) for zone in zones)
    return decisions.borrower_timezones(loan, policy)


@dataclass(slots=True)
class _Due:
    """A stage due, waiting for its claim and job: only what they need, as read (a partition's worth wait at once;
    the job line and its snapshot are built as the job goes out, so a run never holds them all)."""

    key: ClaimKey  # (loan id, cycle, stage id) of the loan as collection sees it (the instalment under a plan)
    item: Mapping[str, Any]  # the index item: the job line's snapshot of the loan (`snapshot_from_index`)
    control: LoanControl


@dataclass
class _Run:
    """One planning run (possibly over several invocations): its clock, what it found, when it must look again."""

    # The run's fixed clock, and the answers that depend on it and a few values (a due date; zones and region),
    # worked out once each and shared with `decisions.evaluate_at`.
    moment: decisions.Moment
    report: PlanReport
    wake: _Wake
    trust_marks: bool
    poke_version: int
    due: dict[str, list[_Due]] = field(default_factory=lambda: defaultdict(list))  # borrower id -> stages due

    @property
    def now(self) -> dt.datetime:
        return self.moment.now

    @property
    def today(self) -> dt.date:
        return self.moment.today

    @property
    def waiting_lines(self) -> int:
        return sum(len(lines) for lines in self.due.values())


@dataclass
class Planner:
    index: LadderPages
    state: PlannerState
    deliveries: RecordSink
    queue: JobSink
    policy: Policy
    retention_days: int

    @property
    def _set_aside(self) -> SetAside:
        return SetAside(self.deliveries, "planning", self.retention_days)

    @tracer.capture_method(capture_response=False, capture_error=False)
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
        """Plan one shard (every bucket without `shard`), from `cursor` if given; stop between pages near the limit."""
        one, of = (0, 1) if shard is None else (shard, shards)
        check_shard(one, of)
        report = PlanReport(now=now.isoformat(), shard=shard, shards=of)
        begun = self._begin(now, one, of, cursor, report)
        if begun is None:
            return report
        run, start = begun
        if self._read(run, start, one, of, time_left, min_seconds_left):
            self._flush(run)
            # An incomplete run leaves the old agenda, already due: the next fire reads again.
            agenda = PlannerAgenda(wake_at=run.wake.at, read_at=now, poke_version=run.poke_version)
            self.state.save_planner_agenda(one, of, agenda)
        metrics.add_metric(name="JobsEnqueued", unit=MetricUnit.Count, value=report.jobs_enqueued)
        return report

    def _begin(
        self, now: dt.datetime, one: int, of: int, cursor: str | None, report: PlanReport
    ) -> tuple[_Run, Cursor] | None:
        """The run's state and where it reads from: fresh (None when the agenda says nothing changed) or resumed."""
        partitions = partitions_of_shard(one, of)
        if cursor is None:
            agenda, poke_version = self.state.planner_agenda(one, of)
            if agenda is not None and agenda.poke_version == poke_version and agenda.read_at <= now < agenda.wake_at:
                report.asleep_until = utc_iso(agenda.wake_at)
                metrics.add_metric(name="PlannerRunsAsleep", unit=MetricUnit.Count, value=1)
                return None
            # Marks are trusted only when nothing was poked since the last complete read of the shard.
            trust = agenda is not None and agenda.poke_version == poke_version
            start = Cursor(partitions[0])
            wake_at = min(ladder.next_business_day(now, self.policy), now + LONGEST_SLEEP)
        else:
            start = Cursor.decode(cursor)
            if start.partition not in partitions:
                raise ValueError(f"cursor is for partition {start.partition}, not in shard {one} of {of}")
            extra = start.extra
            trust, poke_version, wake_at = bool(extra["t"]), int(extra["p"]), dt.datetime.fromisoformat(extra["w"])
        run = _Run(decisions.Moment(now, self.policy), report, _Wake(wake_at), trust, poke_version)
        return run, start

    def _read(
        self, run: _Run, start: Cursor, one: int, of: int, time_left: Callable[[], float], min_seconds_left: float
    ) -> bool:
        """Read the shard's partitions from `start`, planning as it goes; False when it stopped near the limit."""
        partitions = partitions_of_shard(one, of)
        earliest, latest = ladder.due_date_window(run.today, self.policy)
        window = (earliest.isoformat(), f"{latest.isoformat()}#\uffff")
        read_one = False  # at least one page per invocation, whatever the time left: every resumption progresses
        for partition in partitions[partitions.index(start.partition) :]:
            key = start.start_key if partition == start.partition else None
            while True:
                if read_one and time_left() < min_seconds_left:
                    self._stop_early(run, partition, key)
                    return False
                key = self._read_page(run, partition, window, key, one, of)
                read_one = True
                if key is None:
                    break
            if run.waiting_lines >= FLUSH_AT:
                self._flush(run)  # a borrower's loans are all in one partition: one job per borrower
        return True

    def _read_page(
        self, run: _Run, partition: int, window: tuple[str, str], key: dict[str, Any] | None, one: int, of: int
    ) -> dict[str, Any] | None:
        """One index page of the partition: each item of the shard considered; the next page's key."""
        page = self.index.page(f"{partition:02d}", window[0], window[1], key, PAGE_SIZE)
        run.report.pages_read += 1
        for item in page.items:
            if in_shard(item["ladder_bucket"], one, of):
                self._consider(item, run)
        if run.waiting_lines >= FLUSH_LINES:
            self._flush(run)
        return page.next_key

    def _stop_early(self, run: _Run, partition: int, key: dict[str, Any] | None) -> None:
        """Enqueue what waits and leave a cursor for the next invocation (same schedule time)."""
        self._flush(run)
        run.report.complete = False
        extra = {"t": run.trust_marks, "p": run.poke_version, "w": run.wake.at.isoformat()}
        run.report.cursor = Cursor(partition, key, extra).encode()
        logger.warning("planner stopping early: time limit near", extra={"partition": partition})

    # ---------------------------------------------------------------- one index item
    def _consider(self, item: dict[str, Any], run: _Run) -> None:
        run.report.loans_read += 1
        if item.get("unreachable"):
            # Valid but for its phone: no SMS can reach it (recorded at intake); escalation opens its case.
            run.report.waiting["unreachable"] += 1
            return
        try:
            upstream = indexed_loan(item)
        except Exception as exc:
            if not is_loan_fault(exc):
                raise
            run.report.invalid[self._set_aside.unprocessable_item(exc, item, run.now, run.today)] += 1
            return
        try:
            self._decide(upstream, item, run)
        except Exception as exc:
            if not is_loan_fault(exc):
                raise
            self._unprocessable(exc, upstream, run)

    def _decide(self, upstream: Loan, item: dict[str, Any], run: _Run) -> None:
        control = LoanControl.model_validate(item)
        # Under a repayment plan the loan is chased per instalment: its stage and claim follow the instalment.
        loan = effective_loan(upstream, control)
        if loan.status is not LoanStatus.OPEN:
            run.report.waiting["plan_paid"] += 1
            return
        stage = run.moment.stage(loan.due_date)
        if stage is None:
            return
        # The sums its SMS will state: a loan whose amounts break them is set aside here, never enqueued.
        quantize(outstanding(loan) + ladder.late_fees(loan, run.today, self.policy), loan.currency)
        zones = indexed_timezones(loan, item, self.policy)
        inside, opens = run.moment.window(zones, loan.phone)
        if not inside:
            # Cheap pure check first: most hours most borrowers are asleep.
            run.report.waiting["outside_window"] += 1
            run.wake.no_later_than(opens)
            return
        handled, until = marked_handled(item, loan.cycle, stage.id, run.now)
        if handled and run.trust_marks:
            run.report.waiting["already_handled"] += 1
            run.wake.no_later_than(until)
            return
        # The product's opt-out list is the sender's to read (with SNS's) in its batch: not read here.
        # The same moment: the stage and the window just checked are not worked out again.
        verdict = decisions.evaluate_at(run.moment, loan, control, opted_out=False, zones=zones)
        if isinstance(verdict, decisions.Due):
            key = (loan.loan_id, loan.cycle, verdict.stage.id)
            run.due[loan.borrower_id].append(_Due(key, item, control))
        elif handled:
            run.report.waiting["already_handled"] += 1  # handled before; only a deferral can need us again
            run.wake.no_later_than(until)
        elif isinstance(verdict, decisions.Suppress):
            self._suppress(loan, stage, verdict, run)
        else:
            run.report.waiting[verdict.why] += 1
            run.wake.no_later_than(verdict.until)

    def _suppress(self, loan: Loan, stage: ladder.Stage, verdict: decisions.Suppress, run: _Run) -> None:
        record = suppression_record(
            loan_id=loan.loan_id,
            borrower_id=loan.borrower_id,
            cycle=loan.cycle,
            stage=stage.id,
            reason=verdict.reason,
            now=run.now,
            retention_days=self.retention_days,
            amount_due=loan.amount_due,
            currency=loan.currency,
        )
        # Record first: a crash after it only repeats the record, never loses the decision.
        self.deliveries.put(record)
        write = ClaimWrite(
            key=(loan.loan_id, loan.cycle, stage.id),
            borrower_id=loan.borrower_id,
            state=ClaimState.DEFERRED if verdict.retry_after else ClaimState.SUPPRESSED,
            reason=verdict.reason,
            retry_after=verdict.retry_after,
            record_id=record.record_id,
        )
        blocking = self.state.take_claims([write], run.now)[write.key]
        if blocking is not None:
            self._note_blocking(write.key, blocking.state, blocking.retry_after, run)
            return
        run.report.suppressed[verdict.reason] += 1
        run.wake.no_later_than(verdict.retry_after)
        metrics.add_metric(name=f"Suppressed_{verdict.reason}", unit=MetricUnit.Count, value=1)

    def _note_blocking(self, key: ClaimKey, state: ClaimState, retry_after: dt.datetime | None, run: _Run) -> None:
        """A claim that already existed: handled before, or deferred (by the sender) to a later time."""
        run.report.waiting[f"already_{state.value.lower()}"] += 1
        if state is ClaimState.DEFERRED and retry_after is not None:
            run.wake.no_later_than(retry_after)
            self.state.mark_deferred(key, retry_after)  # so that runs trusting the mark come back then

    def _unprocessable(self, exc: Exception, loan: Loan, run: _Run) -> None:
        reason = self._set_aside.unprocessable(
            exc, loan_id=loan.loan_id, borrower_id=loan.borrower_id, cycle=loan.cycle, now=run.now, today=run.today
        )
        run.report.invalid[reason] += 1

    # ---------------------------------------------------------------- claim and enqueue what is due
    def _flush(self, run: _Run) -> None:
        """Take the claims of the stages due so far, enqueue one job per borrower, give back what SQS refuses."""
        due, run.due = run.due, defaultdict(list)
        if not due:
            return
        now = run.now
        found = self._take_claims(due, now)
        taken: list[tuple[str, list[_Due]]] = []
        # The most overdue borrowers first: when the queue is slow, their SMS go out before the others'.
        for borrower_id, stages in sorted(due.items(), key=lambda entry: (min(d.key[1] for d in entry[1]), entry[0])):
            ours = []
            for d in stages:
                blocking = found.get(d.key)
                if blocking is None:
                    ours.append(d)
                else:
                    self._note_blocking(d.key, blocking.state, blocking.retry_after, run)
            if ours:
                taken.append((borrower_id, ours))
        keys = [d.key for _, stages in taken for d in stages]
        try:
            failed = self.queue.send(_jobs(taken, now))
        except Exception:
            self._give_back(keys, now)
            raise
        if failed:
            logger.error(
                "some jobs were not accepted by SQS: their claims are given back", extra={"count": len(failed)}
            )
            metrics.add_metric(name="EnqueueFailures", unit=MetricUnit.Count, value=len(failed))
            self._give_back([(line.loan_id, line.cycle, line.stage) for job in failed for line in job.lines], now)
            run.wake.no_later_than(now)  # the next fire plans them again
        jobs = sum(math.ceil(len(stages) / MAX_LINES_PER_JOB) for _, stages in taken)
        run.report.jobs_enqueued += jobs - len(failed)
        run.report.lines_enqueued += len(keys) - sum(len(job.lines) for job in failed)

    def _take_claims(self, due: Mapping[str, list[_Due]], now: dt.datetime) -> dict[ClaimKey, SendClaim | None]:
        """Claim every stage due (PLANNED); the claims that existed already, by key (None: taken now)."""
        writes = [
            ClaimWrite(key=d.key, borrower_id=borrower_id, state=ClaimState.PLANNED)
            for borrower_id, stages in due.items()
            for d in stages
        ]
        try:
            return self.state.take_claims(writes, now)
        except Exception:
            # The claims may have been written (a lost answer): give them back, no stage waits for a job never sent.
            self._give_back([w.key for w in writes], now)
            raise

    def _give_back(self, keys: list[ClaimKey], now: dt.datetime) -> None:
        """Give back claims whose job SQS did not take; a claim left PLANNED would never get a job."""
        for attempt in range(1, GIVE_BACK_ATTEMPTS + 1):
            try:
                self.state.give_back(keys, now)
                return
            except (ClientError, BotoCoreError, RuntimeError) as exc:
                error = type(exc).__name__
                logger.warning("giving claims back failed", extra={"attempt": attempt, "error": error})
        # Left PLANNED with no job: `dunning reconcile` lists them (planned_not_sent); see docs/exactly-once.md.
        logger.error("claims could not be given back", extra={"count": len(keys)})
        metrics.add_metric(name="ClaimsNotGivenBack", unit=MetricUnit.Count, value=len(keys))


def _jobs(taken: list[tuple[str, list[_Due]]], now: dt.datetime) -> Iterator[SendJob]:
    """One job per borrower (more past MAX_LINES_PER_JOB), built as the queue takes it: a partition's jobs, with
    their snapshots, are never all held at once."""
    for borrower_id, stages in taken:
        for start in range(0, len(stages), MAX_LINES_PER_JOB):
            lines = tuple(
                JobLine(
                    loan_id=d.key[0], cycle=d.key[1], stage=d.key[2], snapshot=snapshot_from_index(d.item, d.control)
                )
                for d in stages[start : start + MAX_LINES_PER_JOB]
            )
            yield SendJob(borrower_id=borrower_id, lines=lines, planned_at=now)
