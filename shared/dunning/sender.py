"""Send run: re-check each job against live data, compose one SMS per borrower, publish, record.

Exactly once per (loan, cycle, stage), with single-item conditional writes in this order:
1. take the borrower's day slot (conditional on the daily cap);
2. move each claim PLANNED -> SENDING (conditional: only one sender wins a claim);
3. Publish (the SDK never retries it);
4. write the SENT delivery record, whose id derives from the SENDING time;
5. move the claim SENDING -> SENT.
Between 2 and 3 the opt-out is read again (the product's list, then SNS): a number opted out
since the job's first checks gets its claims and slot back and a SUPPRESSED record instead.
A claim found SENDING that a live sender may hold (written less than SENDING_HELD_FOR ago) means
"retry later". An older one looks for that record: if it exists the SMS left and only step 5 is
redone; if not, nobody can know whether it left, so the record says UNCERTAIN (alarmed,
reviewed by people) and the SMS is never resent. A step 5 whose condition fails reads the claim
back and never leaves it contradicting the record. A crash before step 2 costs at most the
borrower's slot for the day, never a duplicate. A loan whose data breaks our own computation
(an amount no Decimal can format, a date out of range) ends SUPPRESSED `unprocessable`; the other
loans of the job go on. See docs/exactly-once.md.
"""

from __future__ import annotations

import datetime as dt
import functools
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from dunning import compliance, decisions, ladder
from dunning.borrower_events import effective_loan, missed_promise
from dunning.compose import reference_code, render_reminder
from dunning.dal.deliveries import DeliveriesRepository
from dunning.dal.loans import LoansRepository
from dunning.dal.sms import Pacer, PublishRejected, PublishUncertain, SmsGateway
from dunning.dal.state import ClaimKey, StateRepository
from dunning.models.delivery import DeliveryRecord, Outcome, expires_at, record_id
from dunning.models.jobs import JobLine, SendJob
from dunning.models.loan import InvalidLoan, Loan, parse_loan
from dunning.models.policy import Policy, PolicyError
from dunning.models.state import ClaimState, LoanControl
from dunning.observability import MetricUnit, logger, mask_phone, metrics
from dunning.records import suppression_record

PUBLISH_ATTEMPTS = 3
# How long a SENDING claim may belong to a sender still running. A sender writes SENDING with the
# clock it read when its job started, and Lambda stops it at the function's Timeout (60 s in
# template.yaml), so no sender is alive 60 s after its claim's updated_at. Twice that leaves room
# for clock skew between hosts, and stays well under the queue's visibility timeout (360 s): a job
# handed back with RetryLater is redelivered only once the claim's holder has finished or died.
# tests/unit/test_sender_bounds.py checks both against the template.
SENDING_HELD_FOR = dt.timedelta(seconds=120)
# Deterministic failures of our own computation on one loan's data (decimal.InvalidOperation and
# Overflow are ArithmeticErrors; a date out of range or a model that refuses a derived value are
# ValueErrors). AWS errors are neither, and a broken policy (PolicyError) is every loan's problem:
# those still fail the job, so it is retried or reaches the DLQ.
UNPROCESSABLE: tuple[type[Exception], ...] = (ArithmeticError, ValueError)


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


@dataclass(frozen=True)
class _Line:
    line: JobLine
    loan: Loan
    stage: ladder.Stage
    control: LoanControl | None = None

    @property
    def key(self) -> ClaimKey:
        return (self.line.loan_id, self.line.cycle, self.line.stage)


@dataclass
class Sender:
    loans: LoansRepository
    state: StateRepository
    deliveries: DeliveriesRepository
    sms: SmsGateway
    pacer: Pacer
    policy: Policy
    retention_days: int
    # Backoff between in-invocation retries; looked up at construction so tests can observe it.
    sleep: Callable[[float], None] = field(default_factory=lambda: time.sleep)

    def send(self, job: SendJob, now: dt.datetime) -> SendOutcome:
        outcome = SendOutcome()
        live = self.loans.get_many([line.loan_id for line in job.lines])
        parsed: dict[str, Loan | InvalidLoan] = {}
        for loan_id, item in live.items():
            try:
                parsed[loan_id] = parse_loan(item)
            except InvalidLoan as exc:
                parsed[loan_id] = exc
            except UNPROCESSABLE as exc:
                parsed[loan_id] = InvalidLoan(loan_id, "unprocessable", type(exc).__name__)
        phones = [p.phone for p in parsed.values() if isinstance(p, Loan)]
        keys: list[ClaimKey] = [(line.loan_id, line.cycle, line.stage) for line in job.lines]
        claims, controls, opted_out = self.state.load(keys, phones)

        eligible: list[_Line] = []
        held: list[str] = []
        for line, key in zip(job.lines, keys, strict=True):
            claim = claims.get(key)
            if claim is None:
                # Every job line the planner enqueues has a claim: this one came from elsewhere.
                logger.warning("job line without a send claim dropped", extra={"loan_id": line.loan_id})
                metrics.add_metric(name="SendJobLinesNotPlanned", unit=MetricUnit.Count, value=1)
                outcome.skipped["not_planned"] += 1
                continue
            if claim.state is not ClaimState.PLANNED:
                if claim.state is ClaimState.SENDING and now - claim.updated_at < SENDING_HELD_FOR:
                    held.append(line.loan_id)  # a live sender may be publishing it right now
                elif claim.state is ClaimState.SENDING:
                    self._resolve_sending(key, job.borrower_id, claim.updated_at, now, outcome)
                else:
                    outcome.skipped["duplicate_job"] += 1
                continue
            loan = parsed.get(line.loan_id)
            if loan is None:
                self._suppress(key, job.borrower_id, "loan_not_found", now, outcome)
                continue
            if isinstance(loan, InvalidLoan):
                if loan.reason == "unprocessable":
                    self._log_unprocessable(key, loan.detail)
                self._suppress(key, job.borrower_id, loan.reason, now, outcome)
                continue
            try:
                decided = self._decide(line, key, job.borrower_id, loan, controls, opted_out, now, outcome)
            except PolicyError:
                raise
            except UNPROCESSABLE as exc:
                self._unprocessable(key, job.borrower_id, exc, now, outcome)
                continue
            if decided is not None:
                eligible.append(decided)
        try:
            if eligible:
                self._send_consolidated(job.borrower_id, eligible, now, outcome)
        finally:
            if outcome.deferred:
                self.state.wake_planner()  # the planner may be asleep past these retry times
        if held:
            # Nothing was done for these lines: SQS redelivers the job after its visibility timeout,
            # when the holder has finished (the claim is final, the lines are skipped) or died.
            logger.info("claim held by a running sender; retry later", extra={"loan_ids": held})
            metrics.add_metric(name="SendClaimHeldElsewhere", unit=MetricUnit.Count, value=len(held))
            raise RetryLater(f"{len(held)} claim(s) held by a running sender")
        return outcome

    def _decide(
        self,
        line: JobLine,
        key: ClaimKey,
        borrower_id: str,
        loan: Loan,
        controls: dict[str, LoanControl],
        opted_out: set[str],
        now: dt.datetime,
        outcome: SendOutcome,
    ) -> _Line | None:
        """The line to send, or None once it is suppressed or deferred (its claim settled)."""
        # Under a repayment plan the job chases an instalment: its date and what is left of it.
        loan = effective_loan(loan, controls.get(loan.loan_id))
        verdict = decisions.evaluate(
            loan,
            controls.get(loan.loan_id),
            now,
            self.policy,
            opted_out=loan.phone in opted_out,
            expected_cycle=line.cycle,
            expected_stage=line.stage,
        )
        if isinstance(verdict, decisions.Due):
            return _Line(line, loan, verdict.stage, controls.get(loan.loan_id))
        if isinstance(verdict, decisions.Suppress):
            self._suppress(key, borrower_id, verdict.reason, now, outcome, verdict.retry_after, loan)
        elif verdict.why == "outside_window":
            # Planned inside the window, arrived outside it: wait for the next window.
            self._defer_quietly(key, borrower_id, verdict.until or now, "outside_window", now, outcome)
        else:
            self._suppress(key, borrower_id, "stage_passed", now, outcome, None, loan)
        return None

    # ---------------------------------------------------------------- the SMS
    def _send_consolidated(
        self, borrower_id: str, eligible: list[_Line], now: dt.datetime, outcome: SendOutcome
    ) -> None:
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
        for other in (e for e in eligible if e not in group):
            # Not in today's SMS (another number or currency, or not yet overdue): one SMS a day, so tomorrow.
            self._suppress(other.key, borrower_id, "cap_daily", now, outcome, tomorrow, other.loan)

        group, composed = self._composable(borrower_id, group, now, local_today, outcome)
        if not group:
            return
        cap = compliance.cap_reason(self.state.sent_by_day(borrower_id, local_today), local_today, self.policy)
        if cap:
            for e in group:
                self._suppress(e.key, borrower_id, cap, now, outcome, tomorrow, e.loan)
            return

        slot_expiry = expires_at(now, 8)
        if not self.state.take_day_slot(borrower_id, local_today, self.policy.caps.per_borrower_per_day, slot_expiry):
            for e in group:
                self._suppress(e.key, borrower_id, "cap_daily", now, outcome, tomorrow, e.loan)
            return
        claimed: list[_Line] = []
        opted_out = False
        try:
            for e in group:
                if self.state.transition(e.key, ClaimState.SENDING, now, ClaimState.PLANNED):
                    claimed.append(e)
            message = (composed if claimed == group else self._compose(claimed, now, local_today)) if claimed else None
            # The opt-out again, as late as possible: an opt-out written since this job's first read still stops
            # it. The product's own list last, nearest to Publish (docs/exactly-once.md: the window left).
            opted_out = bool(claimed) and (self.sms.is_opted_out(first.phone) or self.state.is_opted_out(first.phone))
        except Exception:
            # Nothing was published: give back what this attempt took, so its redelivery can still send today.
            self._give_back(claimed, borrower_id, local_today, slot_expiry, now)
            raise
        outcome.skipped["claimed_concurrently"] += len(group) - len(claimed)
        if opted_out:
            # Claims back to PLANNED and the slot released first (a crash from there is decided again by the
            # redelivery); a claim that could not be given back is settled from SENDING all the same.
            logger.info("opted out since the job's first checks", extra={"phone": mask_phone(first.phone)})
            metrics.add_metric(name="OptedOutBeforePublish", unit=MetricUnit.Count, value=1)
            self._give_back(claimed, borrower_id, local_today, slot_expiry, now)
            for e in claimed:
                self._suppress(e.key, borrower_id, "opted_out", now, outcome, None, e.loan, also_from_sending=True)
            return
        if message is None:
            self.state.release_day_slot(borrower_id, local_today, slot_expiry)
            return
        group = claimed

        try:
            message_id = self._publish(first.phone, message["body"], int(message["segments"]))
        except PublishUncertain as exc:
            logger.error(
                "publish outcome unknown; recorded UNCERTAIN",
                extra={"phone": mask_phone(first.phone), "error": str(exc)},
            )
            self._uncertain([e.key for e in group], borrower_id, now, f"publish_{exc}", outcome, group, message)
            return
        except PublishRejected as exc:
            if exc.retryable:
                for e in group:
                    self.state.transition(e.key, ClaimState.PLANNED, now, ClaimState.SENDING)
                self.state.release_day_slot(borrower_id, local_today, slot_expiry)
                raise RetryLater(f"publish throttled or failed: {exc.code}") from None
            self.state.release_day_slot(borrower_id, local_today, slot_expiry)
            for e in group:
                self.state.note_failed_delivery(e.key[0], now)  # before the record: escalation's hint
                self._record_final(
                    e, borrower_id, now, Outcome.FAILED, f"rejected_{exc.code}", message, ClaimState.SUPPRESSED, outcome
                )
            return
        failures: list[Exception] = []
        for e in group:
            record = self._record(e, borrower_id, now, Outcome.SENT, None, message, message_id)
            try:
                self._with_retries(functools.partial(self.deliveries.put, record))
                self._with_retries(functools.partial(self._complete_sent, e.key, record, message_id, now))
            except Exception as exc:
                # The SMS left: record the other loans it covered before the redelivery finishes this one.
                failures.append(exc)
        outcome.sent += len(group)
        outcome.messages += 1
        metrics.add_metric(name="SmsSent", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="SmsSegments", unit=MetricUnit.Count, value=int(message["segments"]))
        logger.info(
            "sms sent",
            extra={
                "borrower_id": borrower_id,
                "loans": len(group),
                "phone": mask_phone(first.phone),
                "segments": message["segments"],
            },
        )
        if failures:
            raise failures[0]

    def _composable(
        self, borrower_id: str, group: list[_Line], now: dt.datetime, local_today: dt.date, outcome: SendOutcome
    ) -> tuple[list[_Line], dict[str, Any]]:
        """The group less the loans whose data our composition cannot handle (each SUPPRESSED `unprocessable`),
        and its SMS.

        Composed here, before any slot or claim is taken, so a bad loan costs nothing but its own record.
        """
        try:
            return group, self._compose(group, now, local_today)
        except PolicyError:
            raise
        except UNPROCESSABLE:
            pass
        fine: list[_Line] = []
        message: dict[str, Any] = {}
        for e in group:
            try:
                message = self._compose([e], now, local_today)
                fine.append(e)
            except PolicyError:
                raise
            except UNPROCESSABLE as exc:
                self._unprocessable(e.key, borrower_id, exc, now, outcome)
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
                    self._suppress(e.key, borrower_id, "cap_daily", now, outcome, tomorrow, e.loan)
                fine = fine[:1]
                message = self._compose(fine, now, local_today)
        return fine, message

    def _unprocessable(
        self, key: ClaimKey, borrower_id: str, error: Exception, now: dt.datetime, outcome: SendOutcome
    ) -> None:
        """One loan our own computation cannot handle: SUPPRESSED with a stable reason; the job goes on."""
        self._log_unprocessable(key, type(error).__name__)
        self._suppress(key, borrower_id, "unprocessable", now, outcome)

    @staticmethod
    def _log_unprocessable(key: ClaimKey, error: str) -> None:
        # The exception's type only: its message may quote the loan's values.
        logger.error(
            "loan cannot be processed; recorded SUPPRESSED unprocessable",
            extra={"loan_id": key[0], "cycle": key[1], "stage": key[2], "error": error},
        )

    def _give_back(
        self, claimed: list[_Line], borrower_id: str, day: dt.date, slot_expiry: int, now: dt.datetime
    ) -> None:
        """Best effort: a claim left SENDING ends UNCERTAIN on redelivery, never sent twice."""
        try:
            for e in claimed:
                self.state.transition(e.key, ClaimState.PLANNED, now, ClaimState.SENDING)
            self.state.release_day_slot(borrower_id, day, slot_expiry)
        except (ClientError, BotoCoreError) as exc:
            logger.warning("could not give back the claims of a failed attempt", extra={"error": type(exc).__name__})

    def _compose(self, group: list[_Line], now: dt.datetime, local_today: dt.date) -> dict[str, Any]:
        today = ladder.business_date(now, self.policy)
        first = group[0]
        fees = [ladder.late_fees(e.loan, today, self.policy) for e in group]
        total = sum((e.loan.amount_due for e in group), Decimal(0)) + sum(fees, Decimal(0))
        earliest_due = min(e.loan.due_date for e in group)
        reference = reference_code(first.line.loan_id, first.line.cycle, first.line.stage)
        locale = first.loan.locale or self.policy.default_locale
        # A promise whose date passed unpaid is mentioned once the pause it caused has ended.
        promised = [d for e in group if (d := missed_promise(e.control, e.loan, today)) is not None]
        sms = render_reminder(
            self.policy,
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
        return {
            "body": sms.body,
            "encoding": sms.encoding,
            "segments": sms.segments,
            "reference": reference,
            "locale": locale,
            "fees": dict(zip((e.line.loan_id for e in group), fees, strict=True)),
        }

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

    def _with_retries(self, action: Callable[[], object]) -> None:
        delay = 0.1
        for attempt in range(1, 4):
            try:
                action()
                return
            except ClientError:
                if attempt == 3:
                    raise
                self.sleep(delay)
                delay *= 2

    # ---------------------------------------------------------------- evidence
    def _record(
        self,
        e: _Line,
        borrower_id: str,
        now: dt.datetime,
        result: Outcome,
        reason: str | None,
        message: dict[str, Any] | None,
        message_id: str | None,
    ) -> DeliveryRecord:
        return DeliveryRecord(
            loan_id=e.line.loan_id,
            record_id=record_id(now, e.line.cycle, e.line.stage),
            borrower_id=borrower_id,
            cycle=e.line.cycle,
            stage=e.line.stage,
            outcome=result,
            reason=reason,
            message_id=message_id,
            phone=e.loan.phone,
            locale=message["locale"] if message else None,
            body=message["body"] if message else None,
            encoding=message["encoding"] if message else None,
            segments=message["segments"] if message else None,
            amount_due=e.loan.amount_due,
            late_fees=message["fees"][e.line.loan_id] if message else None,
            currency=e.loan.currency,
            reference=message["reference"] if message else None,
            created_at=now,
            updated_at=now,
            expires_at=expires_at(now, self.retention_days),
        )

    def _record_final(
        self,
        e: _Line,
        borrower_id: str,
        now: dt.datetime,
        result: Outcome,
        reason: str,
        message: dict[str, Any] | None,
        claim_state: ClaimState,
        outcome: SendOutcome,
    ) -> None:
        record = self._record(e, borrower_id, now, result, reason, message, None)
        self._with_retries(functools.partial(self.deliveries.put, record))
        self.state.transition(e.key, claim_state, now, ClaimState.SENDING, reason=reason, record_id=record.record_id)
        outcome.suppressed[reason] += 1

    def _uncertain(
        self,
        keys: list[ClaimKey],
        borrower_id: str,
        now: dt.datetime,
        reason: str,
        outcome: SendOutcome,
        group: list[_Line],
        message: dict[str, Any],
    ) -> None:
        """This attempt's Publish has no known outcome: UNCERTAIN under the id the SENT record would have had."""
        by_key = {e.key: e for e in group}
        for key in keys:
            record = self._record(by_key[key], borrower_id, now, Outcome.UNCERTAIN, reason, message, None)
            self._with_retries(functools.partial(self.deliveries.put, record))
            moved, current = self.state.move_claim(
                key, ClaimState.UNCERTAIN, now, ClaimState.SENDING, reason=reason, record_id=record.record_id
            )
            if not moved and (current is None or current.state is not ClaimState.UNCERTAIN):
                # Only this attempt moves a claim it holds: anything else is a bug to look at, not to hide.
                logger.error(
                    "claim not SENDING when recording UNCERTAIN",
                    extra={"loan_id": key[0], "found": current.state.value if current else None},
                )
            outcome.uncertain += 1
        metrics.add_metric(name="SmsUncertain", unit=MetricUnit.Count, value=len(keys))

    def _complete_sent(self, key: ClaimKey, record: DeliveryRecord, message_id: str, now: dt.datetime) -> None:
        """Step 5, SENDING -> SENT. When its condition fails the claim still ends SENT, naming this record.

        The failed write returns the claim as it is. SENT: a retry of this write, or a retry of the job that
        found this record first; done. UNCERTAIN: a retry of the job took this attempt for a dead one (it
        outlived SENDING_HELD_FOR: a stalled sender or a skewed clock) and recorded UNCERTAIN under this
        record's id. The SMS left and this record with its message id proves it: the record is written
        SENT again and the claim moved to SENT, so claim and record never contradict each other.
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
        if existing is not None and existing.get("outcome") == Outcome.UNCERTAIN.value:
            # The attempt recorded UNCERTAIN (with what it sent) and stopped before the claim: keep that record.
            self.state.move_claim(
                key,
                ClaimState.UNCERTAIN,
                now,
                ClaimState.SENDING,
                reason=str(existing.get("reason") or "unknown_after_retry"),
                record_id=str(existing["record_id"]),
            )
            outcome.uncertain += 1
            return
        if existing is not None and existing.get("message_id"):
            self.state.move_claim(
                key,
                ClaimState.SENT,
                now,
                ClaimState.SENDING,
                message_id=str(existing["message_id"]),
                record_id=str(existing["record_id"]),
            )
            outcome.skipped["completed_after_retry"] += 1
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

    def _suppress(
        self,
        key: ClaimKey,
        borrower_id: str,
        reason: str,
        now: dt.datetime,
        outcome: SendOutcome,
        retry_after: dt.datetime | None = None,
        loan: Loan | None = None,
        *,
        also_from_sending: bool = False,
    ) -> None:
        record = suppression_record(
            loan_id=key[0],
            borrower_id=borrower_id,
            cycle=key[1],
            stage=key[2],
            reason=reason,
            now=now,
            retention_days=self.retention_days,
            amount_due=loan.amount_due if loan else None,
            currency=loan.currency if loan else None,
        )
        self.deliveries.put(record)
        state = ClaimState.DEFERRED if retry_after else ClaimState.SUPPRESSED
        self.state.settle(
            key,
            borrower_id,
            state,
            now,
            reason=reason,
            retry_after=retry_after,
            record_id=record.record_id,
            only_from=(ClaimState.PLANNED, ClaimState.SENDING) if also_from_sending else (ClaimState.PLANNED,),
        )
        (outcome.deferred if retry_after else outcome.suppressed)[reason] += 1
        metrics.add_metric(name=f"Suppressed_{reason}", unit=MetricUnit.Count, value=1)

    def _defer_quietly(
        self, key: ClaimKey, borrower_id: str, until: dt.datetime, why: str, now: dt.datetime, outcome: SendOutcome
    ) -> None:
        self.state.settle(
            key, borrower_id, ClaimState.DEFERRED, now, reason=why, retry_after=until, only_from=(ClaimState.PLANNED,)
        )
        outcome.deferred[why] += 1
