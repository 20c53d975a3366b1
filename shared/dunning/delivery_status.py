"""Delivery status: SNS SMS delivery-status logs applied to delivery records (docs/contract.md#deliveriestable-record).

SNS writes one JSON record per SMS to `sns/<region>/<account>/DirectPublishToPhoneNumber`
(SUCCESS) or `.../Failure` (FAILURE). Each record is matched to our delivery records by the SNS
message id (one SMS may cover several loans: one record each), through the `MSG#message_id`
pointer the sender wrote with them, and moves them from SENT to DELIVERED or FAILED (conditional
updates sharing TransactWriteItems calls). Nothing is read: the outcome is first noted on the
pointer by one conditional UpdateItem per message, whose answer names the records (`message_outcome`).

Order rule: the first final outcome wins. A record leaves SENT once; a replayed log of the same
outcome is a no-op, and a late log with the other outcome (the pointer already holds the first
one) is counted as a conflict and left alone (SNS emits one final status per message, so a conflict
means a replay or a provider correction that an operator should look at, not something to apply blindly).
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dunning.dal.deliveries import DeliveriesRepository
from dunning.dal.state import StateRepository
from dunning.dal.transact import Refused, Unit, item_key, write_units
from dunning.handlers import describe
from dunning.models.delivery import FINAL_OUTCOMES, Outcome
from dunning.observability import MetricUnit, logger, metrics

if TYPE_CHECKING:
    from dunning.dal.aws import Write

# Only a record still waiting for its carrier outcome may take one.
AWAITING_OUTCOME = frozenset({Outcome.SENT})
FAILED_DELIVERY_REASON = "delivery_failed"


# ---------------------------------------------------------------- the SNS delivery-status log record
class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class SmsNotification(_Wire):
    message_id: Annotated[str, Field(alias="messageId", min_length=1, max_length=128)]
    timestamp: Annotated[dt.datetime, Field(description="publish time, UTC, written '2016-06-28 00:40:34.558'")]

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: dt.datetime) -> dt.datetime:
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


class SmsDelivery(_Wire):
    destination: str | None = None
    provider_response: Annotated[str, Field(alias="providerResponse", max_length=1000)] = ""
    price_in_usd: Annotated[Decimal | None, Field(alias="priceInUSD", ge=0)] = None
    sms_type: Annotated[str | None, Field(alias="smsType")] = None


class SmsDeliveryLog(_Wire):
    """One record of an SNS SMS delivery-status log group."""

    notification: SmsNotification
    delivery: SmsDelivery
    status: Literal["SUCCESS", "FAILURE"]

    @property
    def outcome(self) -> Outcome:
        return Outcome.DELIVERED if self.status == "SUCCESS" else Outcome.FAILED


# ---------------------------------------------------------------- the rule
class Transition(StrEnum):
    APPLIED = "applied"
    REPLAY = "replay"  # the record already has this outcome
    CONFLICT = "conflict"  # the record already has the other final outcome: first one wins
    NOT_SENT = "not_sent"  # SUPPRESSED / UNCERTAIN records never take a carrier outcome


def transition(current: Outcome, incoming: Outcome) -> Transition:
    """What a delivery log with `incoming` does to a record whose outcome is `current`. Pure."""
    if current in AWAITING_OUTCOME:
        return Transition.APPLIED
    if current == incoming:
        return Transition.REPLAY
    if current in FINAL_OUTCOMES:
        return Transition.CONFLICT
    return Transition.NOT_SENT


# ---------------------------------------------------------------- applying a batch of log messages
@dataclass
class DeliveryStatusReport:
    logs: int = 0
    malformed: int = 0
    unknown_message: int = 0
    records: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        return {
            "logs": self.logs,
            "malformed": self.malformed,
            "unknown_message": self.unknown_message,
            "records": dict(self.records),
        }


@dataclass(frozen=True)
class MalformedLog:
    position: int  # in the batch given to `parse_logs`
    reason: str  # field paths and messages only: the raw record holds the destination number


def parse_logs(messages: Iterable[str]) -> tuple[list[SmsDeliveryLog], list[MalformedLog]]:
    """The batch's log records, and those that are not one (each logged and counted)."""
    logs: list[SmsDeliveryLog] = []
    malformed: list[MalformedLog] = []
    for position, message in enumerate(messages):
        try:
            logs.append(SmsDeliveryLog.model_validate_json(message))
        except ValidationError as exc:
            malformed.append(MalformedLog(position, describe(exc)))
            metrics.add_metric(name="MalformedDeliveryLogs", unit=MetricUnit.Count, value=1)
            logger.error("malformed delivery-status log skipped", extra={"validation_error": malformed[-1].reason})
    return logs, malformed


@dataclass
class DeliveryStatusRecorder:
    deliveries: DeliveriesRepository
    state: StateRepository
    # Backoff between retries of a transaction conflict; looked up at construction so tests can observe it.
    sleep: Callable[[float], None] = field(default_factory=lambda: time.sleep)

    def apply(self, messages: Iterable[str], now: dt.datetime) -> DeliveryStatusReport:
        """Apply each log message; a malformed one is logged and counted, the rest go on."""
        logs, malformed = parse_logs(messages)
        return self.apply_logs(logs, now, malformed=len(malformed))

    def apply_logs(self, logs: Iterable[SmsDeliveryLog], now: dt.datetime, malformed: int = 0) -> DeliveryStatusReport:
        """Apply parsed logs: their records found per batch, their outcomes written per transaction.

        `malformed` counts the batch's records that were not a log (already logged and counted). Each
        record's outcome is one conditional update (with the loan's failure hint for a FAILED one)
        sharing TransactWriteItems calls with the others; a record whose condition fails (already
        final, or not a sent record) is left as it is.
        """
        logs = list(logs)
        report = DeliveryStatusReport(malformed=malformed)
        report.logs = len(logs) + malformed
        pending: list[Unit] = []
        for log in logs:
            message_id = log.notification.message_id
            keys, kept = self.state.message_outcome(message_id, log.outcome.value, now)
            if keys is None:
                # Sent before the MSG# pointers existed: its records through the MessageIdIndex.
                keys = self.deliveries.records_for_message(message_id)
            if not keys:
                # Another sender in the account, or a record that TTL removed: nothing of ours to update.
                report.unknown_message += 1
                metrics.add_metric(name="DeliveryLogsUnknownMessage", unit=MetricUnit.Count, value=1)
                logger.warning("delivery log for an unknown message id skipped", extra={"message_id": message_id})
                continue
            if kept is not None:
                # The message already has the other final outcome: first one wins, its records are not touched.
                for loan_id, _ in keys:
                    self._conflict(log, loan_id, Outcome(kept), report)
                continue
            pending += [
                Unit((log, loan_id, record_id), self._items(log, loan_id, record_id, now))
                for loan_id, record_id in keys
            ]
            metrics.add_metric(name=f"Sms{log.outcome.value.title()}", unit=MetricUnit.Count, value=1)
        while pending:
            # One transaction names an item once: a record (or a loan's CONTROL) met again waits for the next call.
            taken: list[Unit] = []
            later: list[Unit] = []
            used: set[tuple[str, str]] = set()
            for unit in pending:
                unit_keys = {item_key(entry) for entry in unit.items}
                (later if unit_keys & used else taken).append(unit)
                used |= unit_keys
            refused = {id(r.unit): r for r in write_units(taken, self.sleep)}
            for unit in taken:
                self._count(unit, refused.get(id(unit)), report)
            pending = later
        return report

    def _items(self, log: SmsDeliveryLog, loan_id: str, record_id: str, now: dt.datetime) -> list[Write]:
        outcome = log.outcome
        items = [
            self.deliveries.outcome_update(
                loan_id,
                record_id,
                outcome=outcome,
                awaiting=AWAITING_OUTCOME,
                provider_response=log.delivery.provider_response,
                price_usd=log.delivery.price_in_usd,
                reason=FAILED_DELIVERY_REASON if outcome is Outcome.FAILED else None,
                now=now,
            )
        ]
        if outcome is Outcome.FAILED:
            # With the record, so a FAILED record always leaves the hint escalation relies on.
            items.append(self.state.failed_delivery_update(loan_id, now))
        return items

    @staticmethod
    def _count(unit: Unit, refused: Refused | None, report: DeliveryStatusReport) -> None:
        log, loan_id, _ = unit.owner
        if refused is None:
            report.records[Transition.APPLIED.value] += 1
            return
        found = refused.found.get(0)
        # A record gone since the pointer was read (TTL) has nothing to apply to: like a non-sent one.
        current = Outcome(str(found["outcome"])) if found and "outcome" in found else Outcome.SUPPRESSED
        result = transition(current, log.outcome)
        if result is Transition.CONFLICT:
            DeliveryStatusRecorder._conflict(log, loan_id, current, report)
        else:
            report.records[result.value] += 1

    @staticmethod
    def _conflict(log: SmsDeliveryLog, loan_id: str, kept: Outcome, report: DeliveryStatusReport) -> None:
        report.records[Transition.CONFLICT.value] += 1
        metrics.add_metric(name="DeliveryOutcomeConflicts", unit=MetricUnit.Count, value=1)
        logger.warning(
            "delivery log contradicts the recorded final outcome; first outcome kept",
            extra={
                "message_id": log.notification.message_id,
                "loan_id": loan_id,
                "kept": str(kept),
                "ignored": log.outcome,
            },
        )
