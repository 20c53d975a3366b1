"""Building delivery records: the evidence of every decision, and of every loan a run set aside."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from botocore.exceptions import ClientError

from dunning.dal.ports import RecordSink
from dunning.models.delivery import DeliveryRecord, Outcome, expires_at, record_id
from dunning.models.loan import InvalidLoan
from dunning.observability import MetricUnit, logger, metrics

# The reason recorded for a loan whose handling raised (arithmetic on an absurd amount, a corrupt
# state item): stable, so operators can query it; the exception's type goes to the log only.
UNPROCESSABLE = "unprocessable"
# One metric name per kind, whichever run set the loan aside (planner, escalation, bureau).
INVALID_METRIC = "InvalidLoanItems"
UNPROCESSABLE_METRIC = "UnprocessableLoanItems"
# What a loan's own data can make our code raise. Everything else (throttling, an outage, a
# missing permission) is the infrastructure's: it fails the run, which is safe to repeat.
LOAN_FAULTS: tuple[type[Exception], ...] = (ArithmeticError, ValueError, TypeError, LookupError, AttributeError)


def suppression_record(
    *,
    loan_id: str,
    borrower_id: str | None,
    cycle: str,
    stage: str,
    reason: str,
    now: dt.datetime,
    retention_days: int,
    record_at: dt.datetime | None = None,
    amount_due: Decimal | None = None,
    currency: str | None = None,
) -> DeliveryRecord:
    """SUPPRESSED with its reason; `record_at` fixes the id so a repeated decision overwrites it."""
    at = record_at or now
    return DeliveryRecord(
        loan_id=loan_id,
        record_id=record_id(at, cycle, stage, reason),
        borrower_id=borrower_id,
        cycle=cycle,
        stage=stage,
        outcome=Outcome.SUPPRESSED,
        reason=reason,
        amount_due=amount_due,
        currency=currency,
        created_at=at,
        updated_at=now,
        expires_at=expires_at(at, retention_days),
    )


def is_loan_fault(exc: Exception) -> bool:
    """Whether a loan's own data can have caused `exc` (then only that loan is set aside)."""
    if isinstance(exc, ClientError):
        # DynamoDB refusing an item built from the loan (a number out of its range, an oversized value).
        return str(exc.response.get("Error", {}).get("Code")) == "ValidationException"
    return isinstance(exc, LOAN_FAULTS)


def _text(item: Mapping[str, object], name: str, limit: int) -> str | None:
    """An item's string attribute as far as a record may carry it; None for any other type."""
    value = item.get(name)
    return value[:limit] if isinstance(value, str) and value else None


@dataclass
class SetAside:
    """How a run handles a loan it cannot use: a SUPPRESSED record, a log line, a metric; then it goes on.

    One record per loan, stage and business day (its id is fixed to the day's midnight), however
    often the run repeats. The record carries ids and the cycle only: never an amount, a phone or
    a name from the item, and the log line never the value or the exception's message.
    """

    deliveries: RecordSink
    stage: str  # `planning`, `escalation`, `bureau`: which run set the loan aside
    retention_days: int

    def invalid(self, exc: InvalidLoan, item: Mapping[str, object], now: dt.datetime, today: dt.date) -> str:
        """An item that breaks the LoansTable contract; returns the reason recorded."""
        metrics.add_metric(name=INVALID_METRIC, unit=MetricUnit.Count, value=1)
        logger.warning(
            "loan item set aside: invalid", extra={"loan_id": exc.loan_id, "reason": exc.reason, "stage": self.stage}
        )
        loan_id = _text(item, "loan_id", 2048)  # the table's own key, unshortened
        if loan_id is not None:
            self._record(loan_id, _text(item, "borrower_id", 128), _text(item, "due_date", 10), exc.reason, now, today)
        # Without a loan id there is nothing to key a record on: the log line and the metric are the evidence.
        return exc.reason

    def unprocessable(
        self,
        exc: Exception,
        *,
        loan_id: str,
        borrower_id: str | None,
        cycle: str | None,
        now: dt.datetime,
        today: dt.date,
    ) -> str:
        """A loan whose handling raised `exc` (a loan fault); returns the reason recorded."""
        metrics.add_metric(name=UNPROCESSABLE_METRIC, unit=MetricUnit.Count, value=1)
        logger.error(
            "loan set aside: unprocessable",
            extra={"loan_id": loan_id[:128], "reason": UNPROCESSABLE, "stage": self.stage, "error": type(exc).__name__},
        )
        self._record(loan_id, borrower_id, cycle, UNPROCESSABLE, now, today)
        return UNPROCESSABLE

    def unprocessable_item(self, exc: Exception, item: Mapping[str, object], now: dt.datetime, today: dt.date) -> str:
        """An item whose mere reading raised `exc` (a loan fault) instead of naming what is wrong with it."""
        loan_id = _text(item, "loan_id", 2048)
        if loan_id is None:
            metrics.add_metric(name=UNPROCESSABLE_METRIC, unit=MetricUnit.Count, value=1)
            logger.error(
                "loan item set aside: unprocessable, without a loan id",
                extra={"reason": UNPROCESSABLE, "stage": self.stage, "error": type(exc).__name__},
            )
            return UNPROCESSABLE
        borrower_id, cycle = _text(item, "borrower_id", 128), _text(item, "due_date", 10)
        return self.unprocessable(exc, loan_id=loan_id, borrower_id=borrower_id, cycle=cycle, now=now, today=today)

    def _record(
        self, loan_id: str, borrower_id: str | None, cycle: str | None, reason: str, now: dt.datetime, today: dt.date
    ) -> None:
        midnight = dt.datetime.combine(today, dt.time(0), tzinfo=dt.UTC)
        self.deliveries.put(
            suppression_record(
                loan_id=loan_id,
                borrower_id=borrower_id,
                cycle=cycle or "unknown",
                stage=self.stage,
                reason=reason,
                now=now,
                retention_days=self.retention_days,
                record_at=midnight,
            )
        )
