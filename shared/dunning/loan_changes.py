"""Change capture on LoansTable (LoanChangesFunction): every item upstream writes is checked as it is written,
and the ladder index (`dal.ladder`: the loans' CONTROL items in StateTable) is kept from it.

The table's DynamoDB stream hands every INSERT, MODIFY and REMOVE to this module, whatever the
item's keys: an item that breaks the contract (docs/contract.md#loanstable-item) gets a `SUPPRESSED` record at stage
`intake` with its reason, the metric `InvalidLoanItems` and a log line (loan id and reason only).

The index: an OPEN valid item enters it (or moves in it) with its upstream values and its ladder
keys; an item that leaves OPEN, turns invalid or is deleted leaves it. The writes are ordered by
the stream's sequence number, so a redelivered or late record never overwrites a newer one. Under
a repayment plan the item chases the next unpaid instalment (`chased.chased_due`). The
backfill (`dunning backfill`) sends an existing table's items through the same `LoanChanges.apply`.
A deleted item's records stay as the audit trail.

A loan upstream writes for the first time (an INSERT) OPEN and with a stage of the ladder already due at the
write's time (`stage_due_at`: an overdue loan migrated or booked late) wakes its planner shard, which would
otherwise find it at its next wake (6 hours at most). Only an insert: a rewrite of a loan the index holds
(a nightly fee accrual, a due date moved) leaves the shard to its agenda, or every such batch would poke
every shard and cost each its marks. The buckets are collected over a stream batch and each shard is poked
once after it (`wake_planners`): a bulk import of overdue loans writes a few pokes, not one per loan. A poke
is best effort: one that fails is logged and counted (PlannerPokeFailures), never fails the batch (the
loan is then found at the shard's next wake). The backfill never pokes; its command wakes every shard at its end.

An item upstream marks PAID, CLOSED or WRITTEN_OFF closes the loan's open collection cases
(`on_ended`, `case_closing.CaseCloser`: CollectionCaseClosed once, whatever the redeliveries), also
when its only fault is the phone (a loan the SMS could not reach has a case too). Such an OPEN
item (`models.loan.parse_unreachable`) stays in the index flagged `unreachable`: escalation opens
its `unreachable` case from there, the planner skips it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from dunning.case_closing import CLOSING_REASONS, CaseCloser
from dunning.chased import chased_due, effective_loan
from dunning.compliance import phone_timezones, region_of
from dunning.dal.deliveries import DeliveriesRepository
from dunning.dal.ladder import BACKFILL_SEQ, COPIED, DERIVED, LadderRepository, ladder_due, sequence
from dunning.dal.state import marked_handled
from dunning.ladder import business_date, current_stage
from dunning.models.delivery import DeliveryRecord
from dunning.models.loan import InvalidLoan, Loan, LoanStatus, UnreachableLoan, parse_loan, parse_unreachable
from dunning.models.state import LoanControl
from dunning.observability import MetricUnit, logger, metrics
from dunning.records import UNPROCESSABLE, is_loan_fault, suppression_record
from dunning.sharding import bucket_key, bucket_of, partition_key

if TYPE_CHECKING:
    from dunning.dal.ports import PlannerWakes
    from dunning.models.policy import Policy

INTAKE_STAGE = "intake"
_MAX_ID_LENGTH = 128


class ChangeKind(StrEnum):
    """DynamoDB stream `eventName`."""

    INSERT = "INSERT"
    MODIFY = "MODIFY"
    REMOVE = "REMOVE"


class LoanChange(BaseModel):
    """One LoansTable stream record, as the domain needs it (the handler builds it from the stream event)."""

    model_config = ConfigDict(frozen=True)

    loan_id: Annotated[str, Field(min_length=1, description="the item's key (LoansTable partition key)")]
    kind: ChangeKind
    changed_at: Annotated[AwareDatetime, Field(description="ApproximateCreationDateTime of the stream record")]
    sequence_number: Annotated[
        str, Field(min_length=1, description="the stream record's SequenceNumber; BACKFILL_SEQ for the backfill")
    ]
    item: Annotated[
        dict[str, Any] | None,
        Field(description="NewImage, deserialised; None for REMOVE or a stream without new images"),
    ] = None


class IntakeOutcome(StrEnum):
    VALID = "valid"
    INVALID = "invalid"
    IGNORED = "ignored"


class IndexOutcome(StrEnum):
    ENTERED = "entered"  # in the ladder index (or moved in it)
    LEFT = "left"  # not (or no longer) in it
    STALE = "stale"  # a newer change was applied already: nothing written


@dataclass(frozen=True)
class IntakeResult:
    outcome: IntakeOutcome
    reason: str | None = None
    index: IndexOutcome | None = None


def index_values(loan: Loan) -> tuple[dict[str, Any], tuple[str, ...]]:
    """What the index item takes from an OPEN valid loan (SET) and the optional attributes it drops (REMOVE).

    The number and the name are `contact_values` (written unless the borrower was erased); the send
    window needs only the number's region and its zones (`phone_zones`: several for +1, +7, +61
    numbers; the borrower's local day and window follow them). A loan valid but for its phone
    (`UnreachableLoan`) is flagged `unreachable`: escalation opens its case, the planner skips it.
    """
    values: dict[str, Any] = {name: getattr(loan, name) for name in COPIED if getattr(loan, name) is not None}
    values["status"] = loan.status.value
    values["due_date"] = loan.due_date.isoformat()
    if isinstance(loan, UnreachableLoan):
        values["unreachable"] = True
    else:
        values["phone_region"] = region_of(loan.phone)
        values["phone_zones"] = list(phone_timezones(loan.phone)) or None
    bucket = bucket_of(loan.borrower_id)
    values["ladder_bucket"] = bucket_key(bucket)
    values["ladder_part"] = partition_key(bucket)
    values["ladder_due"] = ladder_due(loan.due_date.isoformat(), loan.loan_id)
    removes = tuple(name for name in (*COPIED, *DERIVED) if values.get(name) is None)
    return {k: v for k, v in values.items() if v is not None}, removes


def contact_values(loan: Loan) -> dict[str, str] | None:
    """What the sender composes with (`dal.ladder.CONTACT`), as validated; None when no SMS can reach the loan."""
    if isinstance(loan, UnreachableLoan):
        return None
    return {"phone": loan.phone, "borrower_name": loan.borrower_name}


def stage_due_at(loan: Loan, item: Mapping[str, Any], now: dt.datetime, policy: Policy) -> bool:
    """Whether the planner has a stage of this OPEN loan to take at `now` that it has not taken yet.

    A stage is due when the ladder has one for the date collection chases (`chased.effective_loan`: the next
    unpaid instalment under a plan) on the business day of `now`; it is taken when the index item's mark says
    so (`dal.state.marked_handled`). `item` is the loan's index item as just written.
    """
    chased = effective_loan(loan, LoanControl.model_validate(item))
    if chased.status is not LoanStatus.OPEN:
        return False
    stage = current_stage(chased.due_date, business_date(now, policy), policy)
    if stage is None:
        return False
    return not marked_handled(item, chased.cycle, stage.id, now)[0]


class MissingNewImage(ValueError):
    """An INSERT or MODIFY without NewImage: the stream's view type must include new images."""


def check(change: LoanChange) -> Loan | InvalidLoan | None:
    """The pure verdict on one change: the valid loan, why the item is invalid, or None (nothing to check)."""
    if change.kind is ChangeKind.REMOVE:
        return None
    if change.item is None:
        raise MissingNewImage(
            f"loan {change.loan_id}: {change.kind} stream record has no NewImage; "
            "set the table's StreamViewType to NEW_IMAGE or NEW_AND_OLD_IMAGES"
        )
    try:
        return parse_loan(change.item)
    except InvalidLoan as exc:
        return exc
    except Exception as exc:
        if not is_loan_fault(exc):
            raise
        # Never fail the stream batch on one item's data: the records after it would wait (then be skipped).
        return InvalidLoan(change.loan_id[:_MAX_ID_LENGTH], UNPROCESSABLE, type(exc).__name__)


def intake_record(change: LoanChange, invalid: InvalidLoan, retention_days: int) -> DeliveryRecord:
    """The SUPPRESSED record of an invalid item: one per loan, cycle, reason and UTC day of the change.

    Its id derives from the change alone, so a redelivered stream record writes the same record again
    (the stream is at-least-once) and a later version still invalid for the same reason that day only
    moves `updated_at`. A different reason, or another day, is a new record.
    """
    item: Mapping[str, Any] = change.item or {}
    changed_at = change.changed_at.astimezone(dt.UTC)
    day = dt.datetime.combine(changed_at.date(), dt.time(0), tzinfo=dt.UTC)
    borrower_id = item.get("borrower_id")
    return suppression_record(
        loan_id=change.loan_id[:_MAX_ID_LENGTH],
        borrower_id=borrower_id[:_MAX_ID_LENGTH] if isinstance(borrower_id, str) and borrower_id else None,
        # The cycle as upstream wrote it (it may be the broken attribute), like the planner's records.
        cycle=str(item.get("due_date") or "unknown")[:10],
        stage=INTAKE_STAGE,
        reason=invalid.reason,
        now=changed_at,
        retention_days=retention_days,
        record_at=day,
    )


class LoanChanges:
    """Applies LoansTable changes: records invalid items, keeps the ladder index, wakes the planner for loans due.

    Without `policy` and `state` (the backfill's) it wakes no planner shard.
    """

    def __init__(
        self,
        deliveries: DeliveriesRepository,
        ladder: LadderRepository,
        retention_days: int,
        closer: CaseCloser | None = None,
        *,
        policy: Policy | None = None,
        state: PlannerWakes | None = None,
    ) -> None:
        self.deliveries = deliveries
        self.ladder = ladder
        self.retention_days = retention_days
        self.closer = closer
        self.policy = policy
        self.state = state
        self._waking: set[int] = set()  # buckets of the loans found due now, until `wake_planners`

    def apply(self, change: LoanChange) -> IntakeResult:
        verdict = check(change)
        if verdict is None:
            return self.on_removed(change)
        self.on_ended(verdict, change)
        if isinstance(verdict, InvalidLoan):
            return self.on_invalid(change, verdict)
        return self.on_valid(verdict, change)

    def on_invalid(self, change: LoanChange, invalid: InvalidLoan) -> IntakeResult:
        metrics.add_metric(name="InvalidLoanItems", unit=MetricUnit.Count, value=1)
        logger.warning(
            "invalid loan item written upstream",
            extra={
                "loan_id": invalid.loan_id,
                "reason": invalid.reason,
                "detail": invalid.detail,  # attribute names and rules only, never the values
                "change": change.kind.value,
                "sequence_number": change.sequence_number,
            },
        )
        # The backfill records nothing: it finds items, not writes (the stream recorded them when they were written).
        if change.sequence_number != BACKFILL_SEQ:
            self.deliveries.put(intake_record(change, invalid, self.retention_days))
        unreachable = parse_unreachable(change.item, invalid) if change.item is not None else None
        if unreachable is not None and unreachable.status is LoanStatus.OPEN:
            # Its phone alone is at fault: it stays in the ladder (flagged) for escalation's `unreachable` case.
            return IntakeResult(IntakeOutcome.INVALID, invalid.reason, self._enter(unreachable, change))
        return IntakeResult(IntakeOutcome.INVALID, invalid.reason, self._leave(change))

    def on_valid(self, loan: Loan, change: LoanChange) -> IntakeResult:
        if loan.status is not LoanStatus.OPEN:
            return IntakeResult(IntakeOutcome.VALID, index=self._leave(change))
        return IntakeResult(IntakeOutcome.VALID, index=self._enter(loan, change))

    def _enter(self, loan: Loan, change: LoanChange) -> IndexOutcome:
        """An OPEN loan into the index (or moved in it); a value the index cannot take records it and leaves."""
        try:
            item = self._index(loan, change)
        except Exception as exc:
            if not is_loan_fault(exc):
                raise
            # A value DynamoDB refuses, a corrupt plan on the CONTROL item: recorded, out of the index.
            result = self.on_invalid(change, InvalidLoan(loan.loan_id, UNPROCESSABLE, type(exc).__name__))
            return result.index or IndexOutcome.LEFT
        self._note_due(loan, item, change)
        return IndexOutcome.STALE if item is None else IndexOutcome.ENTERED

    def _index(self, loan: Loan, change: LoanChange) -> dict[str, Any] | None:
        """Write the loan's index item; the item as written, None when a newer (or the same) change was applied."""
        values, removes = index_values(loan)
        new = change.kind is ChangeKind.INSERT or change.sequence_number == BACKFILL_SEQ
        item = self.ladder.enter(loan.loan_id, values, removes, self._seq(change), contact_values(loan), new=new)
        if item is None:
            return None
        chased = chased_due(item)
        if chased is not None and chased != item.get("ladder_due"):
            # Under a repayment plan: the next unpaid instalment, computed from the item just written.
            self.ladder.follow(item, chased)
        return item

    def _note_due(self, loan: Loan, item: Mapping[str, Any] | None, change: LoanChange) -> None:
        """Keep the loan's bucket for `wake_planners` when upstream inserts it with a stage due (`stage_due_at`).

        Only an insert that wrote the index item (a stale one was applied before: its first delivery decided);
        never the backfill (millions of loans), nor a loan no SMS can reach (the planner skips it).
        """
        if self.policy is None or self.state is None or item is None or change.kind is not ChangeKind.INSERT:
            return
        if change.sequence_number == BACKFILL_SEQ or isinstance(loan, UnreachableLoan):
            return
        try:
            due = stage_due_at(loan, item, change.changed_at, self.policy)
        except Exception as exc:
            if not is_loan_fault(exc):
                raise
            return  # a CONTROL item the planner cannot read either: it sets the loan aside, with its reason
        if due:
            self._waking.add(bucket_of(loan.borrower_id))

    def wake_planners(self) -> int:
        """Poke, once each, the planner shards of the loans found due since the last call; how many were poked.

        Called after a stream batch's records are applied. Best effort: a poke only saves the wait for the
        shard's next wake (6 hours at most), so one that fails is logged and counted, and the batch goes on.
        """
        buckets, self._waking = self._waking, set()
        if not buckets or self.state is None:
            return 0
        try:
            woken = self.state.wake_planners(buckets)
        except (ClientError, BotoCoreError) as exc:
            metrics.add_metric(name="PlannerPokeFailures", unit=MetricUnit.Count, value=1)
            logger.warning(
                "planner shards not woken: their next wake finds the loans", extra={"error": type(exc).__name__}
            )
            return 0
        logger.info("planner shards woken for loans due now", extra={"shards": woken, "buckets": len(buckets)})
        return woken

    def on_ended(self, verdict: Loan | InvalidLoan, change: LoanChange) -> None:
        """A loan upstream marks PAID, CLOSED or WRITTEN_OFF closes its collection cases (once)."""
        status = (change.item or {}).get("status")
        if self.closer is None or change.item is None or not isinstance(status, str) or status not in CLOSING_REASONS:
            return
        loan = verdict if isinstance(verdict, Loan) else parse_unreachable(change.item, verdict)
        if loan is not None:
            self.closer.close(loan, change.changed_at)

    def on_removed(self, change: LoanChange) -> IntakeResult:
        return IntakeResult(IntakeOutcome.IGNORED, index=self._leave(change))

    def _leave(self, change: LoanChange) -> IndexOutcome:
        if len(change.loan_id) > _MAX_ID_LENGTH or change.sequence_number == BACKFILL_SEQ:
            # Never a Loan (too long a key), or the backfill: an item only a stream write can have indexed.
            return IndexOutcome.LEFT
        return IndexOutcome.LEFT if self.ladder.leave(change.loan_id, self._seq(change)) else IndexOutcome.STALE

    @staticmethod
    def _seq(change: LoanChange) -> str:
        return change.sequence_number if change.sequence_number == BACKFILL_SEQ else sequence(change.sequence_number)
