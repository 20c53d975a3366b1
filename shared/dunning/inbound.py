"""Inbound SMS (docs/contract.md#inbound-sms): what a reply to our SMS asks for, and the one answer it gets.

`replies.classify_reply` reads the reply; `InboundReplies.handle` acts on it:
- an opt-out keyword opts the number out, with one confirmation SMS;
- HELP gets one answer: brand, official hotline, how to opt out (no opt-out);
- a reference code gets one answer. The debt (amount due now, pay-by date) is confirmed only
  when that code was sent to this same number (its delivery records, ReferenceIndex, matched on
  code AND number: codes are short hashes that several records may share). Any other number, or
  a code no record holds, gets the official hotline and nothing about any debt;
- anything else is counted and published as `BorrowerReplied` on LoanEventsBus for the lender's
  CRM: masked number, the loans it answers if known, time and length; never the text or number.

Answers are service SMS through `notices` (one per inbound message id, whatever happens), kept as
notice claims under the number's hash, not as delivery records: an answer is no reminder, and
escalation must not count it as one sent (or failed) for the loan. HELP
and verify answers go also to a number on the product's opt-out list: the borrower asked for
them, and an answer to a consumer's own message is what carriers require for HELP (CTIA Short
Code Monitoring Handbook: HELP must be answered whatever the subscriber's opt-in state) and what
Regulation F allows after a medium was refused (12 CFR 1006.14(h)(2)(ii): one response to a
consumer-initiated message). A number on SNS's own opt-out list is still refused by SNS (the
answer is recorded FAILED). At most `replies.per_number_per_day` answers of each kind (help,
verify) per number per business day: a counter under the number's hash, one conditional update;
above it the reply is counted (`InboundAnswersOverCap`) and not answered.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from dunning import compliance, decisions, ladder
from dunning.chased import effective_loan
from dunning.compliance import region_of
from dunning.compose import ComposedSms, render_reply, render_service
from dunning.dal.bus import EventBus
from dunning.dal.deliveries import DeliveriesRepository
from dunning.dal.inbound import InboundState
from dunning.dal.loans import LoansRepository
from dunning.dal.state import StateRepository
from dunning.models.delivery import Outcome, StoredRecord
from dunning.models.inbound import InboundSms
from dunning.models.loan import SUPPORTED_LOCALES, InvalidLoan, Loan, LoanStatus, Locale, parse_loan
from dunning.models.policy import Policy
from dunning.models.state import LoanControl
from dunning.notices import Notice, NoticeResult, Notices
from dunning.observability import MetricUnit, logger, mask_phone, metrics
from dunning.replies import Help, OptOut, Verify, classify_reply, reply_words

OPT_OUT_CONFIRMATION = "opt_out_confirmation"
BORROWER_REPLIED = "BorrowerReplied"
ANSWER_CLAIM = "reply"  # one answer per inbound message, whichever kind it turns out to be


# ---------------------------------------------------------------- pure decisions


def reply_locale(body: str, phone: str, policy: Policy) -> Locale:
    """Answer in the language of the reply: Chinese text or a Chinese number get zh-CN."""
    if any("\u4e00" <= ch <= "\u9fff" for ch in body):
        return "zh-CN"
    if region_of(phone) == "CN":
        return "zh-CN"
    # Read as the opt-out matcher reads it: `\u200bSTOP` or full-width ＳＴＯＰ is English too.
    return "en-US" if "".join(reply_words(body)).isascii() else policy.default_locale


@dataclass(frozen=True)
class DueNow:
    """What a borrower owes now on the loans of one SMS, as the sender would state it today."""

    total: Decimal  # amount due plus late fees; 0 when nothing is due
    currency: str
    pay_by: dt.date | None  # None when nothing is due
    open_loans: tuple[str, ...]


def due_now(loans: Sequence[tuple[Loan, LoanControl | None]], now: dt.datetime, policy: Policy) -> DueNow | None:
    """The open balance of `loans` (under a plan, the next instalment), in the lead loan's currency.

    The sender's arithmetic: amount due + late fees (the ledger's, else the policy's rule) on the
    business date, pay-by from the earliest due date and the borrower's local date. None for no loans.
    """
    if not loans:
        return None
    seen = [effective_loan(loan, control) for loan, control in loans]
    chased = [loan for loan in seen if loan.status is LoanStatus.OPEN and loan.amount_due > 0]
    if not chased:
        return DueNow(Decimal(0), seen[0].currency, None, ())
    # One SMS covers loans of one currency; a mix (never composed by the sender) states the lead's.
    chased = [loan for loan in chased if loan.currency == chased[0].currency]
    today = ladder.business_date(now, policy)
    total = sum((loan.amount_due + ladder.late_fees(loan, today, policy) for loan in chased), Decimal(0))
    local_today = compliance.local_time(now, decisions.borrower_timezone(chased[0], policy)).date()
    pay_by = ladder.pay_by(local_today, min(loan.due_date for loan in chased), policy)
    return DueNow(total, chased[0].currency, pay_by, tuple(loan.loan_id for loan in chased))


def sent_records(records: Sequence[StoredRecord]) -> list[StoredRecord]:
    """The records of an SMS that was composed for the number (a SUPPRESSED record sent nothing)."""
    return [r for r in records if r.outcome is not Outcome.SUPPRESSED]


# ---------------------------------------------------------------- effects


@dataclass(frozen=True)
class _Answer:
    kind: str  # a reply template kind
    sms: ComposedSms
    locale: Locale


@dataclass
class InboundReplies:
    loans: LoansRepository
    state: StateRepository
    deliveries: DeliveriesRepository
    notices: Notices
    bus: EventBus
    policy: Policy

    @property
    def _inbound(self) -> InboundState:
        return InboundState(self.state)

    def handle(self, message: InboundSms, now: dt.datetime, received_at: dt.datetime | None = None) -> str:
        """Act on one reply; the result names what was done (for the handler's log and reply)."""
        rules = self.policy.replies
        reply = classify_reply(
            message.messageBody, self.policy.opt_out_keywords, rules.help_keywords, rules.verify_keywords
        )
        if isinstance(reply, OptOut):
            return self._opt_out(message, reply.keyword, now)
        if isinstance(reply, Help):
            locale = reply_locale(message.messageBody, message.originationNumber, self.policy)
            return self._answer(message, "help", self._plain("help_reply", locale), now)
        if isinstance(reply, Verify):
            answer = self._verification(message, reply, now)
            if answer is not None:
                return self._answer(message, "verify", answer, now)
        return self._borrower_replied(message, now, received_at or now)

    # ---------------------------------------------------------------- opt-out
    def _opt_out(self, message: InboundSms, keyword: str, now: dt.datetime) -> str:
        """Opt the number out and confirm it once (the confirmation is not held back by the opt-out it confirms)."""
        phone = message.originationNumber
        opted_out_by = self.state.opt_out(phone, "inbound_sms", message.inboundMessageId, now)
        metrics.add_metric(name="OptOuts", unit=MetricUnit.Count, value=1)
        if opted_out_by != message.inboundMessageId:
            # Already opted out by something else: the confirmation was that one's to send.
            logger.info("number already opted out", extra={"phone": mask_phone(phone)})
            return "already_opted_out"
        locale = reply_locale(message.messageBody, phone, self.policy)
        sms = render_service(
            self.policy, kind=OPT_OUT_CONFIRMATION, locale=locale, name="", currency="CNY", reference=""
        )
        notice = Notice(
            kind=OPT_OUT_CONFIRMATION,
            owner=f"PHONE#{phone}",
            event_id=message.inboundMessageId,
            phone=phone,
            sms=sms,
            locale=locale,
            respect_opt_out=False,
        )
        result = self.notices.send(notice, now)
        logger.info(
            "number opted out by reply",
            extra={"phone": mask_phone(phone), "keyword": keyword, "confirmation": result.value},
        )
        return "opted_out" if result in (NoticeResult.SENT, NoticeResult.DUPLICATE) else f"opted_out_{result.value}"

    # ---------------------------------------------------------------- verification
    def _verification(self, message: InboundSms, verify: Verify, now: dt.datetime) -> _Answer | None:
        """The answer to a code; None for a bare code-shaped word no record holds (`THANKS`): not a code."""
        phone = message.originationNumber
        fallback = reply_locale(message.messageBody, phone, self.policy)
        if verify.code is None:
            logger.info("verify request without a reference code", extra={"phone": mask_phone(phone)})
            return self._plain("verify_malformed", fallback)
        records = sent_records(self.deliveries.records_with_reference(verify.code, phone))
        if not records:
            if not verify.prefixed and not self.deliveries.reference_exists(verify.code):
                return None
            # Not this number's code (or no one's): the hotline, nothing about any debt.
            metrics.add_metric(name="VerifyUnmatched", unit=MetricUnit.Count, value=1)
            logger.info("reference code not sent to this number", extra={"phone": mask_phone(phone)})
            return self._plain("verify_unmatched", fallback)
        loans = self._live_loans([r.loan_id for r in records])
        due = due_now(loans, now, self.policy)
        lead = records[-1]  # the latest SMS with the code
        locale: Locale = next((known for known in SUPPORTED_LOCALES if known == lead.locale), fallback)
        logger.info(
            "reference code verified for its number",
            extra={"phone": mask_phone(phone), "loan_ids": sorted({r.loan_id for r in records})},
        )
        if due is None:
            # The loans could not be read (gone upstream, or an item we cannot parse): no amount to state.
            metrics.add_metric(name="VerifyUnmatched", unit=MetricUnit.Count, value=1)
            return self._plain("verify_unmatched", fallback)
        metrics.add_metric(name="VerifyConfirmed", unit=MetricUnit.Count, value=1)
        if due.pay_by is None:
            sms = render_reply(self.policy, kind="verify_settled", locale=locale, reference=verify.code)
            return _Answer("verify_settled", sms, locale)
        sms = render_reply(
            self.policy,
            kind="verify_confirmed",
            locale=locale,
            reference=verify.code,
            currency=due.currency,
            total=due.total,
            pay_by=due.pay_by,
        )
        return _Answer("verify_confirmed", sms, locale)

    def _plain(self, kind: str, locale: Locale) -> _Answer:
        """An answer that states nothing about any loan (HELP, an unmatched or malformed code)."""
        return _Answer(kind, render_reply(self.policy, kind=kind, locale=locale), locale)

    def _live_loans(self, loan_ids: list[str]) -> list[tuple[Loan, LoanControl | None]]:
        """The loans as they are now, each with its control (plan, pauses); unreadable ones left out."""
        found: list[tuple[Loan, LoanControl | None]] = []
        items = self.loans.get_many(loan_ids)
        for loan_id in dict.fromkeys(loan_ids):
            item = items.get(loan_id)
            if item is None:
                logger.warning("loan of a verified code not found", extra={"loan_id": loan_id})
                continue
            try:
                loan = parse_loan(item)
            except InvalidLoan as exc:
                logger.warning("loan of a verified code is invalid", extra={"loan_id": loan_id, "reason": exc.reason})
                continue
            found.append((loan, self.state.get_control(loan_id)))
        return found

    # ---------------------------------------------------------------- answers (HELP, verify)
    def _answer(self, message: InboundSms, kind: str, answer: _Answer, now: dt.datetime) -> str:
        phone = message.originationNumber
        day = ladder.business_date(now, self.policy)
        cap = self.policy.replies.per_number_per_day
        if not self._inbound.take_answer_slot(phone, kind, day, message.inboundMessageId, cap):
            metrics.add_metric(name="InboundAnswersOverCap", unit=MetricUnit.Count, value=1)
            logger.info(
                "daily answers to this number used up: not answered", extra={"phone": mask_phone(phone), "kind": kind}
            )
            return f"{answer.kind}_over_cap"
        notice = Notice(
            kind=answer.kind,
            owner=f"PHONE#{phone}",
            event_id=message.inboundMessageId,
            phone=phone,
            sms=answer.sms,
            locale=answer.locale,
            respect_opt_out=False,  # asked for by the borrower (see the module docstring)
            claim_kind=ANSWER_CLAIM,
        )
        result = self.notices.send(notice, now)
        logger.info("reply answered", extra={"phone": mask_phone(phone), "answer": answer.kind, "result": result.value})
        return answer.kind if result in (NoticeResult.SENT, NoticeResult.DUPLICATE) else f"{answer.kind}_{result.value}"

    # ---------------------------------------------------------------- anything else
    def _borrower_replied(self, message: InboundSms, now: dt.datetime, received_at: dt.datetime) -> str:
        """Count the reply and hand it to the lender's CRM as BorrowerReplied, once per inbound message.

        The claim is marked PUBLISHED after the put: a crash between the two republishes on SNS's retry
        (at least once), so the detail carries `reply_id` for the CRM to deduplicate on.
        """
        phone = message.originationNumber
        metrics.add_metric(name="BorrowerReplies", unit=MetricUnit.Count, value=1)
        if not self._inbound.claim_reply_event(phone, message.inboundMessageId, now):
            return "borrower_replied"  # a redelivery: already published
        loan_ids: list[str] = []
        if message.previousPublishedMessageId:
            # The SMS this number last got from us: the loans its records are about.
            records = self.deliveries.records_for_message(message.previousPublishedMessageId)
            loan_ids = sorted({loan_id for loan_id, _ in records})
        detail = {
            "masked_phone": mask_phone(phone),
            "loan_ids": loan_ids,
            "received_at": received_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
            "reply_length": len(message.messageBody),
            "reply_id": message.inboundMessageId,
        }
        event_id = self.bus.put(BORROWER_REPLIED, detail, received_at)
        self._inbound.reply_event_published(phone, message.inboundMessageId, event_id, now)
        logger.info(
            "reply published for the lender's CRM",
            extra={"phone": mask_phone(phone), "loan_ids": loan_ids, "characters": len(message.messageBody)},
        )
        return "borrower_replied"
