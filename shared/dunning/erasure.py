"""BorrowerErasureRequested (docs/contract.md#events-in): forget a borrower's contact details, keep the evidence.

What goes: `phone` and `body` (the text sent, which holds the name) of every DeliveriesTable
record of the borrower (found through `BorrowerIndex`), and every StateTable item still keyed
by one of their raw numbers (written before numbers were hashed), and the number and name on the
CONTROL items of their open loans (`dal.ladder.CONTACT`, found through `ContactIndex`; LoanChangesFunction
never copies them back once the evidence item below exists). What stays: outcomes, reasons,
amounts, dates and references of the records, and the opt-out, which StateTable keeps under the
number's keyed hash (`PHONEHASH#h`) and so still stops any SMS to that number.

Safe to redeliver and to resume: every step is idempotent, and StateTable is cleaned for every
number the records hold before any record loses its number, so a run cut short anywhere is
finished by the redelivery. A second erasure finds nothing left and writes nothing but the
evidence item (`BORROWER#id / ERASED`: when requested, when last run and done, what it erased).
LoansTable is upstream's and is never touched: upstream erases its own copy.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from dunning.dal.deliveries import DeliveriesRepository
from dunning.dal.ladder import LadderRepository
from dunning.dal.state import StateRepository
from dunning.models.events import BorrowerErasureRequested
from dunning.observability import MetricUnit, logger, mask_phone, metrics


@dataclass
class Erasure:
    state: StateRepository
    deliveries: DeliveriesRepository

    def erase(self, request: BorrowerErasureRequested, event_id: str, now: dt.datetime) -> dict[str, Any]:
        borrower_id = request.borrower_id
        self.state.note_erasure(borrower_id, event_id, now)  # evidence first: a crash after it is retried
        # The evidence stops LoanChangesFunction copying contact details again; then those on the loans go.
        ladder = LadderRepository(self.state.table)
        loan_contacts = sum(
            ladder.erase_contact(loan_id, borrower_id) for loan_id in ladder.holding_contact(borrower_id)
        )
        records = self.deliveries.borrower_records(borrower_id)
        holding = self.deliveries.contact_details(records)
        phones = {request.phone} | {str(contact["phone"]) for contact in holding.values() if contact.get("phone")}
        raw_items = sum(self.state.forget_number(phone, now) for phone in sorted(phones))
        erased = sum(self.deliveries.erase_contact(loan_id, record_id, now) for loan_id, record_id in sorted(holding))
        done = {"records_erased": erased, "state_items_deleted": raw_items, "loan_contacts_erased": loan_contacts}
        self.state.note_erasure(borrower_id, event_id, now, done)
        metrics.add_metric(name="BorrowerErasures", unit=MetricUnit.Count, value=1)
        logger.info(
            "borrower erased",
            extra={
                "borrower_id": borrower_id,
                "phone": mask_phone(request.phone),
                "records": len(records),
                **done,
            },
        )
        return {"borrower_id": borrower_id, "records": len(records), **done}
