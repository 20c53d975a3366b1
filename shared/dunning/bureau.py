"""Credit-bureau delinquency file (DESIGN 4.6).

`bureau/YYYY-MM-DD/delinquencies.jsonl` lists every OPEN loan at or past `ladder.bureau_day`
days past due (DELINQUENT), plus one SETTLED correction for each loan reported earlier that has
since been paid (or whose overdue instalment was, so it is back under the threshold). A
`manifest.json` beside it gives the counts and the file's SHA-256.

Deterministic: lines sorted by loan id, keys in contract order, no wall-clock time anywhere,
so rerunning a date over unchanged data rewrites the same bytes. To make that hold for the
SETTLED lines too, a settled loan stays in the reported set, marked `settled_on`, until a run
of a later date removes it.

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
from dunning.dal.deliveries import DeliveriesRepository
from dunning.dal.loans import LoansRepository
from dunning.models.loan import InvalidLoan, IsoDate, Loan, iso_date, parse_loan
from dunning.models.money import minor_unit
from dunning.models.policy import Policy
from dunning.observability import MetricUnit, logger, metrics
from dunning.records import SetAside, is_loan_fault
from dunning.sharding import in_shard

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

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":"))


class Reported(BaseModel):
    """A loan in the reported set (StateTable `BUREAU#REPORTED / LOAN#id`)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    loan_id: str
    borrower_id: str
    currency: str
    first_delinquency_date: IsoDate
    reported_since: IsoDate
    settled_on: IsoDate | None = None

    def to_entry(self) -> dict[str, Any]:
        values = self.model_dump(mode="json")
        return {key: value for key, value in values.items() if value is not None}


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
) -> BureauPlan:
    """The file's lines and the reported-set changes. Pure.

    `delinquent`: OPEN loans due on or before reporting_date - bureau_day; `reported`: the set;
    `live`: current LoansTable items of reported loans that are not in `delinquent`.
    """
    cutoff = reporting_date - dt.timedelta(days=policy.ladder.bureau_day)
    plan = BureauPlan(reporting_date)
    seen: set[str] = set()
    for loan in delinquent:
        seen.add(loan.loan_id)
        try:
            line, new = _delinquent_line(loan, reporting_date, reported.get(loan.loan_id))
        except Exception as exc:
            if not is_loan_fault(exc):
                raise
            plan.unprocessable.append((loan, exc))
            if loan.loan_id in reported:
                plan.kept_invalid.append(loan.loan_id)
                plan.dropped["kept_invalid_item"] += 1
            continue
        plan.lines.append(line)
        if new is not None:
            plan.save.append(new)
    for loan_id, known in reported.items():
        if loan_id in seen:
            continue
        if known.settled_on is not None:
            if known.settled_on == reporting_date:
                plan.lines.append(_settled_line(known, reporting_date))  # a rerun of the settling date
            elif known.settled_on < reporting_date:
                plan.remove.append(loan_id)
            continue
        verdict = _departure(live.get(loan_id), cutoff)
        if verdict == "settled":
            plan.lines.append(_settled_line(known, reporting_date))
            plan.save.append(known.model_copy(update={"settled_on": reporting_date}))
        elif verdict == "kept_invalid_item":
            plan.kept_invalid.append(loan_id)  # past due but unreadable: keep it, report nothing new
            plan.dropped[verdict] += 1
        else:
            plan.remove.append(loan_id)
            plan.dropped[verdict] += 1
    plan.lines.sort(key=lambda line: (line.loan_id, line.status))
    return plan


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


def _settled_line(known: Reported, reporting_date: dt.date) -> BureauLine:
    return BureauLine(
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
    """One shard's part of the day's file: its lines, and its counts for the manifest."""
    stem = f"bureau/{reporting_date.isoformat()}/parts/{shard:04d}-of-{shards:04d}"
    return f"{stem}.jsonl", f"{stem}.json"


@dataclass
class BureauReporter:
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
        """Write the file for the business date of `now` (returns the manifest), or one shard's part of it.

        Until the bureau reads by shard, a shard run reads every delinquent loan and keeps its
        shard's borrowers (dunning.sharding); it writes `parts/SSSS-of-NNNN.jsonl` (its lines, sorted
        as in the file) and `.json` (its counts), and always completes in one invocation (no cursor).
        """
        del cursor, time_left, min_seconds_left  # one invocation does a whole shard (for now)
        reporting_date = ladder.business_date(now, self.policy)
        cutoff = reporting_date - dt.timedelta(days=self.policy.ladder.bureau_day)
        set_aside = SetAside(self.deliveries, "bureau", self.retention_days)
        invalid: Counter[str] = Counter()
        delinquent: list[Loan] = []
        recorded: set[str] = set()  # loans already set aside by this run
        for item in self.loans.open_loans_due_between(dt.date.min, cutoff):
            if not in_shard(str(item.get("borrower_id")), shard, shards):
                continue
            try:
                delinquent.append(parse_loan(item))
            except InvalidLoan as exc:
                invalid[set_aside.invalid(exc, item, now, reporting_date)] += 1
                recorded.add(repr(item.get("loan_id")))
            except Exception as exc:
                if not is_loan_fault(exc):
                    raise
                invalid[set_aside.unprocessable_item(exc, item, now, reporting_date)] += 1
                recorded.add(repr(item.get("loan_id")))
        reported = {i: r for i, r in self._reported().items() if in_shard(r.borrower_id, shard, shards)}
        current = {loan.loan_id for loan in delinquent}
        departed = self.loans.get_many([i for i, r in reported.items() if i not in current and r.settled_on is None])
        plan = plan_report(reporting_date, delinquent, reported, departed, self.policy)
        for loan, fault in plan.unprocessable:
            reason = set_aside.unprocessable(
                fault,
                loan_id=loan.loan_id,
                borrower_id=loan.borrower_id,
                cycle=loan.cycle,
                now=now,
                today=reporting_date,
            )
            invalid[reason] += 1
        for loan_id in plan.kept_invalid:
            # A reported loan the index no longer gives (its status or due date broken): record why.
            live = departed.get(loan_id)
            if live is not None and repr(loan_id) not in recorded:
                try:
                    parse_loan(live)
                except InvalidLoan as broken:
                    invalid[set_aside.invalid(broken, live, now, reporting_date)] += 1

        body = render(plan.lines)
        if shard is None:
            summary = self._write_file(plan, body, invalid)
        else:
            lines_key, counts_key = part_keys(reporting_date, shard, shards)
            counts = {"invalid": dict(sorted(invalid.items())), "dropped": dict(sorted(plan.dropped.items()))}
            self.store.put(lines_key, body, "application/x-ndjson")
            self.store.put(counts_key, (json.dumps(counts, sort_keys=True) + "\n").encode(), "application/json")
            summary = {"reporting_date": reporting_date.isoformat(), "part": lines_key, "lines": len(plan.lines)}
        # After the file (or part): a crash here repeats the same bytes on the rerun, then records the set.
        self.state.save([r.to_entry() for r in plan.save])
        self.state.remove(plan.remove)
        return {**summary, "complete": True, "cursor": None}

    def assemble(self, now: dt.datetime, *, shards: int) -> dict[str, Any]:
        """Join the shards' parts of the business date of `now` into the day's file; returns the manifest.

        The lines are merged in the file's order, so the bytes are those an unsharded run writes.
        """
        reporting_date = ladder.business_date(now, self.policy)
        lines: list[BureauLine] = []
        invalid: Counter[str] = Counter()
        plan = BureauPlan(reporting_date)
        for shard in range(shards):
            lines_key, counts_key = part_keys(reporting_date, shard, shards)
            body, counts = self.store.get(lines_key), self.store.get(counts_key)
            if body is None or counts is None:
                raise LookupError(f"bureau part {shard} of {shards} for {reporting_date} is missing ({lines_key})")
            lines.extend(BureauLine.model_validate_json(line) for line in body.decode("utf-8").splitlines())
            summed = json.loads(counts)
            invalid.update(summed["invalid"])
            plan.dropped.update(summed["dropped"])
        plan.lines = sorted(lines, key=lambda line: (line.loan_id, line.status))
        return self._write_file(plan, render(plan.lines), invalid)

    def _write_file(self, plan: BureauPlan, body: bytes, invalid: Mapping[str, int]) -> dict[str, Any]:
        data_key, manifest_key = report_keys(plan.reporting_date)
        summary = manifest(plan, body, data_key, invalid)
        self.store.put(data_key, body, "application/x-ndjson")
        self.store.put(
            manifest_key, (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode(), "application/json"
        )
        metrics.add_metric(name="BureauDelinquent", unit=MetricUnit.Count, value=summary["delinquent"])
        metrics.add_metric(name="BureauSettled", unit=MetricUnit.Count, value=summary["settled"])
        return summary

    def _reported(self) -> dict[str, Reported]:
        reported: dict[str, Reported] = {}
        for item in self.state.reported():
            try:
                entry = Reported.model_validate(item)
            except ValidationError:
                logger.error("bureau: unreadable reported-set item ignored", extra={"sk": item.get("sk")})
                continue
            reported[entry.loan_id] = entry
        return reported
