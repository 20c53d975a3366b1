"""LoansTable (upstream-owned, read-only for us)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from dunning.dal.aws import client, from_item, query_items

OPEN_INDEX = "OpenLoansByDueDate"


class LoansRepository:
    def __init__(self, table: str) -> None:
        self.table = table

    def open_loans_due_on(self, due_date: dt.date) -> Iterator[dict[str, Any]]:
        """OPEN loans with this due date, from the index: never a read of the whole book."""
        return self.open_loans_due_between(due_date, due_date)

    def open_loans_due_between(self, first: dt.date, last: dt.date) -> Iterator[dict[str, Any]]:
        """OPEN loans with first <= due_date <= last (ISO dates sort as strings), in index order."""
        return query_items(
            TableName=self.table,
            IndexName=OPEN_INDEX,
            KeyConditionExpression="#s = :open AND #d BETWEEN :first AND :last",
            ExpressionAttributeNames={"#s": "status", "#d": "due_date"},
            ExpressionAttributeValues={
                ":open": {"S": "OPEN"},
                ":first": {"S": first.isoformat()},
                ":last": {"S": last.isoformat()},
            },
        )

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
