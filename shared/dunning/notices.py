"""Service SMS (payment and opt-out confirmations, answers to replies): one SMS per event, however often it arrives.

The same mechanism as the reminders (`dunning.dal.transact.write_units`, docs/exactly-once.md), on a
`NOTICE#kind#id` claim in StateTable: one transaction takes the claim SENDING together with the
ConditionChecks that the number has not opted out, Publish follows, and one transaction writes the
delivery record with the claim SENT. A redelivery that finds SENDING cannot know whether the SMS
left: it records UNCERTAIN and never resends.
Service messages answer something the borrower did, so they are not held to the reminder send
window or caps; a payment confirmation still respects the opt-out list (the product's, which
holds SNS's own list too: `opt_out_sync`). Notices are paced to their share of the origination
identity's rate (`NoticeSharePercent` of `MaxPartsPerSecond`), per container.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from dunning.compose import ComposedSms
from dunning.dal.deliveries import DeliveriesRepository
from dunning.dal.sms import Pacer, PublishRejected, PublishUncertain, SmsGateway
from dunning.dal.state import StateRepository
from dunning.dal.transact import Refused, Unit, write_units
from dunning.models.delivery import DeliveryRecord, Outcome, expires_at, record_id
from dunning.models.state import ClaimState
from dunning.observability import MetricUnit, logger, mask_phone, metrics
from dunning.records import suppression_record


class NoticeRetry(Exception):
    """SNS refused for now (throttled, 5xx) and nothing was sent: let the invocation be retried."""


class NoticeResult(StrEnum):
    SENT = "sent"
    DUPLICATE = "duplicate"  # this event's notice was already handled
    OPTED_OUT = "opted_out"
    FAILED = "failed"
    UNCERTAIN = "uncertain"


@dataclass(frozen=True)
class LoanSubject:
    """What a delivery record needs about the loan a notice is about."""

    loan_id: str
    borrower_id: str
    cycle: str
    amount_due: Decimal
    currency: str


@dataclass(frozen=True)
class Notice:
    kind: str  # a service template kind: payment_confirmation, opt_out_confirmation
    owner: str  # claim partition: LOAN#id or PHONE#e164
    event_id: str  # what makes the notice unique: the payment, the inbound message
    phone: str
    sms: ComposedSms
    locale: str
    reference: str | None = None
    subject: LoanSubject | None = None  # recorded in DeliveriesTable when the notice is about a loan
    respect_opt_out: bool = True
    # The claim's kind when it is not `kind`: an answer to an inbound SMS is one per message whatever
    # its text (`reply`), so a redelivery that would now answer differently still sends nothing more.
    claim_kind: str | None = None

    @property
    def notice_id(self) -> str:
        return f"{self.claim_kind or self.kind}#{self.event_id}"


def _sending_at(claim: dict[str, Any], default: dt.datetime) -> dt.datetime:
    """When the attempt that left a SENDING claim took it (its `updated_at`)."""
    try:
        return dt.datetime.fromisoformat(str(claim["updated_at"]))
    except (KeyError, ValueError):
        return default


@dataclass
class Notices:
    state: StateRepository
    deliveries: DeliveriesRepository
    sms: SmsGateway
    retention_days: int
    pacer: Pacer | None = None  # None: unpaced (tests that publish one notice)

    def send(self, notice: Notice, now: dt.datetime) -> NoticeResult:
        # Step 1, as for reminders (docs/exactly-once.md): the claim SENDING and the opt-out check, all or nothing.
        not_taken = self._take(notice, now)
        if not_taken is not None:
            return not_taken
        # Step 2: Publish, paced, never retried by the SDK.
        if self.pacer is not None:
            self.pacer.wait(notice.sms.segments)
        try:
            message_id = self.sms.publish(notice.phone, notice.sms.body)
        except PublishUncertain as exc:
            logger.error("publish outcome unknown; recorded UNCERTAIN", extra={"kind": notice.kind, "error": str(exc)})
            self._settle(notice, now, ClaimState.SENDING, ClaimState.UNCERTAIN, Outcome.UNCERTAIN, f"publish_{exc}")
            metrics.add_metric(name="SmsUncertain", unit=MetricUnit.Count, value=1)
            return NoticeResult.UNCERTAIN
        except PublishRejected as exc:
            return self._rejected(notice, now, exc)
        # Step 3: record and claim SENT together.
        refused_sent = self._settle(notice, now, ClaimState.SENDING, ClaimState.SENT, Outcome.SENT, None, message_id)
        if refused_sent is not None:
            self._sent_after_all(notice, now, refused_sent.found.get(0), message_id)
        metrics.add_metric(name="ServiceSmsSent", unit=MetricUnit.Count, value=1)
        logger.info(
            "service sms sent",
            extra={"kind": notice.kind, "phone": mask_phone(notice.phone), "segments": notice.sms.segments},
        )
        return NoticeResult.SENT

    def _take(self, notice: Notice, now: dt.datetime) -> NoticeResult | None:
        """Take the claim SENDING (None), or what the notice comes to when it cannot be taken."""
        take = [self.state.notice_take(notice.owner, notice.notice_id, ClaimState.SENDING, now, kind=notice.kind)]
        if notice.respect_opt_out:
            take += self.state.not_opted_out(notice.phone)
        refused = write_units([Unit(notice.notice_id, take)])
        if not refused:
            return None
        if 0 in refused[0].found:
            return self._found(notice, now, refused[0].found[0])
        # Only the opt-out checks failed: the claim was not taken, so settle it unsent.
        if self._settle(notice, now, None, ClaimState.SUPPRESSED, Outcome.SUPPRESSED, "opted_out") is not None:
            return NoticeResult.DUPLICATE  # a concurrent delivery of the same event took it meanwhile
        metrics.add_metric(name="Suppressed_opted_out", unit=MetricUnit.Count, value=1)
        return NoticeResult.OPTED_OUT

    def _rejected(self, notice: Notice, now: dt.datetime, exc: PublishRejected) -> NoticeResult:
        """SNS refused the Publish: hand the claim back for a retry, or record the notice FAILED."""
        if exc.retryable:
            back = self.state.notice_transition(
                notice.owner, notice.notice_id, ClaimState.PLANNED, now, ClaimState.SENDING
            )
            write_units([Unit(notice.notice_id, [back])])
            raise NoticeRetry(f"publish throttled or failed: {exc.code}") from None
        if notice.subject is not None:
            self.state.note_failed_delivery(notice.subject.loan_id, now)  # escalation's hint, as for reminders
        self._settle(notice, now, ClaimState.SENDING, ClaimState.SUPPRESSED, Outcome.FAILED, f"rejected_{exc.code}")
        return NoticeResult.FAILED

    def _found(self, notice: Notice, now: dt.datetime, claim: dict[str, Any] | None) -> NoticeResult:
        """The notice was taken before: a redelivery, a replay, or a concurrent delivery of the same event."""
        if claim is None or claim.get("state") != ClaimState.SENDING.value:
            return NoticeResult.DUPLICATE
        # An attempt stopped between taking it and recording it: nobody can know whether its SMS left. Its
        # record gets that attempt's id (its SENDING time), so an attempt still alive overwrites it with SENT.
        logger.error("notice found mid-send on redelivery; recorded UNCERTAIN", extra={"kind": notice.kind})
        uncertain = (ClaimState.SENDING, ClaimState.UNCERTAIN, Outcome.UNCERTAIN, "unknown_after_retry")
        if self._settle(notice, now, *uncertain, record_at=_sending_at(claim, now)) is not None:
            return NoticeResult.DUPLICATE  # that attempt settled it meanwhile
        metrics.add_metric(name="SmsUncertain", unit=MetricUnit.Count, value=1)
        return NoticeResult.UNCERTAIN

    def _sent_after_all(self, notice: Notice, now: dt.datetime, claim: dict[str, Any] | None, message_id: str) -> None:
        """Step 3 found the claim moved: a redelivery took this attempt for a dead one and recorded UNCERTAIN.

        The SMS left and this attempt holds its message id: record and claim become SENT (as for reminders).
        """
        state = str((claim or {}).get("state", ""))
        if state == ClaimState.UNCERTAIN.value:
            sent = (ClaimState.UNCERTAIN, ClaimState.SENT, Outcome.SENT, None, message_id)
            if self._settle(notice, now, *sent) is None:
                metrics.add_metric(name="SmsUncertainResolved", unit=MetricUnit.Count, value=1)
                return
        logger.error("notice claim changed during its send", extra={"kind": notice.kind, "state": state or None})

    def _settle(
        self,
        notice: Notice,
        now: dt.datetime,
        from_state: ClaimState | None,
        to: ClaimState,
        outcome: Outcome,
        reason: str | None,
        message_id: str | None = None,
        record_at: dt.datetime | None = None,
    ) -> Refused | None:
        """Claim (from `from_state`; None: not taken yet) and record (of the attempt at `record_at`, default
        `now`) in one transaction; the refusal if its condition failed (nothing written)."""
        extra: dict[str, Any] = {"kind": notice.kind, "reason": reason, "message_id": message_id}
        record = self._record(notice, record_at or now, outcome, reason, message_id)
        if record is not None:
            extra["record_id"] = record.record_id
        extra = {name: value for name, value in extra.items() if value is not None}
        if from_state is None:
            claim = self.state.notice_take(notice.owner, notice.notice_id, to, now, **extra)
        else:
            claim = self.state.notice_transition(notice.owner, notice.notice_id, to, now, from_state, **extra)
        items = [claim] if record is None else [claim, self.deliveries.put_item_request(record)]
        refused = write_units([Unit(notice.notice_id, items)])
        return refused[0] if refused else None

    def _record(
        self, notice: Notice, now: dt.datetime, outcome: Outcome, reason: str | None, message_id: str | None
    ) -> DeliveryRecord | None:
        subject = notice.subject
        if subject is None:
            return None  # DeliveriesTable is keyed by loan: a notice about a number lives in StateTable only
        if outcome is Outcome.SUPPRESSED:
            return suppression_record(
                loan_id=subject.loan_id,
                borrower_id=subject.borrower_id,
                cycle=subject.cycle,
                stage=notice.kind,
                reason=reason or "suppressed",
                now=now,
                retention_days=self.retention_days,
                amount_due=subject.amount_due,
                currency=subject.currency,
            )
        sms = notice.sms
        return DeliveryRecord(
            loan_id=subject.loan_id,
            record_id=record_id(now, subject.cycle, notice.kind),
            borrower_id=subject.borrower_id,
            cycle=subject.cycle,
            stage=notice.kind,
            outcome=outcome,
            reason=reason,
            message_id=message_id,
            phone=notice.phone,
            locale=notice.locale,
            body=sms.body,
            encoding=sms.encoding,
            segments=sms.segments,
            amount_due=subject.amount_due,
            currency=subject.currency,
            reference=notice.reference,
            created_at=now,
            updated_at=now,
            expires_at=expires_at(now, self.retention_days),
        )
