"""The local runner over HTTP: moto as a server (`ThreadedMotoServer`), reached through AWS_ENDPOINT_URL."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import boto3
import pytest
import time_machine
from boto3.dynamodb.conditions import Key
from moto.core.models import botocore_stubber

from dunning_tools.local import LocalStack, deploy_stack, drain_queue, drain_stream, invoke
from tests.integration.fixtures_handlers import app as fake_consumer

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"


@pytest.fixture
def http_stack(moto_server: str) -> LocalStack:
    # Nothing in-process may answer: every call below has to cross the socket.
    assert not botocore_stubber.enabled
    return deploy_stack()


def test_stack_deploys_over_http(http_stack: LocalStack, moto_server: str) -> None:
    cloudformation = boto3.client("cloudformation")
    assert cloudformation.meta.endpoint_url == moto_server
    stack = cloudformation.describe_stacks(StackName=http_stack.name)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    for logical_id in ("LoansTable", "DeliveriesTable", "ReminderQueue", "LoanEventsBus", "ReportsBucket"):
        assert http_stack.physical_id(logical_id)
    mappings = boto3.client("lambda").list_event_source_mappings()["EventSourceMappings"]
    assert mappings
    assert {m["State"] for m in mappings} == {"Disabled"}


def test_loans_table_put_and_get_through_the_stack(http_stack: LocalStack) -> None:
    table_name = http_stack.function_environment("PlanRemindersFunction")["LOANS_TABLE"]
    assert table_name == http_stack.outputs["LoansTableName"]
    table = boto3.resource("dynamodb").Table(table_name)
    item = {"loan_id": "L-1", "borrower_id": "B-1", "status": "OPEN", "due_date": "2026-03-01", "currency": "CNY"}

    table.put_item(Item=item)

    assert table.get_item(Key={"loan_id": "L-1"})["Item"] == item


def test_queue_drains_over_http(http_stack: LocalStack) -> None:
    stack = dataclasses.replace(
        http_stack,
        code_uris={**http_stack.code_uris, "SendRemindersFunction": "tests/integration/fixtures_handlers/"},
    )
    fake_consumer.CALLS.clear()
    boto3.client("sqs").send_message(QueueUrl=stack.queue_url("ReminderQueue"), MessageBody=json.dumps({}))

    responses = drain_queue(stack)

    assert responses == [{"batchItemFailures": []}]
    assert fake_consumer.CALLS[0]["environment"]["AWS_ENDPOINT_URL"] == boto3.client("sqs").meta.endpoint_url
    fake_consumer.CALLS.clear()


def test_real_handlers_plan_and_send_over_http(http_stack: LocalStack) -> None:
    """The handlers' own boto3 clients follow AWS_ENDPOINT_URL: one overdue loan becomes one SMS record."""
    loans = boto3.resource("dynamodb").Table(http_stack.physical_id("LoansTable"))
    loans.put_item(
        Item={
            "loan_id": "L-http",
            "borrower_id": "B-http",
            "borrower_name": "王小明",
            "phone": "+8613800138000",
            "status": "OPEN",
            "due_date": "2026-03-01",
            "amount_due": Decimal("1200.50"),
            "currency": "CNY",
        }
    )
    drain_stream(http_stack)  # the ladder index is kept from the stream, over HTTP too
    event = json.loads((EVENTS_DIR / "scheduled_plan.json").read_text(encoding="utf-8"))
    at = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai, the day after the due date
    event["time"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")

    with time_machine.travel(at, tick=False):
        invoke(http_stack, "PlanRemindersFunction", event)
        enqueued = _queue_depth(http_stack)
        drain_queue(http_stack)

    assert enqueued >= 1
    assert _queue_depth(http_stack) == 0
    deliveries = boto3.resource("dynamodb").Table(http_stack.physical_id("DeliveriesTable"))
    records = deliveries.query(KeyConditionExpression=Key("loan_id").eq("L-http"))["Items"]
    assert [record["outcome"] for record in records] == ["SENT"]


def _queue_depth(stack: LocalStack) -> int:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=stack.queue_url("ReminderQueue"),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])
