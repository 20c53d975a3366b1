"""LoansTable (upstream-owned, read-only for us)."""

from __future__ import annotations

from typing import Any

from dunning.dal.aws import batch_get, from_item


class LoansRepository:
    """Only ever read by key (the planner, escalation and the bureau read the ladder index in StateTable)."""

    def __init__(self, table: str) -> None:
        self.table = table

    def get_many(self, loan_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Strongly consistent reads of the live items (what the sender re-checks against), as stored by upstream.

        Raw values, not `Loan`s (on purpose, unlike the other repositories, which return models): upstream
        may write anything, and a broken item must reach the caller, which turns it into a SUPPRESSED record
        with its own reason (docs/contract.md#loanstable-item); parsing here would lose the item and the reason.
        """
        items = batch_get(self.table, [{"loan_id": {"S": loan_id}} for loan_id in loan_ids])
        return {str(loan["loan_id"]): loan for loan in map(from_item, items)}
