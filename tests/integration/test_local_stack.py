"""The local runner: template.yaml deployed into moto in-process, functions invoked in-process."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import time_machine
from aws_lambda_powertools.utilities.parser.models import SqsModel

from dunning.sharding import INDEX_PARTITIONS
from dunning_tools.local import (
    FakeLambdaContext,
    LocalStack,
    LocalStackError,
    cli_invoke,
    deploy_stack,
    drain_queue,
    invoke,
)
from dunning_tools.local.server import attach_stack
from tests.integration.fixtures_handlers import app as fake_consumer

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTRACT_RESOURCES = {
    "LoansTable": "AWS::DynamoDB::Table",
    "DeliveriesTable": "AWS::DynamoDB::Table",
    "ReminderQueue": "AWS::SQS::Queue",
    "LoanEventsBus": "AWS::Events::EventBus",
    "ReportsBucket": "AWS::S3::Bucket",
    "PlanRemindersFunction": "AWS::Lambda::Function",
    "SendRemindersFunction": "AWS::Lambda::Function",
}


@pytest.fixture
def stack_with_fake_consumer(local_stack: LocalStack) -> Iterator[LocalStack]:
    """The stack, with SendRemindersFunction's code replaced by the scriptable fake consumer."""
    fake_consumer.CALLS.clear()
    yield dataclasses.replace(
        local_stack,
        code_uris={**local_stack.code_uris, "SendRemindersFunction": "tests/integration/fixtures_handlers/"},
    )
    fake_consumer.CALLS.clear()


def _send(stack: LocalStack, *bodies: dict[str, Any]) -> list[str]:
    sqs = boto3.client("sqs")
    url = stack.queue_url("ReminderQueue")
    return [sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))["MessageId"] for body in bodies]


def _queue_depth(stack: LocalStack, logical_id: str) -> int:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=stack.queue_url(logical_id),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def _max_receive_count(stack: LocalStack) -> int:
    return int(stack.template["Resources"]["ReminderQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"])


# ---------------------------------------------------------------- the deployed template


def test_contract_resources_exist_with_their_types(local_stack: LocalStack) -> None:
    for logical_id, resource_type in CONTRACT_RESOURCES.items():
        assert local_stack.resources[logical_id].resource_type == resource_type
        assert local_stack.physical_id(logical_id), logical_id


def test_reminder_queue_redrives_to_its_dead_letter_queue(local_stack: LocalStack) -> None:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=local_stack.queue_url("ReminderQueue"), AttributeNames=["RedrivePolicy"]
    )["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == local_stack.queue_arn("ReminderDeadLetterQueue")
    assert int(redrive["maxReceiveCount"]) >= 1


def test_deliveries_table_has_message_id_index_and_ttl(local_stack: LocalStack) -> None:
    dynamodb = boto3.client("dynamodb")
    table = dynamodb.describe_table(TableName=local_stack.physical_id("DeliveriesTable"))["Table"]
    indexes = {index["IndexName"]: index for index in table.get("GlobalSecondaryIndexes", [])}
    assert indexes["MessageIdIndex"]["KeySchema"] == [{"AttributeName": "message_id", "KeyType": "HASH"}]
    assert {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]} == {"loan_id": "HASH", "record_id": "RANGE"}
    ttl = dynamodb.describe_time_to_live(TableName=local_stack.physical_id("DeliveriesTable"))
    assert ttl["TimeToLiveDescription"] == {"AttributeName": "expires_at", "TimeToLiveStatus": "ENABLED"}


@pytest.mark.parametrize("function", ["PlanRemindersFunction", "SendRemindersFunction"])
def test_functions_environment_names_the_stacks_real_resources(local_stack: LocalStack, function: str) -> None:
    environment = local_stack.function_environment(function)
    assert environment["LOANS_TABLE"] == local_stack.physical_id("LoansTable")
    assert environment["DELIVERIES_TABLE"] == local_stack.physical_id("DeliveriesTable")
    assert environment["REMINDER_QUEUE_URL"] == local_stack.queue_url("ReminderQueue")
    assert environment["EVENT_BUS_NAME"] == local_stack.physical_id("LoanEventsBus")
    assert environment["REPORTS_BUCKET"] == local_stack.physical_id("ReportsBucket")
    assert all(isinstance(value, str) for value in environment.values())


def test_outputs_name_the_same_resources(local_stack: LocalStack) -> None:
    assert local_stack.outputs["LoansTableName"] == local_stack.physical_id("LoansTable")
    assert local_stack.outputs["ReminderQueueUrl"] == local_stack.queue_url("ReminderQueue")
    assert local_stack.outputs["LoanEventsBusName"] == local_stack.physical_id("LoanEventsBus")
    assert not any(key.startswith("LocalRunner") for key in local_stack.outputs)


def test_event_source_mappings_are_disabled_but_keep_partial_batch_reporting(local_stack: LocalStack) -> None:
    mappings = boto3.client("lambda").list_event_source_mappings(EventSourceArn=local_stack.queue_arn("ReminderQueue"))[
        "EventSourceMappings"
    ]
    assert mappings
    assert {m["State"] for m in mappings} == {"Disabled"}
    assert all("ReportBatchItemFailures" in m.get("FunctionResponseTypes", []) for m in mappings)


def test_handler_modules_come_from_code_uri_and_handler(local_stack: LocalStack) -> None:
    assert local_stack.function_handler_module("PlanRemindersFunction") == "functions.plan_reminders.app"
    assert local_stack.function_handler("SendRemindersFunction") == ("functions.send_reminders.app", "lambda_handler")
    with pytest.raises(LocalStackError):
        local_stack.function_handler_module("LoansTable")


def test_a_stack_attached_later_is_the_stack_deploy_built(local_stack: LocalStack) -> None:
    # What `dunning local` commands get from the running server: the same handle, state machines included
    # (an attached stack runs the schedule as the deploying process does).
    attached = attach_stack(REPO_ROOT / "template.yaml", {}, local_stack.name, local_stack.region)

    assert attached == local_stack
    assert attached.state_machines and attached.state_machines == local_stack.state_machines


def test_deploy_refuses_to_run_without_moto(aws_credentials: None) -> None:
    with pytest.raises(LocalStackError, match="needs moto"):
        deploy_stack()


def test_stack_names_and_parameters_are_passed_through(moto_aws: None) -> None:
    stack = deploy_stack(REPO_ROOT / "template.yaml", {"LogLevel": "DEBUG"}, stack_name="dunning-other")
    assert stack.name == "dunning-other"
    assert stack.function_environment("PlanRemindersFunction")["POWERTOOLS_LOG_LEVEL"] == "DEBUG"
    assert stack.physical_id("LoanEventsBus").startswith("dunning-other")


def _trace_disabled(stack: LocalStack) -> set[str]:
    """POWERTOOLS_TRACE_DISABLED of every function, as deployed (moto keeps no TracingConfig from a stack)."""
    return {
        stack.function_environment(f).get("POWERTOOLS_TRACE_DISABLED", "")
        for f in stack.logical_ids("AWS::Lambda::Function")
    }


def test_functions_trace_by_default(local_stack: LocalStack) -> None:
    assert _trace_disabled(local_stack) == {"false"}


def test_the_tracing_parameter_turns_every_functions_tracer_off(moto_aws: None) -> None:
    untraced = deploy_stack(REPO_ROOT / "template.yaml", {"Tracing": "PassThrough"}, stack_name="dunning-untraced")

    assert _trace_disabled(untraced) == {"true"}


def test_bus_refs_and_lambda_targets_are_made_moto_safe(moto_aws: None, tmp_path: Path) -> None:
    """`!Ref` of a bus and a rule targeting a function both break moto unless the runner rewrites them."""
    (tmp_path / "fn").mkdir()
    (tmp_path / "fn" / "app.py").write_text("def lambda_handler(event, context):\n    return event\n")
    (tmp_path / "template.yaml").write_text(
        """
Transform: AWS::Serverless-2016-10-31
Resources:
  Bus:
    Type: AWS::Events::EventBus
    Properties: {Name: !Sub "${AWS::StackName}-bus"}
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn/
      Handler: app.lambda_handler
      Runtime: python3.13
      Environment: {Variables: {BUS: !Ref Bus, BUS_ARN: !Sub "arn:aws:events:::event-bus/${Bus}"}}
      Events:
        Paid:
          Type: EventBridgeRule
          Properties:
            EventBusName: !Ref Bus
            Pattern: {detail-type: [PaymentReceived]}
"""
    )
    stack = deploy_stack(tmp_path / "template.yaml", stack_name="probe")

    assert stack.function_environment("Fn") == {"BUS": "probe-bus", "BUS_ARN": "arn:aws:events:::event-bus/probe-bus"}
    assert stack.rule_targets == {"FnPaid": ("Fn",)}
    entry = {"Source": "lender", "DetailType": "PaymentReceived", "Detail": "{}", "EventBusName": "probe-bus"}
    assert boto3.client("events").put_events(Entries=[entry])["FailedEntryCount"] == 0


def test_missing_code_folder_is_a_clear_error(moto_aws: None, tmp_path: Path) -> None:
    (tmp_path / "template.yaml").write_text(
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n"
        "    Properties: {CodeUri: nowhere/, Handler: app.lambda_handler, Runtime: python3.13}\n"
    )
    with pytest.raises(LocalStackError, match="nowhere"):
        deploy_stack(tmp_path / "template.yaml")


# ---------------------------------------------------------------- invoke


def test_invoke_runs_handler_with_the_functions_environment_then_restores_it(
    stack_with_fake_consumer: LocalStack,
) -> None:
    stack = stack_with_fake_consumer
    before = dict(os.environ)

    assert invoke(stack, "SendRemindersFunction", {"Records": []}) == {"batchItemFailures": []}

    seen = fake_consumer.CALLS[-1]["environment"]
    assert seen["DELIVERIES_TABLE"] == stack.physical_id("DeliveriesTable")
    assert seen["AWS_LAMBDA_FUNCTION_NAME"] == stack.physical_id("SendRemindersFunction")
    assert seen["AWS_REGION"] == stack.region
    assert seen["AWS_ACCESS_KEY_ID"] == before["AWS_ACCESS_KEY_ID"]  # the caller's credentials stay
    assert dict(os.environ) == before


def test_invoke_passes_a_lambda_like_context(stack_with_fake_consumer: LocalStack) -> None:
    stack = stack_with_fake_consumer
    invoke(stack, "SendRemindersFunction", {"Records": []})
    invoke(stack, "SendRemindersFunction", {"Records": []})

    first, second = (call["context"] for call in fake_consumer.CALLS)
    configuration = stack.function_configuration("SendRemindersFunction")
    assert first.function_name == configuration["FunctionName"]
    assert first.invoked_function_arn == configuration["FunctionArn"]
    assert first.memory_limit_in_mb == configuration["MemorySize"]
    assert 0 < first.get_remaining_time_in_millis() <= configuration["Timeout"] * 1000
    assert first.aws_request_id != second.aws_request_id


def test_invoke_refuses_a_result_lambda_could_not_serialise(stack_with_fake_consumer: LocalStack) -> None:
    event = {"Records": [{"messageId": "m-1", "body": json.dumps({"decimal": True})}]}
    with pytest.raises(LocalStackError, match="cannot serialise"):
        invoke(stack_with_fake_consumer, "SendRemindersFunction", event)


def test_invoke_gives_the_handler_its_own_copy_of_the_event(stack_with_fake_consumer: LocalStack) -> None:
    event: dict[str, Any] = {"Records": []}
    invoke(stack_with_fake_consumer, "SendRemindersFunction", event)
    assert fake_consumer.CALLS[0]["event"] == event
    assert fake_consumer.CALLS[0]["event"] is not event


def test_cli_invoke_prints_the_real_planners_result(aws_credentials: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_invoke("PlanRemindersFunction", REPO_ROOT / "events" / "scheduled_plan.json") == 0

    captured = capsys.readouterr()
    report = json.loads(captured.out)  # stdout holds the result alone
    # A throwaway stack's book is empty: one complete run over every shard at the event's time, the
    # whole ladder index read (one page per partition), nothing enqueued.
    assert report["now"] == "2026-11-28T02:00:00+00:00"
    assert (report["shard"], report["shards"], report["complete"], report["cursor"]) == (None, 1, True, None)
    assert report["pages_read"] == INDEX_PARTITIONS
    assert (report["loans_read"], report["jobs_enqueued"], report["lines_enqueued"]) == (0, 0, 0)
    assert '"JobsEnqueued":[0.0]' in captured.err  # the function's metrics go to stderr, as sam local prints them


def test_cli_invoke_reports_a_raising_handler_with_exit_code_1(
    aws_credentials: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "boom_fn").mkdir()
    (tmp_path / "boom_fn" / "app.py").write_text("def lambda_handler(event, context):\n    raise ValueError('boom')\n")
    (tmp_path / "template.yaml").write_text(
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  Boom:\n    Type: AWS::Serverless::Function\n"
        "    Properties: {CodeUri: boom_fn/, Handler: app.lambda_handler, Runtime: python3.13}\n"
    )
    (tmp_path / "event.json").write_text("{}")
    monkeypatch.syspath_prepend(str(tmp_path))

    assert cli_invoke("Boom", tmp_path / "event.json", template_path=tmp_path / "template.yaml") == 1
    assert "ValueError: boom" in capsys.readouterr().err


def test_lambda_context_fixture(lambda_context: FakeLambdaContext) -> None:
    assert 59_000 < lambda_context.get_remaining_time_in_millis() <= 60_000
    assert lambda_context.invoked_function_arn.endswith(":function:dunning-test-function")


# ---------------------------------------------------------------- drain_queue


def test_drain_builds_real_shaped_sqs_events(stack_with_fake_consumer: LocalStack) -> None:
    stack = stack_with_fake_consumer
    boto3.client("sqs").send_message(
        QueueUrl=stack.queue_url("ReminderQueue"),
        MessageBody="{}",
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "reminder"}},
    )

    drain_queue(stack)

    event = fake_consumer.CALLS[0]["event"]
    SqsModel.model_validate(event)  # what Powertools' parser accepts at the handler's edge
    record = event["Records"][0]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == stack.queue_arn("ReminderQueue")
    assert record["awsRegion"] == stack.region
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"]["kind"]["stringValue"] == "reminder"
    assert record["messageAttributes"]["kind"]["dataType"] == "String"


def test_drain_deletes_successes_and_retries_reported_failures_until_the_dlq(
    stack_with_fake_consumer: LocalStack,
) -> None:
    stack = stack_with_fake_consumer
    _, failing, _ = _send(stack, {}, {"fail": True}, {})

    responses = drain_queue(stack)

    # The failing job is tried maxReceiveCount times, then SQS (moto) moves it to the DLQ.
    assert len(responses) == _max_receive_count(stack)
    assert responses[0]["batchItemFailures"] == [{"itemIdentifier": failing}]
    assert len(fake_consumer.CALLS[0]["event"]["Records"]) == 3
    receive_counts = [
        call["event"]["Records"][0]["attributes"]["ApproximateReceiveCount"] for call in fake_consumer.CALLS[1:]
    ]
    assert receive_counts == [str(n) for n in range(2, _max_receive_count(stack) + 1)]
    assert _queue_depth(stack, "ReminderQueue") == 0
    dead = boto3.client("sqs").receive_message(QueueUrl=stack.queue_url("ReminderDeadLetterQueue"))["Messages"]
    assert [m["MessageId"] for m in dead] == [failing]


def test_drain_retries_under_a_frozen_clock(stack_with_fake_consumer: LocalStack) -> None:
    stack = stack_with_fake_consumer
    with time_machine.travel(dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC), tick=False):
        _send(stack, {"fail": True})
        responses = drain_queue(stack)
    assert len(responses) == _max_receive_count(stack)
    assert _queue_depth(stack, "ReminderDeadLetterQueue") == 1


def test_drain_sends_the_whole_batch_back_on_an_invalid_item_identifier(stack_with_fake_consumer: LocalStack) -> None:
    stack = stack_with_fake_consumer
    _send(stack, {}, {"bad_identifier": True})

    responses = drain_queue(stack, max_batches=1)

    assert len(responses) == 1
    assert _queue_depth(stack, "ReminderQueue") == 2


def test_drain_raises_a_handler_error_and_leaves_the_batch_on_the_queue(stack_with_fake_consumer: LocalStack) -> None:
    stack = stack_with_fake_consumer
    _send(stack, {}, {"raise": True})

    with pytest.raises(RuntimeError, match="asked to raise"):
        drain_queue(stack)

    assert _queue_depth(stack, "ReminderQueue") == 2
    received = boto3.client("sqs").receive_message(QueueUrl=stack.queue_url("ReminderQueue"), MaxNumberOfMessages=10)
    assert len(received["Messages"]) == 2  # visible again at once, not after the visibility timeout


def test_drain_can_keep_going_past_handler_errors(stack_with_fake_consumer: LocalStack) -> None:
    stack = stack_with_fake_consumer
    _send(stack, {"raise": True})

    responses = drain_queue(stack, raise_on_error=False)

    assert len(responses) == _max_receive_count(stack)
    assert all(isinstance(response, RuntimeError) for response in responses)
    assert _queue_depth(stack, "ReminderDeadLetterQueue") == 1


def test_drain_of_an_empty_queue_invokes_nothing(stack_with_fake_consumer: LocalStack) -> None:
    assert drain_queue(stack_with_fake_consumer) == []
    assert fake_consumer.CALLS == []
