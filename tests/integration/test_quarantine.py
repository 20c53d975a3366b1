"""Nothing rejected is lost: every function that refuses input keeps it in QuarantineQueue, and `dunning replay`.

On the moto stack: each quarantining function puts what it rejected there exactly as received, with
function, kind, reason (never an input value) and received_at, and changes nothing; a failed quarantine
write fails the invocation (so Lambda's retries and FailedInvocationsQueue keep the event); a replay
leaves what is still refused and deletes what the function now applies.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import time_machine
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import CloudWatchLogsModel
from botocore.awsrequest import AWSResponse
from botocore.response import StreamingBody

from dunning.dal import aws
from dunning.dal.quarantine import QuarantineWriteError
from dunning.handlers import REPLAY_MARKER
from dunning.models.policy import DEFAULT_POLICY_PATH
from dunning_tools import cli
from dunning_tools.local import LocalStack, deploy_stack, invoke
from dunning_tools.local.replay import INVOKE_CONFIG, LocalStackTarget, QuarantinedMessage, ReplayResult, replay
from dunning_tools.local.sample_events import (
    SAMPLE_SUCCESS_MESSAGE_ID,
    SUCCESS_GROUP,
    cloudwatch_logs_event,
    sms_delivery_log,
)
from tests.integration.after_sms_helpers import put_record, records
from tests.integration.borrower_helpers import (
    PHONE,
    event,
    local,
    product_state,
    put_loan,
    send_event,
    send_reply,
    sms_sent,
    sns_event,
    table_items,
)
from tests.integration.test_faults import emf_metrics

POLICY_PARAMETER = "/dunning/quarantine-test/policy"


def quarantined(stack: LocalStack, at: dt.datetime) -> list[QuarantinedMessage]:
    """What the quarantine holds at `at`, read the way `dunning replay` lists it (left in place).

    At the tests' own clock: moto caps a message's visibility at 12 h from its (frozen) send time.
    """
    with time_machine.travel(at, tick=False):
        return [result.message for result in replay(LocalStackTarget(stack), apply=False)]


def replayed(stack: LocalStack, at: dt.datetime) -> list[ReplayResult]:
    with time_machine.travel(at, tick=False):
        return replay(LocalStackTarget(stack), apply=True)


def queue_depth(stack: LocalStack, queue: str = "QuarantineQueue") -> int:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=stack.queue_url(queue), AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


# ---------------------------------------------------------------- each function quarantines what it rejects


def test_a_malformed_loan_event_is_kept_as_received_with_its_reason_and_changes_nothing(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    put_loan(local_stack)
    malformed = event("loan_event_malformed.json")

    reply = send_event(local_stack, malformed, local(20, 11))

    assert reply["status"] == "rejected"
    (kept,) = quarantined(local_stack, local(20, 11))
    assert (kept.function, kept.kind) == ("LoanEventsFunction", "loan_event")
    assert "detail.amount" in kept.reason and "detail.paid_at" in kept.reason
    assert "abc" not in kept.reason and "11:14" not in kept.reason  # paths and messages, never the values
    assert json.loads(kept.body) == malformed
    assert kept.received_at == local(20, 11)
    assert product_state(local_stack) == [] and table_items(local_stack, "DeliveriesTable") == []
    assert emf_metrics(capsys.readouterr().out)["MalformedEvents"] == 1


def test_a_malformed_reply_is_kept_alone_and_the_other_replies_are_handled(local_stack: LocalStack) -> None:
    good = sns_event("inbound_sms_stop.json")
    bad = json.loads(json.dumps(good))
    bad["Records"][0]["Sns"]["Message"] = json.dumps({"originationNumber": "13800138000", "messageBody": "STOP"})

    reply = send_reply(local_stack, {"Records": bad["Records"] + good["Records"]}, local(17, 9))

    assert reply == {"results": ["rejected", "opted_out"], "rejected": 1}
    (kept,) = quarantined(local_stack, local(17, 9))
    assert (kept.function, kept.kind) == ("InboundSmsFunction", "inbound_sms")
    assert "originationNumber" in kept.reason and "13800138000" not in kept.reason
    assert json.loads(kept.body) == {"Records": bad["Records"]}  # the record exactly as SNS delivered it
    assert len(sms_sent(PHONE)) == 1  # the good STOP was applied and confirmed

    not_sns = send_reply(local_stack, {"Records": [{"EventSource": "aws:sqs"}]}, local(17, 9))
    assert not_sns["status"] == "rejected"
    assert sorted(m.kind for m in quarantined(local_stack, local(17, 9))) == ["inbound_sms", "sns_event"]


def test_a_malformed_delivery_log_is_kept_alone_and_the_rest_of_the_batch_applied(local_stack: LocalStack) -> None:
    sent_at = dt.datetime(2026, 12, 12, 2, 0, 30, tzinfo=dt.UTC)
    put_record(
        local_stack, "L-A", sent_at, cycle="2026-11-30", stage="follow_up_12", message_id=SAMPLE_SUCCESS_MESSAGE_ID
    )
    broken = '{"notification": {}, "delivery": {"destination": "+8613800138000"}, "status": "SUCCESS"}'
    batch = cloudwatch_logs_event(SUCCESS_GROUP, [broken, sms_delivery_log(SAMPLE_SUCCESS_MESSAGE_ID, success=True)])

    reply = invoke(local_stack, "RecordDeliveryFunction", batch)

    assert reply["malformed"] == 1 and reply["rejected"] == 1 and reply["records"] == {"applied": 1}
    assert records(local_stack, "L-A")[0]["outcome"] == "DELIVERED"
    (kept,) = quarantined(local_stack, dt.datetime.now(dt.UTC))
    assert (kept.function, kept.kind) == ("RecordDeliveryFunction", "delivery_log")
    assert "notification.messageId" in kept.reason and "+86" not in kept.reason
    original = parse(event=batch, model=CloudWatchLogsModel).awslogs.decoded_data
    alone = parse(event=json.loads(kept.body), model=CloudWatchLogsModel).awslogs.decoded_data
    assert alone.logEvents == original.logEvents[:1]  # id, timestamp and the line exactly as received
    assert (alone.logGroup, alone.logStream, alone.owner) == (original.logGroup, original.logStream, original.owner)

    undecodable = invoke(local_stack, "RecordDeliveryFunction", {"awslogs": {"data": "bm90IGd6aXA="}})
    assert undecodable["status"] == "rejected"
    assert sorted(m.kind for m in quarantined(local_stack, dt.datetime.now(dt.UTC))) == [
        "cloudwatch_logs",
        "delivery_log",
    ]


@pytest.mark.parametrize("function", ["PlanRemindersFunction", "EscalateFunction", "BureauReportFunction"])
def test_a_malformed_scheduled_event_is_kept_and_runs_nothing(local_stack: LocalStack, function: str) -> None:
    put_loan(local_stack, due_date="2026-10-01")
    scheduled = json.loads(json.dumps(event("scheduled_plan.json")))
    scheduled["time"] = "yesterday"

    reply = invoke(local_stack, function, scheduled)

    assert reply["status"] == "rejected"
    (kept,) = quarantined(local_stack, dt.datetime.now(dt.UTC))
    assert (kept.function, kept.kind) == (function, "scheduled_event")
    assert kept.reason.startswith("time:") and "yesterday" not in kept.reason
    assert json.loads(kept.body) == scheduled
    assert queue_depth(local_stack, "ReminderQueue") == 0
    assert product_state(local_stack) == [] and table_items(local_stack, "DeliveriesTable") == []


# ---------------------------------------------------------------- pause dates within the policy maximum

TODAY = local(17, 11).date()  # the business date the events below arrive on


@pytest.mark.parametrize(
    ("sample", "field", "date", "why"),
    [
        ("loan_event_promise_to_pay.json", "promised_date", "2999-12-31", "max_pause_days (90)"),
        ("loan_event_promise_to_pay.json", "promised_date", str(TODAY + dt.timedelta(days=91)), "max_pause_days (90)"),
        ("loan_event_grace_period.json", "until", str(TODAY + dt.timedelta(days=365)), "max_pause_days (90)"),
        ("loan_event_grace_period.json", "until", str(TODAY - dt.timedelta(days=1)), "already past"),
        ("loan_event_promise_to_pay.json", "promised_date", str(TODAY - dt.timedelta(days=1)), "already past"),
    ],
)
def test_a_pause_beyond_the_policy_maximum_or_in_the_past_is_kept_and_changes_nothing(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str], sample: str, field: str, date: str, why: str
) -> None:
    put_loan(local_stack)
    refused = event(sample, **{field: date})

    reply = send_event(local_stack, refused, local(17, 11))

    assert reply["status"] == "rejected" and f"detail.{field}" in reply["error"] and why in reply["error"]
    (kept,) = quarantined(local_stack, local(17, 11))
    assert kept.kind == "loan_event" and kept.reason == reply["error"] and date not in kept.reason
    assert json.loads(kept.body) == refused
    assert product_state(local_stack) == []
    assert emf_metrics(capsys.readouterr().out)["MalformedEvents"] == 1


@pytest.mark.parametrize("days_ahead", [0, 90])
def test_a_pause_from_today_up_to_the_maximum_is_applied(local_stack: LocalStack, days_ahead: int) -> None:
    put_loan(local_stack)
    promise = event("loan_event_promise_to_pay.json", promised_date=str(TODAY + dt.timedelta(days=days_ahead)))

    assert send_event(local_stack, promise, local(17, 11))["applied"] is True
    assert quarantined(local_stack, local(17, 11)) == []


# ---------------------------------------------------------------- replay


def test_replay_leaves_a_still_malformed_event_where_it_is_without_a_copy(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    send_event(local_stack, event("loan_event_malformed.json"), local(20, 11))
    (before,) = quarantined(local_stack, local(20, 11))
    capsys.readouterr()

    (result,) = replayed(local_stack, local(20, 11, 5))

    assert result.outcome == "still_rejected" and "detail.amount" in result.detail
    (after,) = quarantined(local_stack, local(20, 11, 5))  # the same message: a refusal is not quarantined again
    assert after.message_id == before.message_id
    assert emf_metrics(capsys.readouterr().out)["MalformedEvents"] == 0  # nor counted again
    assert product_state(local_stack) == []


@pytest.fixture
def policy_stack(moto_aws: None) -> LocalStack:
    """The stack reading its policy from SSM (PolicyParameterName), seeded with the bundled policy."""
    boto3.client("ssm").put_parameter(
        Name=POLICY_PARAMETER, Type="String", Value=DEFAULT_POLICY_PATH.read_text(encoding="utf-8")
    )
    return deploy_stack(parameters={"PolicyParameterName": POLICY_PARAMETER})


def test_replay_applies_and_deletes_once_the_cause_is_fixed_and_leaves_the_rest(policy_stack: LocalStack) -> None:
    with time_machine.travel(local(17, 11), tick=False):  # the stream's LoanChangesFunction reads the policy too
        put_loan(policy_stack)
    promised = TODAY + dt.timedelta(days=120)
    send_event(policy_stack, event("loan_event_promise_to_pay.json", promised_date=str(promised)), local(17, 11))
    send_event(policy_stack, event("loan_event_malformed.json"), local(17, 11))
    assert len(quarantined(policy_stack, local(17, 11))) == 2 and product_state(policy_stack) == []

    # The fix: a policy allowing longer pauses, which the functions read within 5 minutes.
    policy = DEFAULT_POLICY_PATH.read_text(encoding="utf-8").replace("max_pause_days: 90", "max_pause_days: 150")
    boto3.client("ssm").put_parameter(Name=POLICY_PARAMETER, Type="String", Value=policy, Overwrite=True)
    with time_machine.travel(local(17, 11, 10), tick=False):
        results = replay(LocalStackTarget(policy_stack), apply=True)

    assert sorted((r.message.kind, r.outcome) for r in results) == [
        ("loan_event", "applied"),
        ("loan_event", "still_rejected"),
    ]
    (left,) = quarantined(policy_stack, local(17, 11, 10))
    assert "detail.amount" in left.reason
    control = boto3.client("dynamodb").get_item(
        TableName=policy_stack.physical_id("StateTable"),
        Key={"pk": {"S": "LOAN#L-20261101-0001"}, "sk": {"S": "CONTROL"}},
    )["Item"]
    assert control["paused_until"] == {"S": promised.isoformat()}


# ---------------------------------------------------------------- a quarantine that cannot take it


def test_a_failing_quarantine_write_raises_and_changes_nothing(local_stack: LocalStack) -> None:
    put_loan(local_stack)
    boto3.client("sqs").delete_queue(QueueUrl=local_stack.queue_url("QuarantineQueue"))

    with pytest.raises(QuarantineWriteError, match=r"QueueDoesNotExist|NonExistentQueue"):
        send_event(local_stack, event("loan_event_promise_to_pay.json", promised_date="9999-12-31"), local(17, 11))

    good = sns_event("inbound_sms_stop.json")
    bad = json.loads(json.dumps(good))
    bad["Records"][0]["Sns"]["Message"] = "{}"
    with pytest.raises(QuarantineWriteError):
        send_reply(local_stack, {"Records": bad["Records"] + good["Records"]}, local(17, 9))

    # Quarantined first, handled after: the STOP beside the bad record is retried with it, not applied twice.
    assert product_state(local_stack) == [] and sms_sent(PHONE) == []


# ---------------------------------------------------------------- `dunning replay` on a deployed stack


@pytest.fixture
def lambda_invoke_in_process(local_stack: LocalStack) -> Iterator[list[dict[str, Any]]]:
    """Lambda `Invoke` on the CLI's client runs the function in-process (moto would need Docker).

    Records each call's ClientContext `custom` as the function sees it.
    """
    calls: list[dict[str, Any]] = []
    by_name = {local_stack.physical_id(f): f for f in local_stack.logical_ids("AWS::Lambda::Function")}

    def capture(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["invoke_params"] = dict(params)

    def run(context: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        params = context["invoke_params"]
        custom = json.loads(base64.b64decode(params["ClientContext"]))["custom"]
        calls.append(custom)
        reply = invoke(
            local_stack, by_name[params["FunctionName"]], json.loads(params["Payload"]), client_custom=custom
        )
        payload = json.dumps(reply).encode()
        response = {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(payload), len(payload))}
        return AWSResponse("https://lambda.local", 200, {}, None), response

    events = aws.client("lambda", INVOKE_CONFIG).meta.events
    events.register("before-parameter-build.lambda.Invoke", capture, unique_id="replay-capture")
    events.register("before-call.lambda.Invoke", run, unique_id="replay-run")
    yield calls
    events.unregister("before-parameter-build.lambda.Invoke", unique_id="replay-capture")
    events.unregister("before-call.lambda.Invoke", unique_id="replay-run")


def test_cli_lists_without_pii_then_replays_through_lambda_invoke(
    local_stack: LocalStack, lambda_invoke_in_process: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    put_loan(local_stack)
    send_event(local_stack, event("loan_event_malformed.json"), local(20, 11))
    bad_reply = sns_event("inbound_sms_stop.json")
    bad_reply["Records"][0]["Sns"]["Message"] = json.dumps({"originationNumber": PHONE, "messageBody": "STOP"})
    send_reply(local_stack, bad_reply, local(20, 11))
    capsys.readouterr()

    # A ticking clock: the deployed path long-polls SQS, which waits on time passing.
    with time_machine.travel(local(20, 11, 5)):
        assert cli.main(["replay", "--stack-name", local_stack.name]) == 0
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert sorted((r["function"], r["kind"], r["outcome"]) for r in rows) == [
        ("InboundSmsFunction", "inbound_sms", "listed"),
        ("LoanEventsFunction", "loan_event", "listed"),
    ]
    assert all(r["age"] and r["reason"] for r in rows)
    assert PHONE not in out and "13800138000" not in out and "abc" not in out
    assert "2 quarantined message(s) listed" in err and lambda_invoke_in_process == []

    with time_machine.travel(local(20, 11, 10)):
        apply = ["replay", "--stack-name", local_stack.name, "--apply", "--function", "LoanEventsFunction"]
        assert cli.main(apply) == 1
    # stdout also has the in-process function's own log lines (CloudWatch Logs', when deployed).
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"message_id"')]
    assert (row["function"], row["outcome"]) == ("LoanEventsFunction", "still_rejected")
    assert lambda_invoke_in_process == [{REPLAY_MARKER: "dunning replay"}]
    assert len(quarantined(local_stack, local(20, 11, 15))) == 2  # nothing deleted, nothing duplicated


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["replay"], "--stack-name"),
        (["replay", "--stack-name", "s", "--limit", "0"], "at least 1"),
        (["replay", "--stack-name", "s", "--apply", "--dry-run"], "not allowed with"),
        (["replay", "--stack-name", "s", "--function", "SendRemindersFunction"], "invalid choice"),
    ],
)
def test_cli_replay_refuses_bad_arguments(
    argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AWS_SAM_STACK_NAME", raising=False)
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2 and message in capsys.readouterr().err


def test_cli_replay_names_a_stack_it_cannot_use(local_stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["replay", "--stack-name", "no-such-stack"]) == 2
    assert "cannot read stack no-such-stack" in capsys.readouterr().err
