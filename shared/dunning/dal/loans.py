"""LoansTable (upstream-owned, read-only for us)."""

from __future__ import annotations

from typing import Any

from dunning.dal.aws import client, from_item


class LoansRepository:
    """Only ever read by key (the planner, escalation and the bureau read the ladder index in StateTable)."""

    def __init__(self, table: str) -> None:
        self.table = table

    def get_many(self, loan_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Strongly consistent reads of the live items (what the sender re-checks against)."""
        found: dict[str, dict[str, Any]] = {}
        ids = list(dict.fromkeys(loan_ids))
        for start in range(0, len(ids), 100):
            request: dict[str, Any] = {
                self.table: {
                    "Keys": [{"loan_id": {"S": loan_id}} for loan_id in ids[start : start + 100]],
                    "ConsistentRead": True,
                }
            }
            while request:
                response = client("dynamodb").batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table, []):
                    loan = from_item(item)
                    found[str(loan["loan_id"])] = loan
                request = response.get("UnprocessedKeys") or {}
        return found
