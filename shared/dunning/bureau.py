"""Credit-bureau delinquency file (docs/contract.md#bureau-file).

`bureau/YYYY-MM-DD/delinquencies.jsonl` lists every OPEN loan at or past `ladder.bureau_day`
days past due (DELINQUENT), plus one SETTLED correction for each loan reported earlier that has
since been paid (or whose overdue instalment was, so it is back under the threshold). A
`manifest.json` beside it gives the counts and the file's SHA-256.

Deterministic: lines sorted by loan id, keys in contract order, no wall-clock time anywhere,
so rerunning a date over unchanged data rewrites the same bytes. To make that hold for the
SETTLED lines too, a settled loan stays in the reported set, marked `settled_on`, until a run
of a later date removes it.

Optional keys beyond the contract's, written only when they apply (so every other line keeps its
bytes), named and valued as the Metro 2 format does: `compliance_condition_code` "XB" while the
borrower disputes the loan (account information disputed by the consumer) and "XH" once a dispute
was resolved (previously in dispute, investigation completed); `special_comment_code` "AC" while
the loan is on a repayment plan kept up to date (paying under a partial payment agreement). A plan
does not re-age the delinquency: the line still reports the contract's days past due and amount.

Conventions (not fixed by the contract): first_delinquency_date is the first day past due
(due_date + 1), kept while the loan stays reported; amount_overdue is the overdue instalment's
`amount_due` (ledger amount, fees excluded), written with the currency's minor unit when that
is exact; a SETTLED line has days_past_due 0, bucket "M0" and amount_overdue zero. Loans that
leave the book as WRITTEN_OFF (or vanish) are not "settled": they leave the set without a line
and are counted in the manifest.

One loan never stops the file: an item that breaks the contract, or a loan whose line cannot be
computed from its data (an absurd amount), gets no line, a SUPPRESSED record (stage `bureau`,
one per loan and day), a log line and a metric (`records.SetAside`); every other line is written.
A reported loan whose item has become invalid or unprocessable stays in the reported set, as it
was, and gets no line that day (`left_without_line.kept_invalid_item` in the manifest): unreadable
data is never taken for a payment (no SETTLED correction) nor re-reported with figures that
cannot be trusted (no DELINQUENT line). Once the item is fixed the loan is reported again from
the data (its first_delinquency_date kept), or corrected as SETTLED if it was paid meanwhile.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dunning import ladder
from dunning.dal.bureau import BureauState, ReportStore
from dunning.dal.cases import CaseRepository
from dunning.dal.deliveries import DeliveriesRepository
from dunning.dal.ladder import Cursor, LadderRepository
from dunning.dal.loans import LoansRepository
from dunning.escalation import plan_is_current
from dunning.models.bureau import Reported
from dunning.models.loan import InvalidLoan, Loan, iso_date, parse_loan
from dunning.models.money import minor_unit
from dunning.models.policy import Policy
from dunning.models.state import LoanControl
from dunning.observability import MetricUnit, logger, metrics
from dunning.records import SetAside, is_loan_fault
from dunning.sharding import bucket_of, check_shard, in_shard, partitions_of_shard

SETTLING_STATUSES = frozenset({"PAID", "CLOSED"})


def bucket(days_past_due: int) -> str:
    """M1 1-30, M2 31-60, M3 61-90, M4+ from 91 (M0 for a loan no longer past due)."""
    if days_past_due <= 0:
        return "M0"
    if days_past_due <= 90:
        return f"M{(days_past_due - 1) // 30 + 1}"
    return "M4+"


def money_text(amount: Decimal, currency: str) -> str:
    """The exact amount, padded to the currency's minor unit; never rounded."""
    padded = amount.quantize(minor_unit(currency))
    return str(padded) if padded == amount else str(amount)


class BureauLine(BaseModel):
    """One line of the file; the field order is the line's key order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    loan_id: str
    borrower_id: str
    reporting_date: dt.date
    days_past_due: Annotated[int, Field(ge=0)]
    bucket: str
    amount_overdue: Annotated[str, Field(pattern=r"^\d+(\.\d+)?$")]
    currency: str
    first_delinquency_date: dt.date
    status: Literal["DELINQUENT", "SETTLED"]
    # Optional keys (docs/contract.md#bureau-file), Metro 2's codes: left out of the line when None.
    compliance_condition_code: Literal["XB", "XH"] | None = None
    special_comment_code: Literal["AC"] | None = None

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json", exclude_none=True), ensure_ascii=False, separators=(",", ":"))


def bureau_flags(loan: Loan | None, control: LoanControl | None, reporting_date: dt.date) -> dict[str, str]:
    """The optional Metro 2 codes of a loan's line: dispute (XB, resolved XH) and a plan kept up to date (AC)."""
    flags: dict[str, str] = {}
    if control is None:
        return flags
    if control.dispute_hold:
        flags["compliance_condition_code"] = "XB"
    elif control.dispute_event_at is not None:
        flags["compliance_condition_code"] = "XH"
    if loan is not None and plan_is_current(loan, control, reporting_date):
        flags["special_comment_code"] = "AC"
    return flags


@dataclass
class BureauPlan:
    reporting_date: dt.date
    lines: list[BureauLine] = field(default_factory=list)
    save: list[Reported] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)
    unprocessable: list[tuple[Loan, Exception]] = field(default_factory=list)  # no line: the loan's data broke it
    kept_invalid: list[str] = field(default_factory=list)  # reported loans kept, as they were, without a line


def plan_report(
    reporting_date: dt.date,
    delinquent: Iterable[Loan],
    reported: Mapping[str, Reported],
    live: Mapping[str, Mapping[str, Any]],
    policy: Policy,
    controls: Mapping[str, LoanControl] | None = None,
) -> BureauPlan:
    """The file's lines and the reported-set changes. Pure.

    `delinquent`: OPEN loans due on or before reporting_date - bureau_day; `reported`: the set;
    `live`: current LoansTable items of reported loans that are not in `delinquent`; `controls`:
    the CONTROL items (disputes, plans) of those loans, for the optional codes (`bureau_flags`).
    """
    controls = controls or {}
    cutoff = reporting_date - dt.timedelta(days=policy.ladder.bureau_day)
    plan = BureauPlan(reporting_date)
    seen: set[str] = set()
    for loan in delinquent:
        seen.add(loan.loan_id)
        _plan_delinquent(plan, loan, reported.get(loan.loan_id), controls.get(loan.loan_id))
    for loan_id, known in reported.items():
        if loan_id not in seen:
            _plan_departed(plan, known, live.get(loan_id), cutoff, controls.get(loan_id))
    plan.lines.sort(key=lambda line: (line.loan_id, line.status))
    return plan


def _plan_delinquent(plan: BureauPlan, loan: Loan, known: Reported | None, control: LoanControl | None) -> None:
    """The DELINQUENT line of a loan read today, or (its data broke the line) the loan set aside."""
    try:
        line, new = _delinquent_line(loan, plan.reporting_date, known)
        line = line.model_copy(update=bureau_flags(loan, control, plan.reporting_date))
    except Exception as exc:
        if not is_loan_fault(exc):
            raise
        plan.unprocessable.append((loan, exc))
        if known is not None:
            plan.kept_invalid.append(loan.loan_id)
            plan.dropped["kept_invalid_item"] += 1
        return
    plan.lines.append(line)
    if new is not None:
        plan.save.append(new)


def _plan_departed(
    plan: BureauPlan, known: Reported, item: Mapping[str, Any] | None, cutoff: dt.date, control: LoanControl | None
) -> None:
    """A reported loan not among today's delinquent loans: settled, kept as it was, or gone from the set."""
    loan_id = known.loan_id
    if known.settled_on is not None:
        if known.settled_on == plan.reporting_date:
            # A rerun of the settling date.
            plan.lines.append(_settled_line(known, plan.reporting_date, control))
        elif known.settled_on < plan.reporting_date:
            plan.remove.append(loan_id)
        return
    verdict = _departure(item, cutoff)
    if verdict == "settled":
        plan.lines.append(_settled_line(known, plan.reporting_date, control))
        plan.save.append(known.model_copy(update={"settled_on": plan.reporting_date}))
    elif verdict == "kept_invalid_item":
        plan.kept_invalid.append(loan_id)  # past due but unreadable: keep it, report nothing new
        plan.dropped[verdict] += 1
    else:
        plan.remove.append(loan_id)
        plan.dropped[verdict] += 1


def _delinquent_line(loan: Loan, reporting_date: dt.date, known: Reported | None) -> tuple[BureauLine, Reported | None]:
    """The loan's DELINQUENT line, and its new reported-set entry when it was not (or no longer) reported."""
    new = None
    if known is None or known.settled_on is not None:
        new = known = Reported(
            loan_id=loan.loan_id,
            borrower_id=loan.borrower_id,
            currency=loan.currency,
            first_delinquency_date=loan.due_date + dt.timedelta(days=1),
            reported_since=reporting_date,
        )
    dpd = ladder.days_past_due(loan.due_date, reporting_date)
    line = BureauLine(
        loan_id=loan.loan_id,
        borrower_id=loan.borrower_id,
        reporting_date=reporting_date,
        days_past_due=dpd,
        bucket=bucket(dpd),
        amount_overdue=money_text(loan.amount_due, loan.currency),
        currency=loan.currency,
        first_delinquency_date=known.first_delinquency_date,
        status="DELINQUENT",
    )
    return line, new


def _departure(item: Mapping[str, Any] | None, cutoff: dt.date) -> str:
    """Why a reported loan is no longer among the delinquent loans read today.

    Only a status that says so (PAID, CLOSED) or a real due date after the cutoff settles it;
    anything unreadable keeps it (`kept_invalid_item`).
    """
    if item is None:
        return "loan_missing"
    status = item.get("status")
    if status in SETTLING_STATUSES:
        return "settled"
    if status == "WRITTEN_OFF":
        return "written_off"
    if status != "OPEN":
        return "kept_invalid_item"
    try:
        due = iso_date(item.get("due_date"))
    except ValueError:
        return "kept_invalid_item"
    # An OPEN loan due after the cutoff had its reported instalment paid: back under the threshold.
    return "settled" if due > cutoff else "kept_invalid_item"


def _settled_line(known: Reported, reporting_date: dt.date, control: LoanControl | None = None) -> BureauLine:
    line = BureauLine(
        loan_id=known.loan_id,
        borrower_id=known.borrower_id,
        reporting_date=reporting_date,
        days_past_due=0,
        bucket=bucket(0),
        amount_overdue=money_text(Decimal(0), known.currency),
        currency=known.currency,
        first_delinquency_date=known.first_delinquency_date,
        status="SETTLED",
    )
    return line.model_copy(update=bureau_flags(None, control, reporting_date))


def render(lines: Iterable[BureauLine]) -> bytes:
    return "".join(line.to_json() + "\n" for line in lines).encode("utf-8")


def manifest(plan: BureauPlan, body: bytes, data_key: str, invalid: Mapping[str, int]) -> dict[str, Any]:
    statuses = Counter(line.status for line in plan.lines)
    buckets = Counter(line.bucket for line in plan.lines if line.status == "DELINQUENT")
    return {
        "reporting_date": plan.reporting_date.isoformat(),
        "file": data_key,
        "lines": len(plan.lines),
        "delinquent": statuses["DELINQUENT"],
        "settled": statuses["SETTLED"],
        "buckets": dict(sorted(buckets.items())),
        "sha256": hashlib.sha256(body).hexdigest(),
        "skipped_invalid_items": dict(sorted(invalid.items())),
        "left_without_line": dict(sorted(plan.dropped.items())),
    }


def report_keys(reporting_date: dt.date) -> tuple[str, str]:
    prefix = f"bureau/{reporting_date.isoformat()}"
    return f"{prefix}/delinquencies.jsonl", f"{prefix}/manifest.json"


def part_keys(reporting_date: dt.date, shard: int, shards: int) -> tuple[str, str]:
    """A shard's part of the day's file (its lines, sorted) and the part's counts."""
    prefix = f"bureau/{reporting_date.isoformat()}/parts/{shard:04d}-of-{shards:04d}"
    return f"{prefix}.jsonl", f"{prefix}.json"


def chunk_keys(reporting_date: dt.date, shard: int, shards: int, chunk: int) -> tuple[str, str]:
    """The lines (and counts) one invocation of a shard run wrote before it stopped near its time limit."""
    prefix = f"bureau/{reporting_date.isoformat()}/parts/{shard:04d}-of-{shards:04d}.chunk{chunk:04d}"
    return f"{prefix}.jsonl", f"{prefix}.json"


def _joined(lines: list[str]) -> bytes:
    """Lines in the file's order (loan id, then status), one a line."""
    return "".join(line + "\n" for line in sorted(lines, key=_line_order)).encode("utf-8")


def _line_order(text: str) -> tuple[str, str]:
    line = json.loads(text)
    return str(line["loan_id"]), str(line["status"])


@dataclass
class _Counts:
    """What a part adds to the manifest beyond its lines (invalid items, reported loans left without a line)."""

    invalid: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> bytes:
        body = {
            "skipped_invalid_items": dict(sorted(self.invalid.items())),
            "left_without_line": dict(sorted(self.dropped.items())),
        }
        return (json.dumps(body, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, body: bytes) -> _Counts:
        data = json.loads(body)
        return cls(Counter(data["skipped_invalid_items"]), Counter(data["left_without_line"]))


@dataclass
class _ShardRun:
    """One invocation's work on a shard of the day's file: the loans read so far and what it counted."""

    now: dt.datetime
    shard: int | None  # None: every shard, the file written directly
    one: int
    of: int
    reporting_date: dt.date
    cutoff: dt.date
    start: Cursor
    reported: dict[str, Reported]
    set_aside: SetAside
    counts: _Counts = field(default_factory=_Counts)
    delinquent: list[Loan] = field(default_factory=list)
    recorded: set[str] = field(default_factory=set)  # loans already set aside by this run

    @property
    def chunks(self) -> int:
        """How many chunks the invocations before this one wrote."""
        return int(self.start.extra.get("chunks", 0))

    def summary(self) -> dict[str, Any]:
        return {"reporting_date": self.reporting_date.isoformat(), "shard": self.shard, "shards": self.of}


@dataclass
class BureauReporter:
    index: LadderRepository
    loans: LoansRepository
    state: BureauState
    store: ReportStore
    deliveries: DeliveriesRepository
    policy: Policy
    retention_days: int

    def run(
        self,
        now: dt.datetime,
        *,
        shard: int | None = None,
        shards: int = 1,
        cursor: str | None = None,
        time_left: Callable[[], float] = lambda: float("inf"),
        min_seconds_left: float = 20.0,
    ) -> dict[str, Any]:
        """The lines of one shard for the business date of `now` (every shard without `shard`).

        Without `shard` the day's file and manifest are written directly (returns the manifest); a shard
        run writes its part (`part_keys`) for `assemble`. Delinquent loans are the ladder index items
        whose upstream due date is on or before the cutoff (a plan does not re-age them), read live from
        LoansTable a page at a time. Near its time limit a shard run writes the lines so far as a chunk and
        returns a cursor; the invocation that finishes the shard joins its chunks into the part.
        """
        work = self._begin(now, shard, shards, cursor)
        resume = self._read(work, time_left, min_seconds_left)
        if resume is not None:
            return self._stop_early(work, resume)
        return self._finish(work)

    def _begin(self, now: dt.datetime, shard: int | None, shards: int, cursor: str | None) -> _ShardRun:
        one, of = (0, 1) if shard is None else (shard, shards)
        check_shard(one, of)
        partitions = partitions_of_shard(one, of)
        reporting_date = ladder.business_date(now, self.policy)
        start = Cursor.decode(cursor) if cursor is not None else Cursor(partitions[0], None, {"chunks": 0})
        if start.partition not in partitions:
            raise ValueError(f"cursor is for partition {start.partition}, not in shard {one} of {of}")
        return _ShardRun(
            now=now,
            shard=shard,
            one=one,
            of=of,
            reporting_date=reporting_date,
            cutoff=reporting_date - dt.timedelta(days=self.policy.ladder.bureau_day),
            start=start,
            reported={i: r for i, r in self._reported().items() if bucket_of(r.borrower_id) % of == one},
            set_aside=SetAside(self.deliveries, "bureau", self.retention_days),
        )

    def _read(self, work: _ShardRun, time_left: Callable[[], float], min_seconds_left: float) -> Cursor | None:
        """Read the shard's delinquent loans from the cursor on; the cursor to resume from if time runs short.

        By upstream's due date, not the chased one: a repayment plan does not re-age the delinquency
        (a loan on a plan kept up to date is reported, with its `AC` code). So the whole partition is
        read, filtered on the item's `due_date`.
        """
        partitions = partitions_of_shard(work.one, work.of)
        for partition in partitions[partitions.index(work.start.partition) :]:
            key = work.start.start_key if partition == work.start.partition else None
            while True:
                if work.shard is not None and time_left() < min_seconds_left:
                    return Cursor(partition, key, {"chunks": work.chunks + 1})
                page = self.index.page(
                    f"{partition:02d}", "0", "\uffff", key, 500, due_on_or_before=work.cutoff.isoformat()
                )
                self._parse_page(
                    work,
                    [str(item["loan_id"]) for item in page.items if in_shard(item["ladder_bucket"], work.one, work.of)],
                )
                key = page.next_key
                if key is None:
                    break
        return None

    def _parse_page(self, work: _ShardRun, loan_ids: list[str]) -> None:
        """The live items of a page's loans, parsed; an item that breaks the contract is set aside."""
        for item in self.loans.get_many(loan_ids).values():
            try:
                work.delinquent.append(parse_loan(item))
            except InvalidLoan as exc:
                work.counts.invalid[work.set_aside.invalid(exc, item, work.now, work.reporting_date)] += 1
                work.recorded.add(repr(item.get("loan_id")))
            except Exception as exc:
                if not is_loan_fault(exc):
                    raise
                reason = work.set_aside.unprocessable_item(exc, item, work.now, work.reporting_date)
                work.counts.invalid[reason] += 1
                work.recorded.add(repr(item.get("loan_id")))

    def _stop_early(self, work: _ShardRun, resume: Cursor) -> dict[str, Any]:
        """Lines so far as a chunk (and their reported-set entries); the next invocation goes on from `resume`."""
        known = {d.loan_id: work.reported[d.loan_id] for d in work.delinquent if d.loan_id in work.reported}
        controls = self._controls({d.loan_id for d in work.delinquent}, known)
        plan = plan_report(work.reporting_date, work.delinquent, known, {}, self.policy, controls)
        self._record_unprocessable(plan, work.set_aside, work.now, work.counts)
        lines_key, counts_key = chunk_keys(work.reporting_date, work.one, work.of, work.chunks)
        self.store.put(lines_key, render(plan.lines), "application/x-ndjson")
        self.store.put(counts_key, work.counts.to_json(), "application/json")
        self.state.save([r.to_entry() for r in plan.save])
        logger.warning("bureau shard stopping early: time limit near", extra={"partition": resume.partition})
        return {**work.summary(), "complete": False, "cursor": resume.encode()}

    def _finish(self, work: _ShardRun) -> dict[str, Any]:
        """The shard's whole part (or, unsharded, the file), then the reported set."""
        earlier = self._earlier_chunks(work)
        seen_before = {_line_order(line)[0] for line in earlier}
        reported = {i: r for i, r in work.reported.items() if i not in seen_before}
        current = {loan.loan_id for loan in work.delinquent}
        departed = self.loans.get_many([i for i, r in reported.items() if i not in current and r.settled_on is None])
        controls = self._controls(current, reported)
        plan = plan_report(work.reporting_date, work.delinquent, reported, departed, self.policy, controls)
        self._record_unprocessable(plan, work.set_aside, work.now, work.counts)
        self._record_kept_invalid(work, plan, departed)
        work.counts.dropped.update(plan.dropped)
        body_bytes = _joined([*earlier, *(line.to_json() for line in plan.lines)])
        if work.shard is None:
            summary = self._write_file(work.reporting_date, body_bytes, work.counts)
        else:
            data_key, counts_key = part_keys(work.reporting_date, work.one, work.of)
            self.store.put(data_key, body_bytes, "application/x-ndjson")
            self.store.put(counts_key, work.counts.to_json(), "application/json")
            summary = {**work.summary(), "part": data_key}
        # After the file: a crash here repeats the same file on the rerun, then records the set.
        self.state.save([r.to_entry() for r in plan.save])
        self.state.remove(plan.remove)
        return {**summary, "complete": True, "cursor": None}

    def _earlier_chunks(self, work: _ShardRun) -> list[str]:
        """Lines of the invocations before this one; their counts join this run's."""
        earlier: list[str] = []
        for n in range(work.chunks):
            lines_key, counts_key = chunk_keys(work.reporting_date, work.one, work.of, n)
            earlier += self.store.get(lines_key).decode("utf-8").splitlines()
            before = _Counts.from_json(self.store.get(counts_key))
            work.counts.invalid.update(before.invalid)
            work.counts.dropped.update(before.dropped)
        return earlier

    def _record_kept_invalid(self, work: _ShardRun, plan: BureauPlan, departed: Mapping[str, dict[str, Any]]) -> None:
        """A reported loan the index no longer gives (its status or due date broken): record why."""
        for loan_id in plan.kept_invalid:
            live_item = departed.get(loan_id)
            if live_item is not None and repr(loan_id) not in work.recorded:
                try:
                    parse_loan(live_item)
                except InvalidLoan as broken:
                    work.counts.invalid[work.set_aside.invalid(broken, live_item, work.now, work.reporting_date)] += 1

    def assemble(self, now: dt.datetime, *, shards: int) -> dict[str, Any]:
        """Join the day's parts of `shards` shard runs into the file and manifest (an unsharded run's bytes)."""
        check_shard(0, shards)
        reporting_date = ladder.business_date(now, self.policy)
        lines: list[str] = []
        counts = _Counts()
        missing = []
        for one in range(shards):
            data_key, counts_key = part_keys(reporting_date, one, shards)
            try:
                part_counts = _Counts.from_json(self.store.get(counts_key))
                lines += self.store.get(data_key).decode("utf-8").splitlines()
            except FileNotFoundError:
                missing.append(one)
                continue
            counts.invalid.update(part_counts.invalid)
            counts.dropped.update(part_counts.dropped)
        if missing:
            raise ValueError(f"bureau {reporting_date}: shard part(s) {missing} of {shards} not written yet")
        return {**self._write_file(reporting_date, _joined(lines), counts), "complete": True, "cursor": None}

    def _write_file(self, reporting_date: dt.date, body: bytes, counts: _Counts) -> dict[str, Any]:
        lines = [BureauLine.model_validate_json(line) for line in body.decode("utf-8").splitlines()]
        plan = BureauPlan(reporting_date, lines, dropped=counts.dropped)
        data_key, manifest_key = report_keys(reporting_date)
        summary = manifest(plan, body, data_key, counts.invalid)
        self.store.put(data_key, body, "application/x-ndjson")
        self.store.put(
            manifest_key, (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode(), "application/json"
        )
        metrics.add_metric(name="BureauDelinquent", unit=MetricUnit.Count, value=summary["delinquent"])
        metrics.add_metric(name="BureauSettled", unit=MetricUnit.Count, value=summary["settled"])
        return summary

    def _record_unprocessable(self, plan: BureauPlan, set_aside: SetAside, now: dt.datetime, counts: _Counts) -> None:
        for loan, fault in plan.unprocessable:
            reason = set_aside.unprocessable(
                fault,
                loan_id=loan.loan_id,
                borrower_id=loan.borrower_id,
                cycle=loan.cycle,
                now=now,
                today=plan.reporting_date,
            )
            counts.invalid[reason] += 1

    def _controls(self, delinquent: set[str], reported: Mapping[str, Reported]) -> dict[str, LoanControl]:
        """CONTROL items of the loans the file may have a line for (their disputes and plans), in batched reads."""
        controls: dict[str, LoanControl] = {}
        for loan_id, item in CaseRepository(self.state.table).control_items(sorted(delinquent | set(reported))).items():
            try:
                controls[loan_id] = LoanControl.model_validate(item)
            except ValidationError:
                # The line goes out without the optional codes rather than not at all.
                logger.error(
                    "bureau: unreadable CONTROL item, line written without its codes", extra={"loan_id": loan_id}
                )
        return controls

    def _reported(self) -> dict[str, Reported]:
        return self.state.reported()
