"""Building delivery records: the evidence of every decision."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from dunning.models.delivery import DeliveryRecord, Outcome, expires_at, record_id


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
