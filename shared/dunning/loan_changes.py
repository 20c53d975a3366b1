"""Change capture on LoansTable (LoanChangesFunction): every item upstream writes is checked as it is written.

The planner reads loans through the `OpenLoansByDueDate` index, so an item whose key fields escape
it (a due date written `2026/11/16`, status `open` or none) would never be read: no record, no
metric. The table's DynamoDB stream hands every INSERT and MODIFY to this module instead, whatever
its keys: an item that breaks the contract (DESIGN 4.2) gets a `SUPPRESSED` record at stage
`intake` with its reason, the metric `InvalidLoanItems` and a log line (loan id and reason only).

Valid items need nothing yet; `LoanChanges.on_valid` is where a product-owned index of open loans
(DESIGN 7: keyed by shard, kept from this stream) will be maintained, and `on_removed` where its
entries will be dropped. REMOVE events are ignored for now: a deleted item has nothing left to
validate or remind, and the loan's records stay as the audit trail.

An item upstream marks PAID, CLOSED or WRITTEN_OFF closes the loan's open collection cases
(`on_ended`, `case_closing.CaseCloser`: CollectionCaseClosed once, whatever the redeliveries), also
when its only fault is the phone (a loan the SMS could not reach has a case too).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from dunning.case_closing import CLOSING_REASONS, CaseCloser
from dunning.dal.deliveries import DeliveriesRepository
from dunning.models.delivery import DeliveryRecord
from dunning.models.loan import InvalidLoan, Loan, parse_loan, parse_unreachable
from dunning.observability import MetricUnit, logger, metrics
from dunning.records import suppression_record

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
    sequence_number: Annotated[str, Field(min_length=1)]
    item: Annotated[
        dict[str, Any] | None,
        Field(description="NewImage, deserialised; None for REMOVE or a stream without new images"),
    ] = None


class IntakeOutcome(StrEnum):
    VALID = "valid"
    INVALID = "invalid"
    IGNORED = "ignored"


@dataclass(frozen=True)
class IntakeResult:
    outcome: IntakeOutcome
    reason: str | None = None


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
    """Applies LoansTable changes: records invalid items; valid ones are where a stream-kept index will go."""

    def __init__(self, deliveries: DeliveriesRepository, retention_days: int, closer: CaseCloser | None = None) -> None:
        self.deliveries = deliveries
        self.retention_days = retention_days
        self.closer = closer

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
        self.deliveries.put(intake_record(change, invalid, self.retention_days))
        return IntakeResult(IntakeOutcome.INVALID, invalid.reason)

    def on_valid(self, loan: Loan, change: LoanChange) -> IntakeResult:
        # Nothing to do yet: the planner reads valid loans through the index.
        return IntakeResult(IntakeOutcome.VALID)

    def on_ended(self, verdict: Loan | InvalidLoan, change: LoanChange) -> None:
        """A loan upstream marks PAID, CLOSED or WRITTEN_OFF closes its collection cases (once)."""
        status = (change.item or {}).get("status")
        if self.closer is None or change.item is None or not isinstance(status, str) or status not in CLOSING_REASONS:
            return
        loan = verdict if isinstance(verdict, Loan) else parse_unreachable(change.item, verdict)
        if loan is not None:
            self.closer.close(loan, change.changed_at)

    def on_removed(self, change: LoanChange) -> IntakeResult:
        return IntakeResult(IntakeOutcome.IGNORED)
