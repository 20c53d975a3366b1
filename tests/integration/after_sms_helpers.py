"""Helpers for the after-the-SMS tests: loans and delivery records in the stack's tables, scheduled events."""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3

from dunning.dal.aws import from_item, to_item
from dunning.models.delivery import DeliveryRecord, Outcome, expires_at, record_id
from dunning_tools.local import LocalStack, drain_stream

EVENTS = Path(__file__).resolve().parents[2] / "events"


def event_file(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return loaded


def scheduled(name: str, at: dt.datetime) -> dict[str, Any]:
    """An events/ scheduled sample fired at `at`."""
    return {**event_file(name), "time": at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


def delivery_status_event(message_id: str, phone: str, at: dt.datetime) -> dict[str, Any]:
    """events/cloudwatch_logs_sms_success.json re-addressed to a message a run really sent."""
    sample = event_file("cloudwatch_logs_sms_success.json")
    payload = json.loads(gzip.decompress(base64.b64decode(sample["awslogs"]["data"])))
    log_line = json.loads(payload["logEvents"][0]["message"])
    log_line["notification"] = {"messageId": message_id, "timestamp": at.strftime("%Y-%m-%d %H:%M:%S.000")}
    log_line["delivery"]["destination"] = phone
    payload["logEvents"][0]["message"] = json.dumps(log_line)
    payload["logEvents"][0]["timestamp"] = int(at.timestamp() * 1000)
    return {"awslogs": {"data": base64.b64encode(gzip.compress(json.dumps(payload).encode())).decode()}}


def put_loan(stack: LocalStack, loan_id: str, due_date: dt.date, **overrides: Any) -> None:
    item: dict[str, Any] = {
        "loan_id": loan_id,
        "borrower_id": f"B-{loan_id}",
        "borrower_name": "王小明",
        "phone": "+8613800138000",
        "status": "OPEN",
        "due_date": due_date.isoformat(),
        "amount_due": Decimal("3000.00"),
        "currency": "CNY",
        **overrides,
    }
    for money in ("amount_due", "late_fees"):  # numbers (N), as upstream writes them
        if money in item:
            item[money] = Decimal(str(item[money]))
    boto3.client("dynamodb").put_item(TableName=stack.physical_id("LoansTable"), Item=to_item(item))
    drain_stream(stack)  # the ladder index is kept from LoansTable's stream


def put_record(
    stack: LocalStack,
    loan_id: str,
    at: dt.datetime,
    *,
    cycle: str,
    stage: str,
    outcome: Outcome = Outcome.SENT,
    message_id: str | None = None,
) -> DeliveryRecord:
    record = DeliveryRecord(
        loan_id=loan_id,
        record_id=record_id(at, cycle, stage),
        borrower_id=f"B-{loan_id}",
        cycle=cycle,
        stage=stage,
        outcome=outcome,
        message_id=message_id,
        phone="+8613800138000",
        body="【信飞】…",
        amount_due=Decimal("3000.00"),
        currency="CNY",
        created_at=at,
        updated_at=at,
        expires_at=expires_at(at, 400),
    )
    boto3.client("dynamodb").put_item(TableName=stack.physical_id("DeliveriesTable"), Item=to_item(record.to_item()))
    return record


def records(stack: LocalStack, loan_id: str) -> list[dict[str, Any]]:
    response = boto3.client("dynamodb").query(
        TableName=stack.physical_id("DeliveriesTable"),
        KeyConditionExpression="loan_id = :l",
        ExpressionAttributeValues={":l": {"S": loan_id}},
    )
    return [from_item(item) for item in response["Items"]]


def state_item(stack: LocalStack, pk: str, sk: str) -> dict[str, Any] | None:
    response = boto3.client("dynamodb").get_item(
        TableName=stack.physical_id("StateTable"), Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True
    )
    return from_item(response["Item"]) if "Item" in response else None
