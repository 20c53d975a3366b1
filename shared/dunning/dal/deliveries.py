"""DeliveriesTable: one record per loan reminded per message (docs/contract.md#deliveriestable-record)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from dunning.dal.aws import batch_get, conditional_write, dynamodb, from_item, query_items, to_item
from dunning.models.delivery import DeliveryRecord, Outcome, StoredRecord
from dunning.models.timestamps import utc_iso

if TYPE_CHECKING:
    from dunning.dal.aws import RawItem, Write

MESSAGE_ID_INDEX = "MessageIdIndex"
BORROWER_INDEX = "BorrowerIndex"
# Records by the reference code printed in their SMS (sparse: a record without a code is not in it).
REFERENCE_INDEX = "ReferenceIndex"
# What ReferenceIndex projects (template.yaml): enough to verify a code, never the body. `phone` is
# projected so an erasure (which removes it from the record) leaves the index entry matching no number.
REFERENCE_ATTRIBUTES = (
    "loan_id", "record_id", "reference", "phone", "borrower_id", "cycle", "stage", "outcome",
    "created_at", "currency", "locale",
)  # fmt: skip
# What an erasure removes from a record: the number and the text sent (which holds the name).
CONTACT_ATTRIBUTES = ("phone", "body")
# What escalation needs of a loan's records (never the body or the phone).
HISTORY_ATTRIBUTES = ("record_id", "cycle", "stage", "outcome", "reason", "message_id")


class DeliveriesRepository:
    def __init__(self, table: str, policy_version: str | None = None) -> None:
        self.table = table
        # Stamped on every record this repository writes that names none: the policy that decided it.
        self.policy_version = policy_version

    def _item(self, record: DeliveryRecord) -> RawItem:
        values = record.to_item()
        if values.get("policy_version") is None and self.policy_version:
            values["policy_version"] = self.policy_version
        return to_item(values)

    def put_item_request(self, record: DeliveryRecord) -> Write:
        """A transaction Put of the record (used with the claim update in one TransactWriteItems)."""
        return {"Put": {"TableName": self.table, "Item": self._item(record)}}

    def put(self, record: DeliveryRecord) -> None:
        """Idempotent: the record id is deterministic, so a retry overwrites the same record."""
        dynamodb().put_item(TableName=self.table, Item=self._item(record))

    # ---------------------------------------------------------------- delivery status (RecordDeliveryFunction)
    def get(self, loan_id: str, record_id: str) -> StoredRecord | None:
        response = dynamodb().get_item(
            TableName=self.table,
            Key={"loan_id": {"S": loan_id}, "record_id": {"S": record_id}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return StoredRecord.model_validate(from_item(item)) if item else None

    def records_for_message(self, message_id: str) -> list[tuple[str, str]]:
        """(loan_id, record_id) of every record of one SNS message (one per loan it covered)."""
        items = query_items(
            TableName=self.table,
            IndexName=MESSAGE_ID_INDEX,
            KeyConditionExpression="message_id = :m",
            ExpressionAttributeValues={":m": {"S": message_id}},
        )
        return sorted((str(item["loan_id"]), str(item["record_id"])) for item in items)

    # ---------------------------------------------------------------- reference codes (inbound SMS, `dunning verify`)
    def records_with_reference(self, code: str, phone: str | None = None) -> list[StoredRecord]:
        """The records whose SMS printed `code` (oldest first); with `phone`, only those sent to that number.

        Codes are short hashes, so records of other loans and numbers may share one: the number is
        matched by DynamoDB (a filter), so a look-up for one number never reads another's records.
        """
        names = {f"#a{i}": name for i, name in enumerate(REFERENCE_ATTRIBUTES)}
        request: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": REFERENCE_INDEX,
            "KeyConditionExpression": "#r = :code",
            "ProjectionExpression": ", ".join(names),
            "ExpressionAttributeValues": {":code": {"S": code}},
        }
        names["#r"] = "reference"
        if phone is not None:
            names["#p"] = "phone"
            request["FilterExpression"] = "#p = :phone"
            request["ExpressionAttributeValues"][":phone"] = {"S": phone}
        request["ExpressionAttributeNames"] = names
        records = (StoredRecord.model_validate(item) for item in query_items(**request))
        return sorted(records, key=lambda record: record.record_id)

    def reference_exists(self, code: str) -> bool:
        """Whether any record printed `code` (a count: no record of anyone is read)."""
        response = dynamodb().query(
            TableName=self.table,
            IndexName=REFERENCE_INDEX,
            KeyConditionExpression="#r = :code",
            ExpressionAttributeNames={"#r": "reference"},
            ExpressionAttributeValues={":code": {"S": code}},
            Select="COUNT",
            Limit=1,
        )
        return int(response.get("Count", 0)) > 0

    def outcome_update(
        self,
        loan_id: str,
        record_id: str,
        *,
        outcome: Outcome,
        awaiting: Collection[Outcome],
        provider_response: str,
        price_usd: Decimal | None,
        reason: str | None,
        now: dt.datetime,
    ) -> Write:
        """A transaction Update setting the carrier outcome only while the record's outcome is one of `awaiting`.

        When the condition fails, the record is returned as it is (ALL_OLD): its outcome says why.
        """
        values: dict[str, Any] = {":o": outcome.value, ":p": provider_response, ":u": utc_iso(now)}
        sets = ["#o = :o", "provider_response = :p", "updated_at = :u"]
        if price_usd is not None:
            values[":price"] = price_usd
            sets.append("price_usd = :price")
        if reason is not None:
            values[":reason"] = reason
            sets.append("#r = :reason")
        allowed = {f":a{i}": state.value for i, state in enumerate(sorted(awaiting))}
        values.update(allowed)
        return {
            "Update": {
                "TableName": self.table,
                "Key": {"loan_id": {"S": loan_id}, "record_id": {"S": record_id}},
                "UpdateExpression": "SET " + ", ".join(sets),
                "ConditionExpression": f"attribute_exists(record_id) AND #o IN ({', '.join(allowed)})",
                "ExpressionAttributeNames": {"#o": "outcome", "#r": "reason"} if reason else {"#o": "outcome"},
                "ExpressionAttributeValues": to_item(values),
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    # ---------------------------------------------------------------- history (EscalateFunction)
    def history(self, loan_id: str) -> list[StoredRecord]:
        """The loan's records, oldest first, with only the attributes decisions need."""
        names = {f"#a{i}": name for i, name in enumerate(HISTORY_ATTRIBUTES)}
        items = query_items(
            TableName=self.table,
            KeyConditionExpression="loan_id = :l",
            ExpressionAttributeValues={":l": {"S": loan_id}},
            ProjectionExpression=", ".join(names),
            ExpressionAttributeNames=names,
            ConsistentRead=True,
        )
        return [StoredRecord.model_validate({"loan_id": loan_id, **item}) for item in items]

    # ---------------------------------------------------------------- erasure (LoanEventsFunction)
    def borrower_records(self, borrower_id: str) -> list[tuple[str, str]]:
        """(loan_id, record_id) of every record of one borrower (BorrowerIndex, keys only)."""
        items = query_items(
            TableName=self.table,
            IndexName=BORROWER_INDEX,
            KeyConditionExpression="borrower_id = :b",
            ExpressionAttributeValues={":b": {"S": borrower_id}},
        )
        return sorted((str(item["loan_id"]), str(item["record_id"])) for item in items)

    def contact_details(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        """The contact attributes each record still holds (records holding none are left out)."""
        names = {f"#a{i}": name for i, name in enumerate(("loan_id", "record_id", *CONTACT_ATTRIBUTES))}
        found: dict[tuple[str, str], dict[str, Any]] = {}
        request = [{"loan_id": {"S": loan}, "record_id": {"S": rid}} for loan, rid in keys]
        for item in map(from_item, batch_get(self.table, request, projection=", ".join(names), names=names)):
            contact = {k: v for k, v in item.items() if k in CONTACT_ATTRIBUTES}
            if contact:
                found[(str(item["loan_id"]), str(item["record_id"]))] = contact
        return found

    def erase_contact(self, loan_id: str, record_id: str, now: dt.datetime) -> bool:
        """Remove phone and body from one record, keeping outcome, amounts and dates; False if none was left."""
        names = {f"#c{i}": name for i, name in enumerate(CONTACT_ATTRIBUTES)}
        return conditional_write(
            {
                "Update": {
                    "TableName": self.table,
                    "Key": {"loan_id": {"S": loan_id}, "record_id": {"S": record_id}},
                    "UpdateExpression": f"REMOVE {', '.join(names)} SET erased_at = :now",
                    "ConditionExpression": " OR ".join(f"attribute_exists({name})" for name in names),
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": {":now": {"S": utc_iso(now)}},
                }
            }
        ).ok
