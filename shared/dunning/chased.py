"""The loan as collection chases it (pure): under an agreed repayment plan, its next unpaid instalment;
and a promise to pay that passed unkept. The planner, the sender, escalation and the ladder index read
loans through these; `borrower_events` applies the events that set plans and promises.

Kept apart from `borrower_events` (which wires notices, erasure and case closing) so that a function
importing these imports little else (issue 11: cold init).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from dunning.dal.ladder import ladder_due
from dunning.models.loan import Loan, LoanStatus
from dunning.models.state import Instalment, LoanControl


def missed_promise(control: LoanControl | None, loan: Loan, today: dt.date) -> dt.date | None:
    """The promised date to mention in the next reminder: passed, for the cycle now chased, unpaid."""
    if control is None or control.promised_date is None:
        return None
    if control.promised_date >= today or control.promised_date < loan.due_date:
        return None  # not yet due, or a promise about an earlier instalment
    return control.promised_date


def plan_instalment(plan: tuple[Instalment, ...], amount_due: Decimal) -> Instalment | None:
    """The next unpaid instalment of a plan covering a balance that upstream now reports as `amount_due`.

    What has been paid towards the plan is its total minus the balance still due; the next
    instalment is the first one not covered by that, for the part of it still unpaid.
    None when the plan is fully paid (or empty).
    """
    paid = max(sum((i.amount for i in plan), Decimal(0)) - amount_due, Decimal(0))
    covered = Decimal(0)
    for instalment in plan:
        covered += instalment.amount
        if covered > paid:
            return Instalment(due_date=instalment.due_date, amount=min(instalment.amount, covered - paid))
    return None


def effective_loan(loan: Loan, control: LoanControl | None) -> Loan:
    """The loan as collection sees it: under an agreed plan, its next unpaid instalment.

    Assumes upstream's `amount_due` is the whole balance the plan covers (what `plan_instalment`
    reads). Under a plan, `due_date` is the next unpaid instalment's date (so `cycle`, and every
    claim, is per instalment) and `amount_due` what is left of it. A plan resets late fees: 0
    unless the ledger gives fees. A fully paid plan leaves nothing to chase: the loan is seen
    PAID, due on its last instalment. Without a plan the loan is returned unchanged.
    """
    if control is None or not control.plan:
        return loan
    instalment = plan_instalment(control.plan, loan.amount_due)
    fees = loan.late_fees if loan.late_fees is not None else Decimal(0)
    if instalment is None:
        last = control.plan[-1].due_date
        return loan.model_copy(
            update={"status": LoanStatus.PAID, "due_date": last, "amount_due": Decimal(0), "late_fees": fees}
        )
    return loan.model_copy(update={"due_date": instalment.due_date, "amount_due": instalment.amount, "late_fees": fees})


def chased_due(item: Mapping[str, Any]) -> str | None:
    """The `ladder_due` a loan's index item should have: its due date, or under a plan the next unpaid
    instalment's (the last one's once the plan is paid); None when the item is not in the ladder."""
    if not item.get("ladder_bucket") or not item.get("due_date") or item.get("amount_due") is None:
        return None
    loan_id = str(item["loan_id"])
    if not item.get("plan"):
        return ladder_due(str(item["due_date"]), loan_id)
    plan = LoanControl.model_validate(item).plan
    instalment = plan_instalment(plan, Decimal(str(item["amount_due"])))
    due = instalment.due_date if instalment is not None else plan[-1].due_date
    return ladder_due(due.isoformat(), loan_id)
