"""Hour by hour over N business days: what the planner would enqueue and the sender would send.

The same pure functions as the functions: `parse_loan` (a bad item is a suppression with its
reason), `ladder` (stages, fees, pay-by), `decisions.evaluate` and `compliance` (windows in the
borrower's zones, caps), `compose` (templates, segments). Simulated per planner hour (the hour of
the lender's business calendar, as the schedule fires): the planner's reads and checks, then the
sender's consolidation per borrower, caps and composition, with claims kept the way StateTable
keeps them (SENT and SUPPRESSED are final; a cap defers to the borrower's next local midnight).

Out of scope: borrowers replying, paying, promising, disputing or opting out, repayment plans,
escalation and the bureau (no events), delivery failures and carrier filtering, the SNS opt-out
list, and the pacing of the sender (every SMS of an hour goes out in that hour).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import logging
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from dunning import compliance, decisions, ladder
from dunning.compose import ComposedSms, reference_code, render_reminder
from dunning.models.loan import InvalidLoan, Loan, LoanStatus, iso_date, outstanding, parse_loan
from dunning.models.money import quantize
from dunning.models.policy import Policy, PolicyError
from dunning.observability import logger, metrics
from dunning.records import UNPROCESSABLE, is_loan_fault
from dunning_tools.simulate.book import BookItem

# As dunning.planner: a borrower's due loans go in jobs of at most this many lines.
MAX_LINES_PER_JOB = 25
# What the sender treats as one loan's own failure to compose (dunning.sender.UNPROCESSABLE).
COMPOSE_FAULTS: tuple[type[Exception], ...] = (ArithmeticError, ValueError)
UNKNOWN_COUNTRY = "ZZ"  # CLDR's "unknown region": a number phonenumbers cannot place


@dataclass
class DayResult:
    """One business day. `sms` counts SMS published, by the stage kind of the loan each one leads with."""

    date: dt.date
    sms: Counter[str] = field(default_factory=Counter)
    suppressed: Counter[str] = field(default_factory=Counter)
    segments: int = 0
    loans_reminded: int = 0
    consolidated: int = 0  # SMS that covered several loans of one borrower
    no_window: int = 0  # loans with a stage due that got nothing: their window never opened on a planner hour
    sms_by_country: Counter[str] = field(default_factory=Counter)
    segments_by_country: Counter[str] = field(default_factory=Counter)

    @property
    def sms_total(self) -> int:
        return sum(self.sms.values())


@dataclass
class SimulationResult:
    start: dt.date
    stage_kinds: tuple[str, ...]
    days: list[DayResult] = field(default_factory=list)
    items: int = 0
    invalid_items: int = 0
    not_open: int = 0  # valid items whose status is not OPEN: the planner never reads them

    def total(self, name: str) -> int:
        return sum(int(getattr(day, name)) for day in self.days)

    def counter(self, name: str) -> Counter[str]:
        found: Counter[str] = Counter()
        for day in self.days:
            found.update(getattr(day, name))
        return found


@dataclass(frozen=True)
class _Subject:
    """A valid OPEN loan and what never changes hour to hour: its zones, its country, its window's key."""

    loan: Loan
    country: str
    window_key: tuple[tuple[str, ...], str]  # (its zones, its country): what its window depends on
    unprocessable: bool  # its sums break our arithmetic: the planner sets it aside every day it reads it


@dataclass(frozen=True)
class _Claim:
    final: bool
    until: dt.datetime | None = None  # a deferral: planned again from then


_Line = tuple[_Subject, ladder.Stage]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The functions' log lines and EMF metrics (a withheld name, say) are not the simulation's output."""
    level = logger.log_level
    logger.setLevel(logging.CRITICAL)  # the functions log nothing above ERROR
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)
        metrics.clear_metrics()


def simulate(book: Sequence[BookItem], policy: Policy, start: dt.date, days: int) -> SimulationResult:
    """Run the planner and the sender's checks over `days` business days from `start`."""
    if days < 1:
        raise ValueError("days must be at least 1")
    with _quiet():
        return _Simulation(policy).run(book, start, days)


def _planner_reads(item: dict[str, Any]) -> dt.date | None:
    """The due date by which the planner's index read finds an item (status OPEN, a real date); else None."""
    if item.get("status") != LoanStatus.OPEN.value:
        return None
    try:
        return iso_date(item.get("due_date"))
    except ValueError:
        return None


class _Simulation:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.business_zone = ZoneInfo(policy.business_timezone)
        self.claims: dict[tuple[str, str, str], _Claim] = {}
        self.sent_by_day: dict[str, dict[dt.date, int]] = defaultdict(dict)
        self._stages: dict[int, ladder.Stage | None] = {}
        self._window_phone: dict[tuple[tuple[str, ...], str], str] = {}

    def run(self, book: Sequence[BookItem], start: dt.date, days: int) -> SimulationResult:
        kinds = tuple(dict.fromkeys([s.kind for s in ladder.ladder_stages(self.policy.ladder)]))
        result = SimulationResult(start=start, stage_kinds=kinds, items=len(book))
        last_day = start + dt.timedelta(days=days - 1)
        subjects, read_invalid, intake_invalid = self._read(book, result, last_day)
        for offset in range(days):
            day = start + dt.timedelta(days=offset)
            out = DayResult(day)
            earliest, latest = ladder.due_date_window(day, self.policy)
            # Bad items: the planner's read sets each aside once a day; one it never reads, once at intake.
            for due, reason in read_invalid:
                if earliest <= due <= latest:
                    out.suppressed[reason] += 1
            if offset == 0:
                out.suppressed.update(intake_invalid)
            self._simulate_day(day, [s for s in subjects if earliest <= s.loan.due_date <= latest], out)
            result.days.append(out)
        return result

    def _read(
        self, book: Sequence[BookItem], result: SimulationResult, last_day: dt.date
    ) -> tuple[list[_Subject], list[tuple[dt.date, str]], Counter[str]]:
        subjects: list[_Subject] = []
        read_invalid: list[tuple[dt.date, str]] = []
        intake_invalid: Counter[str] = Counter()
        for entry in book:
            try:
                loan = parse_loan(entry.item)
            except Exception as exc:
                if not isinstance(exc, InvalidLoan) and not is_loan_fault(exc):
                    raise
                reason = exc.reason if isinstance(exc, InvalidLoan) else UNPROCESSABLE
                result.invalid_items += 1
                due = _planner_reads(entry.item)
                if due is None:
                    intake_invalid[reason] += 1
                else:
                    read_invalid.append((due, reason))
                continue
            if loan.status is not LoanStatus.OPEN:
                result.not_open += 1
                continue
            zones = decisions.borrower_timezones(loan, self.policy)
            country = compliance.region_of(loan.phone) or UNKNOWN_COUNTRY
            key = (zones, country)
            self._window_phone.setdefault(key, loan.phone)  # the window depends on the number's country only
            subjects.append(_Subject(loan, country, key, self._unprocessable(loan, last_day)))
        # The planner reads by due date; within one, by loan id (deterministic).
        subjects.sort(key=lambda s: (s.loan.due_date, s.loan.loan_id))
        return subjects, read_invalid, intake_invalid

    def _unprocessable(self, loan: Loan, last_day: dt.date) -> bool:
        """Whether the sums its SMS would state break (the planner's check, made once: fees only grow
        with the days past due, up to their cap, so the last day's sum is the largest)."""
        try:
            quantize(outstanding(loan) + ladder.late_fees(loan, last_day, self.policy), loan.currency)
        except Exception as exc:
            if not is_loan_fault(exc):
                raise
            return True
        return False

    def _stage(self, due_date: dt.date, day: dt.date) -> ladder.Stage | None:
        dpd = ladder.days_past_due(due_date, day)
        if dpd not in self._stages:
            self._stages[dpd] = ladder.current_stage(due_date, day, self.policy)
        return self._stages[dpd]

    def _simulate_day(self, day: dt.date, read: list[_Subject], out: DayResult) -> None:
        groups: dict[tuple[tuple[str, ...], str], list[_Line]] = defaultdict(list)
        due: list[_Line] = []
        for subject in read:
            stage = self._stage(subject.loan.due_date, day)
            if stage is None:
                continue
            if subject.unprocessable:
                out.suppressed[UNPROCESSABLE] += 1
                continue
            groups[subject.window_key].append((subject, stage))
            due.append((subject, stage))
        seen_window: set[str] = set()
        now = dt.datetime.combine(day, dt.time(0), tzinfo=self.business_zone).astimezone(dt.UTC)
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=self.business_zone).astimezone(dt.UTC)
        while now < end:
            self._hour(now, groups, seen_window, out)
            now += dt.timedelta(hours=1)
        for subject, stage in due:
            claim = self.claims.get((subject.loan.loan_id, subject.loan.cycle, stage.id))
            waiting = claim is None or (not claim.final and claim.until is not None and claim.until < end)
            if waiting and subject.loan.loan_id not in seen_window:
                out.no_window += 1

    def _hour(
        self,
        now: dt.datetime,
        groups: dict[tuple[tuple[str, ...], str], list[_Line]],
        seen_window: set[str],
        out: DayResult,
    ) -> None:
        """One planner run at `now`, then the sender on every job it enqueued."""
        candidates: dict[str, list[_Line]] = defaultdict(list)
        for key, lines in groups.items():
            zones, _ = key
            if not lines or not compliance.in_send_window(now, zones, self._window_phone[key], self.policy):
                continue  # most hours most borrowers are asleep: one check per window, not per loan
            unsettled: list[_Line] = []
            for line in lines:
                subject, stage = line
                seen_window.add(subject.loan.loan_id)
                claim = self.claims.get((subject.loan.loan_id, subject.loan.cycle, stage.id))
                if claim is not None and claim.final:
                    continue  # settled: its stage does not change before the business day does
                unsettled.append(line)
                if claim is not None and claim.until is not None and now < claim.until:
                    continue
                verdict = decisions.evaluate(subject.loan, None, now, self.policy, opted_out=False)
                if isinstance(verdict, decisions.Due):
                    candidates[subject.loan.borrower_id].append((subject, verdict.stage))
                elif isinstance(verdict, decisions.Suppress):
                    self._suppress((subject, stage), verdict.reason, verdict.retry_after, out)
            groups[key] = unsettled
        for borrower_id, lines in candidates.items():
            lines.sort(key=lambda line: (line[0].loan.due_date, line[0].loan.loan_id))
            for first in range(0, len(lines), MAX_LINES_PER_JOB):
                self._send(borrower_id, lines[first : first + MAX_LINES_PER_JOB], now, out)

    def _suppress(self, line: _Line, reason: str, retry_after: dt.datetime | None, out: DayResult) -> None:
        subject, stage = line
        self.claims[(subject.loan.loan_id, subject.loan.cycle, stage.id)] = _Claim(retry_after is None, retry_after)
        out.suppressed[reason] += 1

    def _send(self, borrower_id: str, lines: list[_Line], now: dt.datetime, out: DayResult) -> None:
        """The sender's rules for one job (dunning.sender: _send_consolidated)."""
        # The most overdue loan leads; only overdue loans share one SMS, a courtesy or due-today reminder goes alone.
        eligible = sorted(lines, key=lambda line: line[1].day, reverse=True)
        first = eligible[0][0].loan
        group = [
            line
            for line in eligible
            if line[0].loan.phone == first.phone and line[0].loan.currency == first.currency and line[1].day >= 1
        ] or eligible[:1]
        zone = decisions.borrower_timezone(first, self.policy)
        local_today = compliance.local_time(now, zone).date()
        tomorrow = compliance.next_local_midnight(now, zone)
        for other in (line for line in eligible if not any(line is member for member in group)):
            self._suppress(other, "cap_daily", tomorrow, out)
        group, sms = self._composable(group, now, local_today, tomorrow, out)
        if sms is None:
            return
        sent = self.sent_by_day[borrower_id]
        cap = compliance.cap_reason(sent, local_today, self.policy)
        if cap:
            for line in group:
                self._suppress(line, cap, tomorrow, out)
            return
        sent[local_today] = sent.get(local_today, 0) + 1
        for subject, stage in group:
            self.claims[(subject.loan.loan_id, subject.loan.cycle, stage.id)] = _Claim(final=True)
        lead = group[0][0]
        out.sms[group[0][1].kind] += 1
        out.segments += sms.segments
        out.loans_reminded += len(group)
        out.consolidated += int(len(group) > 1)
        out.sms_by_country[lead.country] += 1
        out.segments_by_country[lead.country] += sms.segments

    def _composable(
        self, group: list[_Line], now: dt.datetime, local_today: dt.date, tomorrow: dt.datetime, out: DayResult
    ) -> tuple[list[_Line], ComposedSms | None]:
        """The group less the loans that do not compose (each SUPPRESSED `unprocessable`), and its SMS."""
        try:
            return group, self._compose(group, now, local_today)
        except PolicyError:
            raise
        except COMPOSE_FAULTS:
            pass
        fine: list[_Line] = []
        for line in group:
            try:
                self._compose([line], now, local_today)
                fine.append(line)
            except PolicyError:
                raise
            except COMPOSE_FAULTS:
                self._suppress(line, UNPROCESSABLE, None, out)
        if not fine:
            return [], None
        try:
            return fine, self._compose(fine, now, local_today)
        except PolicyError:
            raise
        except COMPOSE_FAULTS:
            for line in fine[1:]:
                self._suppress(line, "cap_daily", tomorrow, out)
            return fine[:1], self._compose(fine[:1], now, local_today)

    def _compose(self, group: list[_Line], now: dt.datetime, local_today: dt.date) -> ComposedSms:
        """The SMS the sender would publish (dunning.sender: _compose), with no promise to mention."""
        today = ladder.business_date(now, self.policy)
        loans = [subject.loan for subject, _ in group]
        lead, stage = loans[0], group[0][1]
        fees = [ladder.late_fees(loan, today, self.policy) for loan in loans]
        earliest_due = min(loan.due_date for loan in loans)
        return render_reminder(
            self.policy,
            kind="consolidated" if len(group) > 1 else stage.kind,
            locale=lead.locale or self.policy.default_locale,
            name=lead.borrower_name,
            loan_id=lead.loan_id,
            currency=lead.currency,
            total=sum((loan.amount_due for loan in loans), Decimal(0)) + sum(fees, Decimal(0)),
            late_fees=sum(fees, Decimal(0)),
            days_past_due=max(ladder.days_past_due(loan.due_date, today) for loan in loans),
            due_date=earliest_due,
            pay_by=ladder.pay_by(local_today, earliest_due, self.policy),
            reference=reference_code(lead.loan_id, lead.cycle, stage.id),
            loan_count=len(group),
        )
