"""The DeliveriesTable record (docs/contract.md#deliveriestable-record)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict

from dunning.models.timestamps import utc_iso


class Outcome(StrEnum):
    SENT = "SENT"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"
    SUPPRESSED = "SUPPRESSED"
    UNCERTAIN = "UNCERTAIN"


FINAL_OUTCOMES = frozenset({Outcome.DELIVERED, Outcome.FAILED})


class DeliveryRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    loan_id: str
    record_id: str
    borrower_id: str | None = None
    cycle: str
    stage: str
    outcome: Outcome
    reason: str | None = None
    message_id: str | None = None
    phone: str | None = None
    locale: str | None = None
    body: str | None = None
    encoding: str | None = None
    segments: int | None = None
    amount_due: Decimal | None = None
    late_fees: Decimal | None = None
    currency: str | None = None
    reference: str | None = None
    created_at: AwareDatetime
    updated_at: AwareDatetime
    expires_at: int
    price_usd: Decimal | None = None
    provider_response: str | None = None
    policy_version: str | None = None  # Policy.digest of the policy that decided it (the audit trail)

    def to_item(self) -> dict[str, Any]:
        values = self.model_dump()
        values["outcome"] = self.outcome.value
        values["created_at"] = utc_iso(self.created_at)
        values["updated_at"] = utc_iso(self.updated_at)
        return values


class StoredRecord(BaseModel):
    """A DeliveriesTable record as read back: the fields of DeliveryRecord, each absent where the read
    projected it away (an index, `history`) or an erasure removed it (`phone`, `body`; `erased_at` set).
    Attributes this model does not name are ignored, so an older or newer record still reads."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    loan_id: str
    record_id: str
    borrower_id: str | None = None
    cycle: str | None = None
    stage: str | None = None
    outcome: Outcome | None = None
    reason: str | None = None
    message_id: str | None = None
    phone: str | None = None
    locale: str | None = None
    body: str | None = None
    encoding: str | None = None
    segments: int | None = None
    amount_due: Decimal | None = None
    late_fees: Decimal | None = None
    currency: str | None = None
    reference: str | None = None
    created_at: AwareDatetime | None = None
    updated_at: AwareDatetime | None = None
    expires_at: int | None = None
    price_usd: Decimal | None = None
    provider_response: str | None = None
    policy_version: str | None = None
    erased_at: AwareDatetime | None = None


def record_id(created_at: dt.datetime, cycle: str, stage: str, suffix: str = "") -> str:
    """Begins with the ISO-8601 UTC time so a loan's records sort by time."""
    rid = f"{utc_iso(created_at)}#{cycle}#{stage}"
    return f"{rid}#{suffix}" if suffix else rid


def expires_at(created_at: dt.datetime, retention_days: int) -> int:
    return int((created_at + dt.timedelta(days=retention_days)).timestamp())
