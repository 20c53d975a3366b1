"""Closing collection cases when their loan is paid or closed (docs/contract.md#events-out, CollectionCaseClosed).

Upstream marks the loan PAID, CLOSED or WRITTEN_OFF; every case of the loan not closed yet then
closes, once, with the reason `paid`, `settled` or `written_off`. Two places see that happen:
LoanChangesFunction (the write on LoansTable's stream: the natural trigger, redelivered at least
once) and LoanEventsFunction (a PaymentReceived after which the item says PAID, which may come
first). Both go through `CaseCloser`, whose order makes any number of deliveries announce a case's
closing once: a conditional update records the closing on the case item (only one caller wins
it), then the event goes out, then `close_published`; a caller that died after the update is
finished by the next delivery from the stored detail. (Two deliveries running at the very same
moment could both finish an unpublished closing: the window is that of one PutEvents call.)

A case whose CollectionCaseOpened never went out (its run died after recording it, and the loan
left the OPEN index before escalation's next run) is announced first, so a collectors' system
never sees a case close that it never saw open.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from dunning.dal.bus import EventBus
from dunning.dal.cases import CaseRepository
from dunning.models.loan import Loan, LoanStatus
from dunning.models.state import CollectionCase
from dunning.models.timestamps import utc_iso
from dunning.observability import MetricUnit, logger, metrics

OPENED_DETAIL_TYPE = "CollectionCaseOpened"
CLOSED_DETAIL_TYPE = "CollectionCaseClosed"
# Upstream statuses that end a case, and the reason CollectionCaseClosed gives.
CLOSING_REASONS = {LoanStatus.PAID: "paid", LoanStatus.CLOSED: "settled", LoanStatus.WRITTEN_OFF: "written_off"}


def closing_reason(loan: Loan) -> str | None:
    """The CollectionCaseClosed reason for a loan upstream marks PAID, CLOSED or WRITTEN_OFF; None while OPEN."""
    return CLOSING_REASONS.get(loan.status)


def closed_detail(case: CollectionCase, reason: str, now: dt.datetime) -> dict[str, Any]:
    """The CollectionCaseClosed detail (docs/contract.md#events-out) of a case item."""
    return {
        "loan_id": case.loan_id,
        "borrower_id": case.borrower_id,
        "cycle": case.cycle,
        "reason": reason,
        "closed_at": utc_iso(now),
    }


@dataclass
class CaseCloser:
    cases: CaseRepository
    bus: EventBus

    def close(self, loan: Loan, now: dt.datetime) -> int:
        """Close every case of a loan upstream has ended; returns how many closings were announced now."""
        reason = closing_reason(loan)
        if reason is None:
            return 0
        announced = 0
        for case in self.cases.loan_cases(loan.loan_id):
            if case.close_published:
                continue
            cycle = case.cycle
            if not case.published:
                self.bus.put(OPENED_DETAIL_TYPE, json.loads(case.detail), now)
                self.cases.mark_published(loan.loan_id, cycle, now)
            if case.close_detail:
                detail = json.loads(case.close_detail)  # closed by a delivery that died before announcing it
            else:
                detail = closed_detail(case, reason, now)
                if not self.cases.close(loan.loan_id, cycle, detail, now):
                    continue  # another delivery closed it just now: announcing it is that one's job
            self.bus.put(CLOSED_DETAIL_TYPE, detail, now)
            self.cases.mark_close_published(loan.loan_id, cycle, now)
            announced += 1
            logger.info("collection case closed", extra={"loan_id": loan.loan_id, "cycle": cycle, "reason": reason})
        if announced:
            metrics.add_metric(name="CollectionCasesClosed", unit=MetricUnit.Count, value=announced)
        return announced
