"""`dunning verify CODE`: what a reference code refers to, for hotline agents (operator tooling, no Lambda uses it).

A borrower reads the code of an SMS to the hotline; the agent sees every delivery record that
printed it (codes are short hashes: several records, of several loans and numbers, may share
one), each with its loan, stage, time, outcome, masked number and what the loan owes now, and,
given the caller's number, whether that number received it. Reads DeliveriesTable's
ReferenceIndex, the live loans and their controls; writes nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from dunning.dal.deliveries import DeliveriesRepository
from dunning.dal.loans import LoansRepository
from dunning.dal.state import StateRepository
from dunning.inbound import due_now
from dunning.models.delivery import Outcome
from dunning.models.loan import InvalidLoan, parse_loan
from dunning.models.money import quantize
from dunning.models.policy import Policy
from dunning.models.timestamps import utc_iso
from dunning.observability import mask_phone


@dataclass(frozen=True)
class CodeMatch:
    """One delivery record that printed the code, and what its loan owes now."""

    loan_id: str
    stage: str
    cycle: str
    sent_at: str
    outcome: str
    masked_phone: str  # `<erased>` once the borrower's contact details were erased
    loan_status: str  # OPEN, PAID..., or why the live loan cannot be read (not_found, invalid_...)
    amount_due_now: Decimal | None
    currency: str | None
    pay_by: dt.date | None
    received: bool | None  # with --phone: whether that number was sent this record's SMS

    def as_dict(self) -> dict[str, Any]:
        return {
            "loan_id": self.loan_id,
            "stage": self.stage,
            "cycle": self.cycle,
            "sent_at": self.sent_at,
            "outcome": self.outcome,
            "masked_phone": self.masked_phone,
            "loan_status": self.loan_status,
            "amount_due_now": None if self.amount_due_now is None else str(self.amount_due_now),
            "currency": self.currency,
            "pay_by": None if self.pay_by is None else self.pay_by.isoformat(),
            **({} if self.received is None else {"received": self.received}),
        }

    def as_text(self) -> str:
        due = "due now: unknown"
        if self.amount_due_now is not None and self.pay_by is not None:
            due = f"due now {self.currency} {self.amount_due_now}, pay by {self.pay_by.isoformat()}"
        elif self.amount_due_now is not None:
            due = "nothing due now"
        return (
            f"loan {self.loan_id}  stage {self.stage}  sent {self.sent_at}  outcome {self.outcome}"
            f"  to {self.masked_phone}\n    {due} (loan {self.loan_status})"
        )


def verify_code(
    code: str,
    *,
    deliveries: DeliveriesRepository,
    loans: LoansRepository,
    state: StateRepository,
    policy: Policy,
    now: dt.datetime,
    phone: str | None = None,
) -> list[CodeMatch]:
    """Every record that printed `code` (an upper-case, well-formed code), oldest first."""
    found = deliveries.records_with_reference(code)
    live = loans.get_many(sorted({r.loan_id for r in found}))
    matches: list[CodeMatch] = []
    for record in found:
        loan_id = record.loan_id
        status, amount, currency, pay_by = _owed_now(live.get(loan_id), state, policy, now)
        sent_to = record.phone
        matches.append(
            CodeMatch(
                loan_id=loan_id,
                stage=record.stage or "",
                cycle=record.cycle or "",
                sent_at=utc_iso(record.created_at) if record.created_at else "",
                outcome=record.outcome.value if record.outcome else "",
                masked_phone=mask_phone(sent_to) if sent_to else "<erased>",
                loan_status=status,
                amount_due_now=amount,
                currency=currency,
                pay_by=pay_by,
                received=None if phone is None else sent_to == phone and record.outcome is not Outcome.SUPPRESSED,
            )
        )
    return matches


def _owed_now(
    item: dict[str, Any] | None, state: StateRepository, policy: Policy, now: dt.datetime
) -> tuple[str, Decimal | None, str | None, dt.date | None]:
    if item is None:
        return "not_found", None, None, None
    try:
        loan = parse_loan(item)
    except InvalidLoan as exc:
        return exc.reason, None, None, None
    due = due_now([(loan, state.get_control(loan.loan_id))], now, policy)
    if due is None:
        raise AssertionError("due_now answers for the one loan it was given")
    return loan.status.value, quantize(due.total, due.currency), due.currency, due.pay_by
