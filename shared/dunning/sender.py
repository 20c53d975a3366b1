"""Send run: an SQS batch of jobs, decided from what the planner read, re-checked atomically, published, recorded.

Exactly once per (loan, cycle, stage), with few calls: the batch is sent in rounds, and a round is
1. one TransactWriteItems taking, for every SMS of the round, its claims PLANNED -> SENDING and the
   borrower's daily/weekly cap (`BORROWER#id / CAP`), all conditional, and ConditionChecking that
   the number is on no opt-out item and that each loan (LoansTable) and its CONTROL item are as
   the planner read them. All of one SMS or none of it: a condition that fails leaves that SMS out
   (its claim handled as found, its loan read again and decided again, its SMS suppressed
   `opted_out` or deferred for its cap) and the others are written;
2. Publish of each SMS (the SDK never retries it), paced;
3. one TransactWriteItems recording each SMS (its SENT records, claims SENDING -> SENT, and the
   `MSG#message_id` pointer delivery status reads), or its UNCERTAIN or FAILED outcome.
Nothing is read in the usual case: the job carries the loan as the planner read it (`LineSnapshot`)
and every re-check is a condition of a write the send needs anyway. A claim found SENDING that a
live sender may hold (written less than SENDING_HELD_FOR ago) means "retry later"; an older one is
resolved from its attempt's record, else recorded UNCERTAIN and never resent. A loan whose data
breaks our own computation ends SUPPRESSED `unprocessable`; the other loans of the job go on.
See docs/exactly-once.md.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from dunning import compliance, decisions, ladder
from dunning.chased import effective_loan, missed_promise
from dunning.compose import ReminderContext, ReminderMessage, reference_code, render_reminder
from dunning.dal import snapshots
from dunning.dal.aws import from_item
from dunning.dal.ports import SenderDeliveries, SenderLoans, SenderState, SendPacer, SmsPublisher, UnitWriter
from dunning.dal.sms import PublishRejected, PublishUncertain
from dunning.dal.state import ClaimKey, control_key
from dunning.dal.transact import Refused, Unit, write_units
from dunning.models.delivery import DeliveryRecord, Outcome, StoredRecord, expires_at, record_id
from dunning.models.jobs import JobLine, LineSnapshot, SendJob
from dunning.models.loan import InvalidLoan, Loan, parse_loan
from dunning.models.policy import Policy, PolicyError
from dunning.models.state import ClaimState, LoanControl, SendClaim
from dunning.observability import MetricUnit, logger, mask_phone, metrics, tracer
from dunning.records import suppression_record

if TYPE_CHECKING:
    from dunning.dal.aws import Write

_T = TypeVar("_T")
PUBLISH_ATTEMPTS = 3
# How long a SENDING claim may belong to a sender still running. A sender writes SENDING with the
# clock it read when its batch started, and Lambda stops it at the function's Timeout (60 s in
# template.yaml), so no sender is alive 60 s after its claim's updated_at. Twice that leaves room
# for clock skew between hosts, and stays well under the queue's visibility timeout (360 s): a job
# handed back with RetryLater is redelivered only once the claim's holder has finished or died.
# tests/unit/test_sender_bounds.py checks both against the template.
SENDING_HELD_FOR = dt.timedelta(seconds=120)
# One round publishes at most this long at the pacer's rate: a sender that dies mid-round leaves at
# most that round's SMS SENDING (UNCERTAIN on retry), and a round always ends well inside Timeout.
ROUND_SECONDS = 10.0
# A round starts only with this much of the invocation left after its publishing; the jobs left
# over are handed back untouched (RetryLater) and redelivered.
SECONDS_LEFT_AFTER_ROUND = 15.0
# Deterministic failures of our own computation on one loan's data (decimal.InvalidOperation and
# Overflow are ArithmeticErrors; a date out of range or a model that refuses a derived value are
# ValueErrors). AWS errors are neither, and a broken policy (PolicyError) is every loan's problem:
# those still fail the job, so it is retried or reaches the DLQ.
UNPROCESSABLE: tuple[type[Exception], ...] = (ArithmeticError, ValueError)
# A loan read again because it changed since planning is tried once more in the batch, then retried later.
LIVE_READS_PER_LINE = 1


class RetryLater(Exception):
    """The job could not be completed now and nothing irreversible happened: redeliver it."""


@dataclass
class SendOutcome:
    sent: int = 0
    messages: int = 0
    suppressed: Counter[str] = field(default_factory=Counter)
    deferred: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    uncertain: int = 0


@dataclass
class _Job:
    job: SendJob
    outcome: SendOutcome = field(default_factory=SendOutcome)
    error: Exception | None = None
    held: list[str] = field(default_factory=list)
    live_reads: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class _Line:
    line: JobLine
    loan: Loan  # as collection sees it (a plan's instalment under a plan)
    stage: ladder.Stage
    control: LoanControl | None
    snapshot: LineSnapshot  # upstream's loan and the control, as decided from

    @property
    def key(self) -> ClaimKey:
        return (self.line.loan_id, self.line.cycle, self.line.stage)


@dataclass
class _Sms:
    """One SMS: the lines it covers (one borrower, one number), composed, before and after Publish."""

    job: _Job
    group: list[_Line]
    message: ReminderMessage
    day: dt.date  # the borrower's local day (caps)
    tomorrow: dt.datetime
    roles: list[tuple[str, _Line | None]] = field(default_factory=list)  # per pre-publish entry

    @property
    def phone(self) -> str:
        return self.group[0].loan.phone

    @property
    def parts(self) -> int:
        return self.message.segments

    def keys(self) -> set[Any]:
        keys: set[Any] = {("cap", self.job.job.borrower_id), ("phone", self.phone)}
        for e in self.group:
            keys |= {("claim", e.key), ("loan", e.line.loan_id)}
        return keys


@dataclass
class _Settle:
    """A claim settled without an SMS (SUPPRESSED or DEFERRED), with its record when there is one."""

    job: _Job
    key: ClaimKey
    reason: str
    retry_after: dt.datetime | None
    items: list[Write]
    quiet: bool = False  # a deferral with no record (outside the window)

    parts = 0

    def keys(self) -> set[Any]:
        return {("claim", self.key), ("loan", self.key[0])}


@dataclass
class Sender:
    loans: SenderLoans
    state: SenderState
    deliveries: SenderDeliveries
    sms: SmsPublisher
    pacer: SendPacer
    policy: Policy
    retention_days: int
    # Backoff between in-invocation retries; looked up at construction so tests can observe it.
    sleep: Callable[[float], None] = field(default_factory=lambda: time.sleep)
    # The round's TransactWriteItems (`dal.transact.write_units`); the unit tier hands in an in-memory one.
    write_units: UnitWriter = write_units

    def send(self, job: SendJob, now: dt.datetime) -> SendOutcome:
        """One job alone (a batch of one)."""
        (result,) = self.send_batch([job], now)
        if isinstance(result, Exception):
            raise result
        return result

    @tracer.capture_method(capture_response=False, capture_error=False)  # its outcomes are traced by the handler
    def send_batch(
        self, jobs: Sequence[SendJob], now: dt.datetime, time_left: Callable[[], float] = lambda: math.inf
    ) -> list[SendOutcome | Exception]:
        """Each job's outcome, or the exception that fails it (SQS redelivers it); in the jobs' order."""
        batch = [_Job(job) for job in jobs]
        work = self._prepare_batch(batch, now)
        try:
            self._send_rounds(work, now, time_left)
        finally:
            if any(j.outcome.deferred for j in batch):
                self.state.wake_planner()  # the planner may be asleep past these retry times
        return [self._result(j) for j in batch]

    def _prepare_batch(self, batch: list[_Job], now: dt.datetime) -> list[_Sms | _Settle]:
        """What each job's lines come to (SMS to send, lines to settle); a job that cannot be prepared fails alone."""
        work: list[_Sms | _Settle] = []
        # Lines of an older planner carry no snapshot: their loans are read, all in one batched read.
        unread = [line.loan_id for j in batch for line in j.job.lines if line.snapshot is None]
        live: dict[str, LineSnapshot | None] = {}
        try:
            live = self._read_live(unread) if unread else {}
        except (ClientError, BotoCoreError) as exc:
            for j in batch:
                if any(line.snapshot is None for line in j.job.lines):
                    j.error = exc
        for j in batch:
            if j.error is None:
                self._guarded(j, functools.partial(self._prepare_into, work, j, live, now))
        return work

    def _send_rounds(self, work: list[_Sms | _Settle], now: dt.datetime, time_left: Callable[[], float]) -> None:
        """Round after round until nothing is left or too little time is: then the rest is retried later."""
        while work:
            work = [w for w in work if w.job.error is None]
            if not work:
                return
            if time_left() < SECONDS_LEFT_AFTER_ROUND + ROUND_SECONDS:
                for w in work:
                    w.job.error = w.job.error or RetryLater("too little time left in this invocation")
                return
            taken, later = self._round(work)
            work = later + self._run_round(taken, now)

    @staticmethod
    def _result(j: _Job) -> SendOutcome | Exception:
        if j.error is None and j.held:
            # Nothing was done for these lines: SQS redelivers the job after its visibility timeout,
            # when the holder has finished (the claim is final, the lines are skipped) or died.
            logger.info("claim held by a running sender; retry later", extra={"loan_ids": j.held})
            metrics.add_metric(name="SendClaimHeldElsewhere", unit=MetricUnit.Count, value=len(j.held))
            j.error = RetryLater(f"{len(j.held)} claim(s) held by a running sender")
        return j.error or j.outcome

    @staticmethod
    def _guarded(j: _Job, action: Callable[[], object]) -> None:
        """Run a step of one job; an exception fails that job alone."""
        try:
            action()
        except PolicyError as exc:
            j.error = exc
        except (ClientError, BotoCoreError, RetryLater) as exc:
            j.error = j.error or exc

    # ---------------------------------------------------------------- deciding (pure, from the snapshots)
    def _read_live(self, loan_ids: list[str]) -> dict[str, LineSnapshot | None]:
        """The live loans and their CONTROL items (one BatchGetItem per 50 loans): None for a loan that is gone."""
        items, controls = snapshots.read_live(self.loans.table, self.state.table, loan_ids, control_key)
        found: dict[str, LineSnapshot | None] = {}
        for loan_id in loan_ids:
            raw = items.get(loan_id)
            control_raw = controls.get(loan_id)
            if raw is None:
                found[loan_id] = None
                continue
            control = LoanControl.model_validate(from_item(control_raw)) if control_raw else None
            found[loan_id] = snapshots.snapshot_from_item(raw, control)
        return found

    def _prepare_into(
        self, work: list[_Sms | _Settle], j: _Job, live: dict[str, LineSnapshot | None], now: dt.datetime
    ) -> None:
        work.extend(self._prepare(j, j.job.lines, live, now))

    def _prepare(
        self, j: _Job, lines: Sequence[JobLine], live: dict[str, LineSnapshot | None], now: dt.datetime
    ) -> list[_Sms | _Settle]:
        """The SMS and the settlements of these lines of a job, decided without reading anything."""
        eligible: list[_Line] = []
        settles: list[_Sms | _Settle] = []
        for line in lines:
            key: ClaimKey = (line.loan_id, line.cycle, line.stage)
            snapshot = live.get(line.loan_id, line.snapshot)
            if snapshot is None:
                settles.append(self._suppress(j, key, "loan_not_found", now))
                continue
            try:
                upstream = parse_loan({**from_item(snapshot.loan), "loan_id": line.loan_id})
            except InvalidLoan as exc:
                if exc.reason == "unprocessable":
                    self._log_unprocessable(key, exc.detail)
                settles.append(self._suppress(j, key, exc.reason, now))
                continue
            except UNPROCESSABLE as exc:
                self._log_unprocessable(key, type(exc).__name__)
                settles.append(self._suppress(j, key, "unprocessable", now))
                continue
            try:
                control = (
                    LoanControl.model_validate({**snapshot.control, "loan_id": line.loan_id})
                    if snapshot.control
                    else None
                )
                decided = self._decide(j, line, key, upstream, control, snapshot, now, settles)
            except PolicyError:
                raise
            except UNPROCESSABLE as exc:
                self._log_unprocessable(key, type(exc).__name__)
                settles.append(self._suppress(j, key, "unprocessable", now))
                continue
            if decided is not None:
                eligible.append(decided)
        if eligible:
            settles += self._consolidate(j, eligible, now)
        return settles

    def _decide(
        self,
        j: _Job,
        line: JobLine,
        key: ClaimKey,
        upstream: Loan,
        control: LoanControl | None,
        snapshot: LineSnapshot,
        now: dt.datetime,
        settles: list[_Sms | _Settle],
    ) -> _Line | None:
        """The line to send, or None once its settlement is queued."""
        # Under a repayment plan the job chases an instalment: its date and what is left of it.
        loan = effective_loan(upstream, control)
        verdict = decisions.evaluate(
            loan, control, now, self.policy, opted_out=False, expected_cycle=line.cycle, expected_stage=line.stage
        )
        if isinstance(verdict, decisions.Due):
            return _Line(line, loan, verdict.stage, control, snapshot)
        if isinstance(verdict, decisions.Suppress):
            settles.append(self._suppress(j, key, verdict.reason, now, verdict.retry_after, loan))
        elif verdict.why == "outside_window":
            # Planned inside the window, arrived outside it: wait for the next window.
            settles.append(self._defer_quietly(j, key, verdict.until or now, "outside_window", now))
        else:
            settles.append(self._suppress(j, key, "stage_passed", now, None, loan))
        return None

    def _consolidate(self, j: _Job, eligible: list[_Line], now: dt.datetime) -> list[_Sms | _Settle]:
        # The most overdue loan leads; only overdue loans share one SMS (the consolidated text says
        # "overdue"), a courtesy or due-today reminder goes alone.
        eligible = sorted(eligible, key=lambda e: e.stage.day, reverse=True)
        first = eligible[0].loan
        group = [
            e
            for e in eligible
            if e.loan.phone == first.phone and e.loan.currency == first.currency and e.stage.day >= 1
        ] or eligible[:1]
        tz = decisions.borrower_timezone(first, self.policy)
        local_today = compliance.local_time(now, tz).date()
        tomorrow = compliance.next_local_midnight(now, tz)
        out: list[_Sms | _Settle] = []
        for other in (e for e in eligible if e not in group):
            # Not in today's SMS (another number or currency, or not yet overdue): one SMS a day, so tomorrow.
            out.append(self._suppress(j, other.key, "cap_daily", now, tomorrow, other.loan))
        group, composed, unprocessable = self._composable(j, group, now, local_today)
        out += unprocessable
        if group and composed is not None:
            out.append(_Sms(j, group, composed, local_today, tomorrow))
        return out

    # ---------------------------------------------------------------- rounds
    def _round(self, work: list[_Sms | _Settle]) -> tuple[list[_Sms | _Settle], list[_Sms | _Settle]]:
        """The work one round takes: no item twice in a transaction, and publishing within ROUND_SECONDS."""
        budget = ROUND_SECONDS * self.pacer.parts_per_second
        taken: list[_Sms | _Settle] = []
        later: list[_Sms | _Settle] = []
        used: set[Any] = set()
        parts = 0
        for w in work:
            keys = w.keys()
            over = isinstance(w, _Sms) and parts > 0 and parts + w.parts > budget
            if keys & used or over:
                later.append(w)
                continue
            taken.append(w)
            used |= keys
            parts += w.parts
        return taken, later

    def _run_round(self, taken: list[_Sms | _Settle], now: dt.datetime) -> list[_Sms | _Settle]:
        """Claims and caps for the round's SMS (with its settlements) in one transaction, Publish, record."""
        units = [self._pre_unit(w, now) if isinstance(w, _Sms) else Unit(w, w.items) for w in taken]
        try:
            refused = self.write_units(units, self.sleep)
        except (ClientError, BotoCoreError) as exc:
            # Nothing of this call was written: its jobs are redelivered.
            for w in taken:
                w.job.error = w.job.error or exc
            return []
        refused_by_owner = {id(r.unit.owner): r for r in refused}
        follow_up: list[_Sms | _Settle] = []
        relive: list[tuple[_Job, list[_Line]]] = []
        claimed: list[_Sms] = []
        for w in taken:
            found = refused_by_owner.get(id(w))
            if isinstance(w, _Settle):
                if found is None:
                    self._count_settled(w)
                else:
                    self._claim_found(w.job, w.key, found.found.get(len(w.items) - 1), now)
                continue
            if found is None:
                claimed.append(w)
            else:
                follow_up += self._pre_refused(w, found, now, relive)
        for j, lines in relive:
            follow_up += self._redecide(j, lines, now)
        outcomes = [(sms, self._guarded_publish(sms)) for sms in claimed]
        self._record_round(outcomes, now)
        return follow_up

    def _pre_unit(self, sms: _Sms, now: dt.datetime) -> Unit:
        items: list[Write] = []
        sms.roles = []
        for e in sms.group:
            items.append(self.state.claim_update(e.key, ClaimState.SENDING, now, ClaimState.PLANNED))
            sms.roles.append(("claim", e))
        caps = self.policy.caps
        items.append(
            self.state.take_cap(
                sms.job.job.borrower_id,
                sms.day,
                caps.per_borrower_per_day,
                caps.per_borrower_per_7_days,
                expires_at(now, 8),
            )
        )
        sms.roles.append(("cap", None))
        for check in self.state.not_opted_out(sms.phone):
            items.append(check)
            sms.roles.append(("opted_out", None))
        for e in sms.group:
            items.append(snapshots.loan_unchanged(self.loans.table, e.line.loan_id, e.snapshot))
            sms.roles.append(("loan", e))
            items.append(snapshots.control_unchanged(self.state.table, control_key(e.line.loan_id), e.snapshot))
            sms.roles.append(("control", e))
        return Unit(sms, items)

    def _pre_refused(
        self, sms: _Sms, refused: Refused, now: dt.datetime, relive: list[tuple[_Job, list[_Line]]]
    ) -> list[_Sms | _Settle]:
        """What to do with an SMS whose claims, cap, opt-out or loan checks did not hold (nothing was written)."""
        j = sms.job
        failed = {sms.roles[i][0] for i in refused.found}
        lost_claims = {id(sms.roles[i][1]) for i in refused.found if sms.roles[i][0] == "claim"}
        for index, found in refused.found.items():
            role, e = sms.roles[index]
            if role == "claim" and e is not None:
                self._claim_found(j, e.key, found, now)
        rest = [e for e in sms.group if id(e) not in lost_claims]
        if not rest:
            return []
        changed = {id(sms.roles[i][1]) for i in refused.found if sms.roles[i][0] in ("loan", "control")}
        if changed:
            # The loan or its control changed since planning: read what it is now and decide again.
            stale = [e for e in rest if id(e) in changed]
            if any(j.live_reads[e.line.loan_id] >= LIVE_READS_PER_LINE for e in stale):
                j.error = j.error or RetryLater("a loan keeps changing while it is sent")
                return []
            for e in stale:
                j.live_reads[e.line.loan_id] += 1
            relive.append((j, rest))
            return []
        if lost_claims:
            return self._regroup(sms, rest, now)
        if "opted_out" in failed:
            # Opted out since the planner's read: the ConditionCheck was the last read before Publish.
            logger.info("opted out since the job was planned", extra={"phone": mask_phone(sms.phone)})
            metrics.add_metric(name="OptedOutBeforePublish", unit=MetricUnit.Count, value=1)
            return [self._suppress(j, e.key, "opted_out", now, None, e.loan) for e in rest]
        cap_index = next(i for i, (role, _) in enumerate(sms.roles) if role == "cap")
        reason = self._cap_reason(refused.found.get(cap_index), sms.day)
        return [self._suppress(j, e.key, reason, now, sms.tomorrow, e.loan) for e in rest]

    def _cap_reason(self, item: dict[str, Any] | None, day: dt.date) -> str:
        """Which cap the CAP item (as the failed write found it) holds the borrower to."""
        counted: Counter[dt.date] = Counter()
        for name, value in (item or {}).items():
            if name.startswith("sent") and isinstance(value, str) and value[:1].isdigit() and value != "0000-00-00":
                counted[dt.date.fromisoformat(value)] += 1
        return compliance.cap_reason(dict(counted), day, self.policy) or "cap_daily"

    def _regroup(self, sms: _Sms, rest: list[_Line], now: dt.datetime) -> list[_Sms | _Settle]:
        """The SMS again without the lines another attempt holds (composed anew, tried in the next round)."""
        group, composed, unprocessable = self._composable(sms.job, rest, now, sms.day)
        out: list[_Sms | _Settle] = list(unprocessable)
        if group and composed is not None:
            out.append(_Sms(sms.job, group, composed, sms.day, sms.tomorrow))
        return out

    def _redecide(self, j: _Job, lines: list[_Line], now: dt.datetime) -> list[_Sms | _Settle]:
        out: list[_Sms | _Settle] = []

        def again() -> None:
            live = self._read_live([e.line.loan_id for e in lines])
            out.extend(self._prepare(j, [e.line for e in lines], live, now))

        self._guarded(j, again)
        return out

    def _claim_found(self, j: _Job, key: ClaimKey, item: dict[str, Any] | None, now: dt.datetime) -> None:
        """A claim that was not PLANNED when this attempt wanted it, as the failed write returned it."""
        if item is None:
            # Every job line the planner enqueues has a claim: this one came from elsewhere.
            logger.warning("job line without a send claim dropped", extra={"loan_id": key[0]})
            metrics.add_metric(name="SendJobLinesNotPlanned", unit=MetricUnit.Count, value=1)
            j.outcome.skipped["not_planned"] += 1
            return
        claim = SendClaim.model_validate(item)
        if claim.state is ClaimState.SENDING and now - claim.updated_at < SENDING_HELD_FOR:
            j.held.append(key[0])  # a live sender may be publishing it right now
        elif claim.state is ClaimState.SENDING:
            self._guarded(j, lambda: self._resolve_sending(key, j.job.borrower_id, claim.updated_at, now, j.outcome))
        else:
            j.outcome.skipped["duplicate_job"] += 1

    # ---------------------------------------------------------------- the SMS
    def _guarded_publish(self, sms: _Sms) -> str | Exception:
        try:
            return self._publish(sms.phone, sms.message.body, sms.parts)
        except (PublishUncertain, PublishRejected) as exc:
            return exc

    def _record_round(self, outcomes: list[tuple[_Sms, str | Exception]], now: dt.datetime) -> None:
        """What the round's Publish calls did: records, claims and pointers, in as few transactions as possible."""
        units = [unit for sms, result in outcomes for unit in self._outcome_units(sms, result, now)]
        if not units:
            return
        try:
            refused = self._with_retries(lambda: self.write_units(units, self.sleep))
        except (ClientError, BotoCoreError):
            refused = self._write_one_by_one(units)
        for r in refused:
            self._post_refused(r, now)

    def _outcome_units(self, sms: _Sms, result: str | Exception, now: dt.datetime) -> list[Unit]:
        """The writes one Publish's result needs (a message id: sent; an exception: uncertain, given back, failed)."""
        j = sms.job
        if isinstance(result, str):
            self._count_sent(sms)
            return [Unit(("sent", sms, result), self._sent_items(sms, result, now))]
        if isinstance(result, PublishUncertain):
            logger.error(
                "publish outcome unknown; recorded UNCERTAIN",
                extra={"phone": mask_phone(sms.phone), "error": str(result)},
            )
            j.outcome.uncertain += len(sms.group)
            metrics.add_metric(name="SmsUncertain", unit=MetricUnit.Count, value=len(sms.group))
            return [Unit(("uncertain", sms), self._uncertain_items(sms, f"publish_{result}", now))]
        if not isinstance(result, PublishRejected):
            return []
        cap_back = Unit(("cap_back", sms), [self._give_back_cap(sms)])
        if result.retryable:
            give_back = [self.state.claim_update(e.key, ClaimState.PLANNED, now, ClaimState.SENDING) for e in sms.group]
            j.error = j.error or RetryLater(f"publish throttled or failed: {result.code}")
            return [Unit(("given_back", sms), give_back), cap_back]
        reason = f"rejected_{result.code}"
        j.outcome.suppressed[reason] += len(sms.group)
        return [Unit(("failed", sms), self._failed_items(sms, reason, now)), cap_back]

    def _write_one_by_one(self, units: list[Unit]) -> list[Refused]:
        """The round's outcomes one unit at a time, so that one failing write does not cost the others."""
        refused: list[Refused] = []
        for unit in units:
            try:
                refused += self._with_retries(functools.partial(self.write_units, [unit], self.sleep))
            except (ClientError, BotoCoreError) as exc:
                owner_sms = unit.owner[1]
                owner_sms.job.error = owner_sms.job.error or exc
        return refused

    def _post_refused(self, refused: Refused, now: dt.datetime) -> None:
        kind, sms = refused.unit.owner[0], refused.unit.owner[1]
        if kind == "sent":
            # A claim changed while its SMS was sent: loan by loan, the record first, then the claim, agreeing.
            message_id = refused.unit.owner[2]
            for e in sms.group:
                record = self._record(e, sms, now, Outcome.SENT, None, message_id)

                def finish(e: _Line = e, record: DeliveryRecord = record) -> None:
                    self._with_retries(functools.partial(self.deliveries.put, record))
                    self._complete_sent(e.key, record, message_id, now)

                self._guarded(sms.job, finish)
            pointer = Unit("pointer", [self._pointer(sms, message_id, now)])
            self._guarded(sms.job, lambda: self.write_units([pointer], self.sleep))
        elif kind == "cap_back":
            logger.warning(
                "could not give back the borrower's cap slot", extra={"borrower_id": sms.job.job.borrower_id}
            )
        else:
            # Only the holder moves a SENDING claim: anything else is a bug to look at, not to hide.
            logger.error("claim not SENDING when recording the outcome", extra={"outcome": kind})

    def _sent_items(self, sms: _Sms, message_id: str, now: dt.datetime) -> list[Write]:
        items: list[Write] = []
        for e in sms.group:
            record = self._record(e, sms, now, Outcome.SENT, None, message_id)
            items.append(self.deliveries.put_item_request(record))
            items.append(
                self.state.claim_update(
                    e.key, ClaimState.SENT, now, ClaimState.SENDING, message_id=message_id, record_id=record.record_id
                )
            )
            items.append(self.state.handled_update(e.key, ClaimState.SENT, now))
        items.append(self._pointer(sms, message_id, now))
        return items

    def _pointer(self, sms: _Sms, message_id: str, now: dt.datetime) -> Write:
        records = [(e.line.loan_id, record_id(now, e.line.cycle, e.line.stage)) for e in sms.group]
        return self.state.message_pointer(message_id, records, expires_at(now, self.retention_days))

    def _uncertain_items(self, sms: _Sms, reason: str, now: dt.datetime) -> list[Write]:
        items: list[Write] = []
        for e in sms.group:
            record = self._record(e, sms, now, Outcome.UNCERTAIN, reason, None)
            items.append(self.deliveries.put_item_request(record))
            items.append(
                self.state.claim_update(
                    e.key, ClaimState.UNCERTAIN, now, ClaimState.SENDING, reason=reason, record_id=record.record_id
                )
            )
            items.append(self.state.handled_update(e.key, ClaimState.UNCERTAIN, now))
        return items

    def _failed_items(self, sms: _Sms, reason: str, now: dt.datetime) -> list[Write]:
        items: list[Write] = []
        for e in sms.group:
            record = self._record(e, sms, now, Outcome.FAILED, reason, None)
            items.append(self.deliveries.put_item_request(record))
            items.append(
                self.state.claim_update(
                    e.key, ClaimState.SUPPRESSED, now, ClaimState.SENDING, reason=reason, record_id=record.record_id
                )
            )
            # The failure hint escalation reads, with the stage settled.
            items.append(self.state.handled_update(e.key, ClaimState.SUPPRESSED, now, failed_at=now))
        return items

    def _give_back_cap(self, sms: _Sms) -> Write:
        caps = self.policy.caps
        return self.state.give_back_cap(
            sms.job.job.borrower_id, sms.day, caps.per_borrower_per_day, caps.per_borrower_per_7_days
        )

    def _count_sent(self, sms: _Sms) -> None:
        sms.job.outcome.sent += len(sms.group)
        sms.job.outcome.messages += 1
        metrics.add_metric(name="SmsSent", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="SmsSegments", unit=MetricUnit.Count, value=sms.parts)
        logger.info(
            "sms sent",
            extra={
                "borrower_id": sms.job.job.borrower_id,
                "loans": len(sms.group),
                "phone": mask_phone(sms.phone),
                "segments": sms.parts,
            },
        )

    def _composable(
        self, j: _Job, group: list[_Line], now: dt.datetime, local_today: dt.date
    ) -> tuple[list[_Line], ReminderMessage | None, list[_Sms | _Settle]]:
        """The group less the loans whose data our composition cannot handle (each SUPPRESSED `unprocessable`),
        its SMS, and those suppressions.

        Composed before any slot or claim is taken, so a bad loan costs nothing but its own record.
        """
        try:
            return group, self._compose(group, now, local_today), []
        except PolicyError:
            raise
        except UNPROCESSABLE:
            pass
        settles: list[_Sms | _Settle] = []
        fine: list[_Line] = []
        message: ReminderMessage | None = None
        for e in group:
            try:
                message = self._compose([e], now, local_today)
                fine.append(e)
            except PolicyError:
                raise
            except UNPROCESSABLE as exc:
                self._log_unprocessable(e.key, type(exc).__name__)
                settles.append(self._suppress(j, e.key, "unprocessable", now))
        if len(fine) > 1:
            try:
                message = self._compose(fine, now, local_today)
            except PolicyError:
                raise
            except UNPROCESSABLE as exc:
                # Each loan composes alone, not together (their sum, say): the lead one goes alone, the others
                # tomorrow, when they may lead their own SMS.
                logger.error(
                    "loans compose alone but not together",
                    extra={"loan_ids": [e.line.loan_id for e in fine], "error": type(exc).__name__},
                )
                tomorrow = compliance.next_local_midnight(now, decisions.borrower_timezone(fine[0].loan, self.policy))
                for e in fine[1:]:
                    settles.append(self._suppress(j, e.key, "cap_daily", now, tomorrow, e.loan))
                fine = fine[:1]
                message = self._compose(fine, now, local_today)
        return fine, message, settles

    @staticmethod
    def _log_unprocessable(key: ClaimKey, error: str) -> None:
        # The exception's type only: its message may quote the loan's values.
        logger.error(
            "loan cannot be processed; recorded SUPPRESSED unprocessable",
            extra={"loan_id": key[0], "cycle": key[1], "stage": key[2], "error": error},
        )

    def _compose(self, group: list[_Line], now: dt.datetime, local_today: dt.date) -> ReminderMessage:
        today = ladder.business_date(now, self.policy)
        first = group[0]
        fees = [ladder.late_fees(e.loan, today, self.policy) for e in group]
        total = sum((e.loan.amount_due for e in group), Decimal(0)) + sum(fees, Decimal(0))
        earliest_due = min(e.loan.due_date for e in group)
        reference = reference_code(first.line.loan_id, first.line.cycle, first.line.stage)
        locale = first.loan.locale or self.policy.default_locale
        # A promise whose date passed unpaid is mentioned once the pause it caused has ended.
        promised = [d for e in group if (d := missed_promise(e.control, e.loan, today)) is not None]
        reminder = ReminderContext(
            kind="consolidated" if len(group) > 1 else first.stage.kind,
            locale=locale,
            name=first.loan.borrower_name,
            loan_id=first.line.loan_id,
            currency=first.loan.currency,
            total=total,
            late_fees=sum(fees, Decimal(0)),
            days_past_due=max(ladder.days_past_due(e.loan.due_date, today) for e in group),
            due_date=earliest_due,
            pay_by=ladder.pay_by(local_today, earliest_due, self.policy),
            reference=reference,
            loan_count=len(group),
            promised_date=max(promised, default=None),
        )
        sms = render_reminder(self.policy, reminder)
        return ReminderMessage.of(sms, reminder, dict(zip((e.line.loan_id for e in group), fees, strict=True)))

    def _publish(self, phone: str, body: str, segments: int) -> str:
        delay = 0.2
        for attempt in range(1, PUBLISH_ATTEMPTS + 1):
            self.pacer.wait(segments)
            try:
                return self.sms.publish(phone, body)
            except PublishRejected as exc:
                if not exc.retryable or attempt == PUBLISH_ATTEMPTS:
                    raise
                metrics.add_metric(name="PublishThrottled", unit=MetricUnit.Count, value=1)
                self.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    def _with_retries(self, action: Callable[[], _T]) -> _T:
        delay = 0.1
        for attempt in range(1, 4):
            try:
                return action()
            except ClientError:
                if attempt == 3:
                    raise
                self.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    # ---------------------------------------------------------------- evidence
    def _record(
        self,
        e: _Line,
        sms: _Sms,
        now: dt.datetime,
        result: Outcome,
        reason: str | None,
        message_id: str | None,
    ) -> DeliveryRecord:
        message = sms.message
        return DeliveryRecord(
            loan_id=e.line.loan_id,
            record_id=record_id(now, e.line.cycle, e.line.stage),
            borrower_id=sms.job.job.borrower_id,
            cycle=e.line.cycle,
            stage=e.line.stage,
            outcome=result,
            reason=reason,
            message_id=message_id,
            phone=e.loan.phone,
            locale=message.locale,
            body=message.body,
            encoding=message.encoding,
            segments=message.segments,
            amount_due=e.loan.amount_due,
            late_fees=message.late_fees[e.line.loan_id],
            currency=e.loan.currency,
            reference=message.reference,
            created_at=now,
            updated_at=now,
            expires_at=expires_at(now, self.retention_days),
        )

    def _complete_sent(self, key: ClaimKey, record: DeliveryRecord, message_id: str, now: dt.datetime) -> None:
        """SENDING -> SENT once the round's transaction found the claim changed: it still ends SENT, with this record.

        The failed write returns the claim as it is. SENT: a retry of the job found this record first; done.
        UNCERTAIN: a retry of the job took this attempt for a dead one (it outlived SENDING_HELD_FOR: a stalled
        sender or a skewed clock) and recorded UNCERTAIN under this record's id. The SMS left and this record
        with its message id proves it: the record is written SENT again and the claim moved to SENT, so claim
        and record never contradict each other.
        """
        extra = {"message_id": message_id, "record_id": record.record_id}
        moved, current = self.state.move_claim(key, ClaimState.SENT, now, ClaimState.SENDING, **extra)
        for _ in range(3):
            if moved:
                return
            if current is not None and current.state is ClaimState.SENT:
                if current.message_id != message_id:
                    logger.error("claim SENT naming another message", extra={"loan_id": key[0]})
                return
            found = current.state.value if current else None
            logger.warning(
                "claim changed while its SMS was sent; set to SENT", extra={"loan_id": key[0], "found": found}
            )
            metrics.add_metric(name="SmsUncertainResolved", unit=MetricUnit.Count, value=1)
            self.deliveries.put(record)  # an UNCERTAIN record written meanwhile has this id: the SENT one wins
            if current is None:
                moved = self.state.settle(
                    key,
                    str(record.borrower_id),
                    ClaimState.SENT,
                    now,
                    message_id=message_id,
                    record_id=record.record_id,
                )
            else:
                moved, current = self.state.move_claim(key, ClaimState.SENT, now, current.state, **extra)
        raise RetryLater(f"claim of {key[0]} keeps changing; its SENT record stands")

    def _resolve_sending(
        self, key: ClaimKey, borrower_id: str, sending_at: dt.datetime, now: dt.datetime, outcome: SendOutcome
    ) -> None:
        """A previous attempt stopped after taking the claim (no sender still holds it). Finish it from its record."""
        existing = self.deliveries.get(key[0], record_id(sending_at, key[1], key[2]))
        if existing is not None and self._finish_from_record(key, existing, now, outcome):
            return
        # Record and claim in one transaction, the claim's condition guarding both: if the attempt completes
        # meanwhile (claim SENT), its SENT record is not overwritten. If it writes its record after this, it
        # finds the claim UNCERTAIN and sets both back to SENT (_complete_sent).
        reason = "unknown_after_retry"
        record = DeliveryRecord(
            loan_id=key[0],
            record_id=record_id(sending_at, key[1], key[2]),
            borrower_id=borrower_id,
            cycle=key[1],
            stage=key[2],
            outcome=Outcome.UNCERTAIN,
            reason=reason,
            created_at=sending_at,
            updated_at=now,
            expires_at=expires_at(sending_at, self.retention_days),
        )
        moved, current = self.state.move_claim_with(
            [self.deliveries.put_item_request(record)],
            key,
            ClaimState.UNCERTAIN,
            now,
            ClaimState.SENDING,
            reason=reason,
            record_id=record.record_id,
        )
        if not moved:
            outcome.skipped["completed_concurrently"] += 1
            logger.info(
                "claim left SENDING while it was resolved",
                extra={"loan_id": key[0], "found": current.state.value if current else None},
            )
            return
        logger.error("a previous attempt may have sent this SMS; recorded UNCERTAIN", extra={"loan_id": key[0]})
        outcome.uncertain += 1
        metrics.add_metric(name="SmsUncertain", unit=MetricUnit.Count, value=1)

    def _finish_from_record(
        self, key: ClaimKey, existing: StoredRecord, now: dt.datetime, outcome: SendOutcome
    ) -> bool:
        """The claim follows the attempt's own record when it wrote one that says what happened."""
        if existing.outcome is Outcome.UNCERTAIN:
            # The attempt recorded UNCERTAIN (with what it sent) and stopped before the claim: keep that record.
            self.state.move_claim(
                key,
                ClaimState.UNCERTAIN,
                now,
                ClaimState.SENDING,
                reason=existing.reason or "unknown_after_retry",
                record_id=existing.record_id,
            )
            outcome.uncertain += 1
            return True
        if existing.message_id:
            self.state.move_claim(
                key,
                ClaimState.SENT,
                now,
                ClaimState.SENDING,
                message_id=existing.message_id,
                record_id=existing.record_id,
            )
            outcome.skipped["completed_after_retry"] += 1
            return True
        return False

    # ---------------------------------------------------------------- settling without an SMS
    def _suppress(
        self,
        j: _Job,
        key: ClaimKey,
        reason: str,
        now: dt.datetime,
        retry_after: dt.datetime | None = None,
        loan: Loan | None = None,
    ) -> _Settle:
        """The record and the claim of a stage not sent, to be written together (only from PLANNED)."""
        record = suppression_record(
            loan_id=key[0],
            borrower_id=j.job.borrower_id,
            cycle=key[1],
            stage=key[2],
            reason=reason,
            now=now,
            retention_days=self.retention_days,
            amount_due=loan.amount_due if loan else None,
            currency=loan.currency if loan else None,
        )
        state = ClaimState.DEFERRED if retry_after else ClaimState.SUPPRESSED
        items = [self.deliveries.put_item_request(record)]
        items.append(self.state.handled_update(key, state, now, retry_after=retry_after))
        items.append(
            self.state.settle_put(
                key,
                j.job.borrower_id,
                state,
                now,
                (ClaimState.PLANNED,),
                reason=reason,
                retry_after=retry_after,
                record_id=record.record_id,
            )
        )
        return _Settle(j, key, reason, retry_after, items)

    def _defer_quietly(self, j: _Job, key: ClaimKey, until: dt.datetime, why: str, now: dt.datetime) -> _Settle:
        put = self.state.settle_put(
            key, j.job.borrower_id, ClaimState.DEFERRED, now, (ClaimState.PLANNED,), reason=why, retry_after=until
        )
        handled = self.state.handled_update(key, ClaimState.DEFERRED, now, retry_after=until)
        return _Settle(j, key, why, until, [handled, put], quiet=True)

    @staticmethod
    def _count_settled(w: _Settle) -> None:
        (w.job.outcome.deferred if w.retry_after else w.job.outcome.suppressed)[w.reason] += 1
        if not w.quiet:
            metrics.add_metric(name=f"Suppressed_{w.reason}", unit=MetricUnit.Count, value=1)
