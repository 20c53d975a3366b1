"""StateTable: collection cases handed to human collectors (`LOAN#id / CASE#cycle`).

One case per loan cycle, ever. Opening is two single-item writes in this order: set
`case_cycle` and the case's detail on the loan's CONTROL item (which stops collection SMS for
that cycle), then create the case item with a conditional put. SMS stop before the case exists,
so no SMS can slip out after it; a run that died between the two writes finds the detail on the
CONTROL item and opens that same case on the next run, whether or not its reason still holds.
`published` turns true once CollectionCaseOpened is on the bus, so a run that died after the
put finishes the case on the next run instead of opening another.

Closing follows the same shape: one conditional update sets `closed_at`, `close_reason` and the
CollectionCaseClosed detail (only on a case not closed yet), then the event goes out and
`close_published` turns true; a closer that died in between finds the stored detail next time.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from dunning.dal.aws import batch_get, conditional_write, dynamodb, from_item, query_items, to_item
from dunning.dal.state import control_key
from dunning.models.state import CollectionCase, LoanControl
from dunning.models.timestamps import utc_iso

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import UpdateItemInputTypeDef

    from dunning.dal.aws import RawItem

CASE_PREFIX = "CASE#"


def case_key(loan_id: str, cycle: str) -> RawItem:
    return {"pk": {"S": f"LOAN#{loan_id}"}, "sk": {"S": f"{CASE_PREFIX}{cycle}"}}


class CaseRepository:
    def __init__(self, table: str) -> None:
        self.table = table

    def load(self, loans: list[tuple[str, str]]) -> tuple[dict[str, CollectionCase], dict[str, LoanControl]]:
        """Existing cases (by loan id, for the given cycle) and CONTROL items of (loan_id, cycle) pairs."""
        keys = [case_key(loan_id, cycle) for loan_id, cycle in loans] + [control_key(loan_id) for loan_id, _ in loans]
        cycles = dict(loans)
        cases: dict[str, CollectionCase] = {}
        controls: dict[str, LoanControl] = {}
        for item in map(from_item, batch_get(self.table, keys)):
            loan_id = str(item["pk"]).removeprefix("LOAN#")
            if item["sk"] == "CONTROL":
                controls[loan_id] = LoanControl.model_validate(item)
            elif item["sk"] == f"CASE#{cycles.get(loan_id)}":
                cases[loan_id] = CollectionCase.model_validate(item)
        return cases, controls

    def control_items(self, loan_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The CONTROL items of these loans as stored (batched reads; the caller validates): by loan id."""
        items = map(from_item, batch_get(self.table, [control_key(loan_id) for loan_id in loan_ids]))
        return {str(item["pk"]).removeprefix("LOAN#"): item for item in items}

    def open(self, loan_id: str, cycle: str, borrower_id: str, detail: dict[str, Any], now: dt.datetime) -> bool:
        """Stop the cycle's SMS, then create the case; False when the case already exists."""
        detail_json = json.dumps(detail, ensure_ascii=False, sort_keys=True)
        item = {
            "pk": f"LOAN#{loan_id}",
            "sk": f"CASE#{cycle}",
            "loan_id": loan_id,
            "cycle": cycle,
            "borrower_id": borrower_id,
            "reason": detail.get("reason"),
            "opened_at": utc_iso(now),
            "detail": detail_json,
            "published": False,
        }
        self.stop_cycle(loan_id, cycle, detail_json)
        return conditional_write(
            {"Put": {"TableName": self.table, "Item": to_item(item), "ConditionExpression": "attribute_not_exists(pk)"}}
        ).ok

    def stop_cycle(self, loan_id: str, cycle: str, detail: str | None = None) -> None:
        """Set `case_cycle` (and the case's detail) on the CONTROL item; borrower-event fields stay as they are."""
        dynamodb().update_item(**self._stop_cycle_request(loan_id, cycle, detail))

    def mark_published(self, loan_id: str, cycle: str, now: dt.datetime) -> None:
        dynamodb().update_item(
            TableName=self.table,
            Key=case_key(loan_id, cycle),
            UpdateExpression="SET published = :t, published_at = :now",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":t": {"BOOL": True}, ":now": {"S": utc_iso(now)}},
        )

    def loan_cases(self, loan_id: str) -> list[CollectionCase]:
        """Every case of the loan, whatever its cycle (one Query of the loan's partition)."""
        items = query_items(
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :case)",
            ExpressionAttributeValues={":pk": {"S": f"LOAN#{loan_id}"}, ":case": {"S": CASE_PREFIX}},
            ConsistentRead=True,
        )
        return [CollectionCase.model_validate(item) for item in items]

    def close(self, loan_id: str, cycle: str, detail: dict[str, Any], now: dt.datetime) -> bool:
        """Record the case's closing (reason and CollectionCaseClosed detail); False when it is closed already."""
        return conditional_write(
            {
                "Update": {
                    "TableName": self.table,
                    "Key": case_key(loan_id, cycle),
                    "UpdateExpression": (
                        "SET closed_at = :now, close_reason = :r, close_detail = :d, close_published = :f"
                    ),
                    "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(closed_at)",
                    "ExpressionAttributeValues": {
                        ":now": {"S": utc_iso(now)},
                        ":r": {"S": str(detail["reason"])},
                        ":d": {"S": json.dumps(detail, ensure_ascii=False, sort_keys=True)},
                        ":f": {"BOOL": False},
                    },
                }
            }
        ).ok

    def mark_close_published(self, loan_id: str, cycle: str, now: dt.datetime) -> None:
        dynamodb().update_item(
            TableName=self.table,
            Key=case_key(loan_id, cycle),
            UpdateExpression="SET close_published = :t, close_published_at = :now",
            ConditionExpression="attribute_exists(closed_at)",
            ExpressionAttributeValues={":t": {"BOOL": True}, ":now": {"S": utc_iso(now)}},
        )

    def _stop_cycle_request(self, loan_id: str, cycle: str, detail: str | None) -> UpdateItemInputTypeDef:
        # loan_id is written only when absent: the CONTROL model needs it, nothing else is touched.
        values: RawItem = {":c": {"S": cycle}, ":l": {"S": loan_id}}
        expression = "SET case_cycle = :c, loan_id = if_not_exists(loan_id, :l)"
        if detail is not None:
            values[":d"] = {"S": detail}
            expression += ", case_detail = :d"
        return {
            "TableName": self.table,
            "Key": control_key(loan_id),
            "UpdateExpression": expression,
            "ExpressionAttributeValues": values,
        }
