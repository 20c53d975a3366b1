"""DeliveriesTable: one record per loan reminded per message (DESIGN 4.3)."""

from __future__ import annotations

from typing import Any

from dunning.dal.aws import client, to_item
from dunning.models.delivery import DeliveryRecord


class DeliveriesRepository:
    def __init__(self, table: str) -> None:
        self.table = table

    def put_item_request(self, record: DeliveryRecord) -> dict[str, Any]:
        """A transaction Put of the record (used with the claim update in one TransactWriteItems)."""
        return {"Put": {"TableName": self.table, "Item": to_item(record.to_item())}}

    def put(self, record: DeliveryRecord) -> None:
        """Idempotent: the record id is deterministic, so a retry overwrites the same record."""
        client("dynamodb").put_item(TableName=self.table, Item=to_item(record.to_item()))
