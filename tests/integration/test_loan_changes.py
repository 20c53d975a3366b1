"""LoanChangesFunction on the moto stack: every LoansTable write is checked, whatever its keys.

Items whose key fields escape the planner's index (`2026/11/16`, status `open` or none) are never
read by the planner; the table's stream still brings them to LoanChangesFunction, which records them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
import time_machine
from aws_lambda_powertools.utilities.parser.models import DynamoDBStreamLambdaOnFailureDestinationModel
from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError
from moto.core.models import botocore_stubber

from dunning.dal import aws
from dunning.dal.ladder import LADDER_INDEX
from dunning.sharding import bucket_of
from dunning_tools.local import LocalStack, LocalStackError, deploy_stack, drain_stream, invoke
from tests.integration.fixtures_stream import app as fake_consumer

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"
SEEDED_AT = dt.datetime(2026, 11, 20, 3, 15, tzinfo=dt.UTC)

VALID: dict[str, Any] = {
    "borrower_id": "B-1",
    "borrower_name": "张三",
    "phone": "+8613800138000",
    "status": "OPEN",
    "due_date": "2026-11-16",
    "amount_due": Decimal("1200.50"),
    "currency": "CNY",
}


def _loan(loan_id: str, **changes: Any) -> dict[str, Any]:
    item = {**VALID, "loan_id": loan_id, **changes}
    return {k: v for k, v in item.items() if v is not None}


# loan id -> (the item upstream writes, the reason its record must carry)
INVALID: dict[str, tuple[dict[str, Any], str]] = {
    "L-slashes": (_loan("L-slashes", due_date="2026/11/16"), "invalid_due_date"),
    "L-feb30": (_loan("L-feb30", due_date="2026-02-30"), "invalid_due_date"),
    "L-lowercase": (_loan("L-lowercase", status="open"), "invalid_status"),
    "L-nostatus": (_loan("L-nostatus", status=None), "missing_status"),
    "L-nophone": (_loan("L-nophone", phone=None), "missing_phone"),
    "L-huge": (_loan("L-huge", amount_due=Decimal("9E+125")), "invalid_amount"),
}
VALID_IDS = ("L-ok-1", "L-ok-2")


def _records(stack: LocalStack, loan_id: str) -> list[dict[str, Any]]:
    table = boto3.resource("dynamodb").Table(stack.physical_id("DeliveriesTable"))
    return list(table.query(KeyConditionExpression=Key("loan_id").eq(loan_id), ConsistentRead=True)["Items"])


def _all_records(stack: LocalStack) -> list[dict[str, Any]]:
    table = boto3.resource("dynamodb").Table(stack.physical_id("DeliveriesTable"))
    return list(table.scan(ConsistentRead=True)["Items"])


@pytest.fixture
def seeded(local_stack: LocalStack, seed_loans: Callable[..., None]) -> LocalStack:
    with time_machine.travel(SEEDED_AT, tick=False):
        seed_loans(
            *(item for item, _ in INVALID.values()), _loan("L-ok-1"), _loan("L-ok-2", currency="USD"), drain=False
        )
    return local_stack


@pytest.mark.parametrize("loan_id", sorted(INVALID))
def test_each_invalid_item_gets_one_intake_record_with_its_reason(seeded: LocalStack, loan_id: str) -> None:
    with time_machine.travel(SEEDED_AT + dt.timedelta(minutes=1), tick=False):
        responses = drain_stream(seeded)

    assert responses == [{"batchItemFailures": []}]  # 8 writes, one batch (BatchSize 100)
    records = _records(seeded, loan_id)
    assert len(records) == 1
    record = records[0]
    assert record["outcome"] == "SUPPRESSED"
    assert record["stage"] == "intake"
    assert record["reason"] == INVALID[loan_id][1]
    assert record["record_id"].startswith("2026-11-20T00:00:00.000Z#")  # sorts by time; the day of the write
    assert "phone" not in record and "body" not in record


def test_valid_items_get_no_record_and_the_log_names_loan_and_reason_only(
    seeded: LocalStack, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    with time_machine.travel(SEEDED_AT + dt.timedelta(minutes=1), tick=False):
        drain_stream(seeded)

    for loan_id in VALID_IDS:
        assert _records(seeded, loan_id) == []
    expected = {loan_id: reason for loan_id, (_, reason) in INVALID.items()}
    warnings = [r for r in caplog.records if r.getMessage() == "invalid loan item written upstream"]
    assert {r.__dict__["loan_id"]: r.__dict__["reason"] for r in warnings} == expected
    logged = " ".join(str(value) for r in warnings for value in r.__dict__.values())
    assert "+8613800138000" not in logged and "张三" not in logged
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"InvalidLoanItems"' in line]
    assert sum(len(line["InvalidLoanItems"]) for line in metrics) == len(expected)


def test_redelivered_stream_records_write_the_same_records(seeded: LocalStack) -> None:
    with time_machine.travel(SEEDED_AT + dt.timedelta(minutes=1), tick=False):
        drain_stream(seeded)
    first = sorted(_all_records(seeded), key=lambda r: (r["loan_id"], r["record_id"]))

    seeded.stream_positions.clear()  # the poller lost its checkpoint: every record comes again
    with time_machine.travel(SEEDED_AT + dt.timedelta(hours=5), tick=False):
        again = drain_stream(seeded)

    assert again == [{"batchItemFailures": []}]
    assert sorted(_all_records(seeded), key=lambda r: (r["loan_id"], r["record_id"])) == first


def test_each_record_is_delivered_once(seeded: LocalStack) -> None:
    with time_machine.travel(SEEDED_AT + dt.timedelta(minutes=1), tick=False):
        assert len(drain_stream(seeded)) == 1
        assert drain_stream(seeded) == []  # nothing new since


def test_an_item_fixed_upstream_gets_no_further_record(seeded: LocalStack, seed_loans: Callable[..., None]) -> None:
    with time_machine.travel(SEEDED_AT + dt.timedelta(minutes=1), tick=False):
        drain_stream(seeded)
    with time_machine.travel(SEEDED_AT + dt.timedelta(days=1), tick=False):
        seed_loans(_loan("L-slashes", due_date="2026-11-16"), drain=False)  # upstream corrects the date: a MODIFY
        responses = drain_stream(seeded)

    assert responses == [{"batchItemFailures": []}]
    assert [r["reason"] for r in _records(seeded, "L-slashes")] == ["invalid_due_date"]


def test_an_item_broken_again_the_same_day_keeps_one_record_and_a_new_reason_gets_its_own(
    seeded: LocalStack, seed_loans: Callable[..., None]
) -> None:
    with time_machine.travel(SEEDED_AT + dt.timedelta(minutes=1), tick=False):
        drain_stream(seeded)
    with time_machine.travel(SEEDED_AT + dt.timedelta(hours=2), tick=False):
        seed_loans(_loan("L-lowercase", status="active"), drain=False)  # still invalid_status
        seed_loans(_loan("L-ok-1", currency="XYZ"), drain=False)  # a valid loan broken later
        drain_stream(seeded)

    lowercase = _records(seeded, "L-lowercase")
    assert [r["reason"] for r in lowercase] == ["invalid_status"]
    assert lowercase[0]["updated_at"].startswith("2026-11-20T05:15")  # the later write of that day
    assert [r["reason"] for r in _records(seeded, "L-ok-1")] == ["invalid_currency"]


def test_removed_items_are_ignored(seeded: LocalStack) -> None:
    with time_machine.travel(SEEDED_AT + dt.timedelta(minutes=1), tick=False):
        drain_stream(seeded)
        before = _all_records(seeded)
        loans = boto3.resource("dynamodb").Table(seeded.physical_id("LoansTable"))
        loans.delete_item(Key={"loan_id": "L-feb30"})
        loans.delete_item(Key={"loan_id": "L-ok-1"})
        responses = drain_stream(seeded)

    assert responses == [{"batchItemFailures": []}]
    assert len(_all_records(seeded)) == len(before)


def test_the_sample_event_records_its_broken_item(local_stack: LocalStack) -> None:
    event = json.loads((EVENTS_DIR / "dynamodb_stream_loan_changes.json").read_text(encoding="utf-8"))

    assert invoke(local_stack, "LoanChangesFunction", event) == {"batchItemFailures": []}

    records = _records(local_stack, "LN-20261116-0042")
    assert [(r["stage"], r["reason"], r["cycle"]) for r in records] == [("intake", "invalid_due_date", "2026/11/16")]
    assert _records(local_stack, "LN-20261101-0007") == []


def test_a_record_without_new_image_fails_and_is_reported(local_stack: LocalStack) -> None:
    event = json.loads((EVENTS_DIR / "dynamodb_stream_loan_changes.json").read_text(encoding="utf-8"))
    keys_only = event["Records"][0]
    del keys_only["dynamodb"]["NewImage"]
    keys_only["dynamodb"]["StreamViewType"] = "KEYS_ONLY"

    response = invoke(local_stack, "LoanChangesFunction", event)

    assert response == {"batchItemFailures": [{"itemIdentifier": keys_only["dynamodb"]["SequenceNumber"]}]}


def test_template_wires_the_stream_like_lambda_would_poll_it(local_stack: LocalStack) -> None:
    table = local_stack.template["Resources"]["LoansTable"]["Properties"]
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}
    (mapping,) = local_stack.stream_mappings.values()
    assert mapping.function_logical_id == "LoanChangesFunction"
    loans_table = boto3.client("dynamodb").describe_table(TableName=local_stack.physical_id("LoansTable"))["Table"]
    assert mapping.stream_arn == loans_table["LatestStreamArn"]
    properties = mapping.properties
    assert properties["StartingPosition"] == "TRIM_HORIZON"
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert properties["BisectBatchOnFunctionError"] is True
    assert properties["MaximumRetryAttempts"] >= 1
    assert properties["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["LoanChangesFailureQueue", "Arn"]
    }
    # moto would run a created stream mapping through Docker and empty the stream: it is not created.
    assert mapping.logical_id in local_stack.skipped


def test_existing_table_is_read_through_the_stream_named_by_the_parameter(
    moto_aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    dynamodb = boto3.client("dynamodb")
    table = dynamodb.create_table(
        TableName="upstream-loans",
        KeySchema=[{"AttributeName": "loan_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "loan_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )["TableDescription"]
    stack = deploy_stack(
        parameters={"ExistingLoansTableName": "upstream-loans", "ExistingLoansTableStreamArn": table["LatestStreamArn"]}
    )
    assert "LoansTable" not in stack.resources
    boto3.resource("dynamodb").Table("upstream-loans").put_item(Item=_loan("L-up", status="ACTIVE"))

    drain_stream(stack)

    assert [r["reason"] for r in _records(stack, "L-up")] == ["invalid_status"]


# ---------------------------------------------------------------- the planner shards woken (PlanningShards: 64)


def _pokes(stack: LocalStack) -> dict[str, int]:
    """The poke items' versions by sort key (`POKE#<shard>#64`, `POKE`): one per UpdateItem made on them."""
    table = boto3.resource("dynamodb").Table(stack.physical_id("StateTable"))
    items = table.query(KeyConditionExpression=Key("pk").eq("PLANNER"), ConsistentRead=True)["Items"]
    return {str(i["sk"]): int(i["version"]) for i in items if str(i["sk"]).startswith("POKE")}


def _shard_poke(borrower_id: str) -> str:
    return f"POKE#{bucket_of(borrower_id) % 64}#64"


def test_overdue_loans_written_in_one_batch_wake_their_shard_once(seeded: LocalStack) -> None:
    with time_machine.travel(SEEDED_AT + dt.timedelta(minutes=1), tick=False):
        drain_stream(seeded)

    # L-ok-1 and L-ok-2 (B-1) are overdue; the invalid items, L-nophone included (indexed, unreachable), wake nobody.
    assert _pokes(seeded) == {_shard_poke("B-1"): 1}


def test_a_bulk_import_of_overdue_loans_pokes_each_shard_once_per_batch(
    local_stack: LocalStack, seed_loans: Callable[..., None]
) -> None:
    borrowers = [f"B-{n}" for n in range(100)]
    with time_machine.travel(SEEDED_AT, tick=False):
        seed_loans(*(_loan(f"L-bulk-{n}", borrower_id=b) for n, b in enumerate(borrowers)), drain=False)
        assert len(drain_stream(local_stack)) == 1  # one batch (BatchSize 100)

    shards = {_shard_poke(b) for b in borrowers}
    assert _pokes(local_stack) == dict.fromkeys(shards, 1)  # one UpdateItem per shard, not one per loan
    assert len(shards) < len(borrowers)


def test_loans_due_later_closed_or_invalid_wake_nobody(
    local_stack: LocalStack, seed_loans: Callable[..., None]
) -> None:
    with time_machine.travel(SEEDED_AT, tick=False):
        seed_loans(
            _loan("L-later", due_date="2026-12-20"),  # a new loan due in 30 days: the common case
            _loan("L-paid", status="PAID"),
            *(item for item, _ in INVALID.values()),
            _loan("L-escalated", due_date="2026-09-01"),  # past the SMS ladder: escalation's
        )

    assert _pokes(local_stack) == {}


def test_a_failed_poke_fails_nothing_the_batch_is_applied_and_the_shard_left_to_its_wake(
    local_stack: LocalStack, seed_loans: Callable[..., None]
) -> None:
    refused: list[str] = []

    def refuse_a_poke(params: dict[str, Any], **_: Any) -> None:
        if params["Key"]["pk"]["S"] == "PLANNER":
            refused.append(params["Key"]["sk"]["S"])
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "throttled"}}, "UpdateItem")

    events = aws.client("dynamodb").meta.events
    events.register("before-parameter-build.dynamodb.UpdateItem", refuse_a_poke, unique_id="refuse-a-poke")
    try:
        with time_machine.travel(SEEDED_AT, tick=False):
            seed_loans(_loan("L-1"), drain=False)
            assert drain_stream(local_stack) == [{"batchItemFailures": []}]  # applied, not retried
    finally:
        events.unregister("before-parameter-build.dynamodb.UpdateItem", unique_id="refuse-a-poke")

    assert refused == [_shard_poke("B-1")]
    assert _indexed(local_stack) == ["L-1"] and _pokes(local_stack) == {}


def _indexed(stack: LocalStack) -> list[str]:
    table = boto3.resource("dynamodb").Table(stack.physical_id("StateTable"))
    return sorted(str(i["loan_id"]) for i in table.scan(IndexName=LADDER_INDEX, ConsistentRead=False)["Items"])


# ---------------------------------------------------------------- drain_stream's own rules (a stand-in consumer)


@pytest.fixture
def stand_in(local_stack: LocalStack) -> LocalStack:
    fake_consumer.CALLS.clear()
    return dataclasses.replace(
        local_stack, code_uris={**local_stack.code_uris, "LoanChangesFunction": "tests/integration/fixtures_stream/"}
    )


def _write(stack: LocalStack, *commands: str) -> None:
    table = boto3.resource("dynamodb").Table(stack.physical_id("LoansTable"))
    for n, command in enumerate(commands):
        table.put_item(Item={"loan_id": f"C-{n}", "command": command})


def _delivered(call: dict[str, Any]) -> list[str]:
    return [r["dynamodb"]["NewImage"]["loan_id"]["S"] for r in call["Records"]]


def test_batches_follow_the_mapping_batch_size_in_lambda_event_shape(stand_in: LocalStack) -> None:
    mappings = {**stand_in.stream_mappings}
    (logical_id, mapping) = next(iter(mappings.items()))
    small = dataclasses.replace(mapping, properties={**mapping.properties, "BatchSize": 2})
    stack = dataclasses.replace(stand_in, stream_mappings={logical_id: small})
    _write(stack, "ok", "ok", "ok")

    drain_stream(stack)

    assert [_delivered(call) for call in fake_consumer.CALLS] == [["C-0", "C-1"], ["C-2"]]
    record = fake_consumer.CALLS[0]["Records"][0]
    assert set(record) == {
        "eventID",
        "eventName",
        "eventVersion",
        "eventSource",
        "awsRegion",
        "dynamodb",
        "eventSourceARN",
    }
    assert record["eventName"] == "INSERT" and record["eventSource"] == "aws:dynamodb"
    assert record["eventSourceARN"] == mapping.stream_arn
    assert set(record["dynamodb"]) == {
        "ApproximateCreationDateTime",
        "Keys",
        "NewImage",
        "SequenceNumber",
        "SizeBytes",
        "StreamViewType",
    }
    assert isinstance(record["dynamodb"]["ApproximateCreationDateTime"], int)
    assert record["dynamodb"]["Keys"] == {"loan_id": {"S": "C-0"}}


def test_a_reported_failure_resumes_the_shard_at_that_record(stand_in: LocalStack) -> None:
    _write(stand_in, "ok", "fail", "ok")
    retries = int(next(iter(stand_in.stream_mappings.values())).properties["MaximumRetryAttempts"])

    drain_stream(stand_in)

    deliveries = [_delivered(call) for call in fake_consumer.CALLS]
    # The first attempt has all three; each retry starts at the failed record (C-0 is done).
    assert deliveries == [["C-0", "C-1", "C-2"]] + [["C-1", "C-2"]] * retries
    assert drain_stream(stand_in) == []  # retries exhausted: the shard moved on


def test_exhausted_retries_send_the_batch_range_to_the_failure_queue(stand_in: LocalStack) -> None:
    _write(stand_in, "ok", "raise")

    drain_stream(stand_in, raise_on_error=False)

    sqs = boto3.client("sqs")
    messages = sqs.receive_message(QueueUrl=stand_in.queue_url("LoanChangesFailureQueue"), MaxNumberOfMessages=10)
    (message,) = messages["Messages"]
    failure = DynamoDBStreamLambdaOnFailureDestinationModel.model_validate_json(message["Body"])
    mapping = next(iter(stand_in.stream_mappings.values()))
    assert failure.request_context.condition == "RetryAttemptsExhausted"
    assert failure.request_context.approximate_invoke_count == int(mapping.properties["MaximumRetryAttempts"]) + 1
    assert failure.response_context.function_error == "Unhandled"
    assert failure.ddb_stream_batch_info.stream_arn == mapping.stream_arn
    assert failure.ddb_stream_batch_info.batch_size == 2


def test_a_raising_handler_stops_the_drain_and_its_batch_comes_again(stand_in: LocalStack) -> None:
    _write(stand_in, "raise")

    with pytest.raises(RuntimeError, match="asked to raise"):
        drain_stream(stand_in)
    with pytest.raises(RuntimeError, match="asked to raise"):
        drain_stream(stand_in)

    assert [_delivered(call) for call in fake_consumer.CALLS] == [["C-0"], ["C-0"]]


def test_an_empty_failure_identifier_fails_the_whole_batch(stand_in: LocalStack) -> None:
    _write(stand_in, "ok", "bad_identifier")

    drain_stream(stand_in, max_batches=2)

    assert [_delivered(call) for call in fake_consumer.CALLS] == [["C-0", "C-1"], ["C-0", "C-1"]]


def test_a_function_without_stream_mapping_is_refused(local_stack: LocalStack) -> None:
    with pytest.raises(LocalStackError, match="no DynamoDB stream mapping"):
        drain_stream(local_stack, "PlanRemindersFunction")


def test_stream_drains_over_http(moto_server: str) -> None:
    assert not botocore_stubber.enabled  # every call below crosses the socket
    stack = deploy_stack()
    loans = boto3.resource("dynamodb").Table(stack.physical_id("LoansTable"))
    loans.put_item(Item=_loan("L-http", due_date="2026/11/16"))

    assert drain_stream(stack) == [{"batchItemFailures": []}]

    assert [r["reason"] for r in _records(stack, "L-http")] == ["invalid_due_date"]
