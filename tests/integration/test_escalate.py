"""EscalateFunction on the moto stack: one case and one CollectionCaseOpened per loan cycle, ever."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import time_machine
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns import sns_backends

from dunning.dal.ladder import LEAVING
from dunning.models.delivery import Outcome
from dunning_tools.local import LocalStack, drain_queue, invoke
from dunning_tools.local.sample_events import FAILURE_GROUP, cloudwatch_logs_event, sms_delivery_log
from tests.integration.after_sms_helpers import put_loan, put_record, records, scheduled, state_item

RUN = dt.datetime(2026, 12, 12, 6, 30, tzinfo=dt.UTC)  # the events/scheduled_escalate.json time
TODAY = dt.date(2026, 12, 12)  # its business date (Asia/Shanghai)


@pytest.fixture
def cases_queue(local_stack: LocalStack) -> Iterator[str]:
    """An SQS queue receiving every `dunning` event on LoanEventsBus (what a collectors' system would read)."""
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="captured-cases")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = boto3.client("events")
    bus = local_stack.physical_id("LoanEventsBus")
    events.put_rule(Name="capture-cases", EventBusName=bus, EventPattern=json.dumps({"source": ["dunning"]}))
    events.put_targets(Rule="capture-cases", EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn}])
    yield url


def captured(url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    found: list[dict[str, Any]] = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        found.extend(json.loads(m["Body"]) for m in messages)
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        )
    return found


def escalate(stack: LocalStack, at: dt.datetime = RUN) -> dict[str, Any]:
    result: dict[str, Any] = invoke(stack, "EscalateFunction", scheduled("scheduled_escalate.json", at))
    return result


def days_ago(days: int) -> dt.date:
    return TODAY - dt.timedelta(days=days)


def test_a_loan_past_the_ladder_gets_exactly_one_case_across_daily_runs(
    local_stack: LocalStack, cases_queue: str
) -> None:
    put_loan(local_stack, "L-35", days_ago(35), late_fees="45.00")
    put_loan(local_stack, "L-2", days_ago(2))
    put_record(
        local_stack,
        "L-35",
        RUN - dt.timedelta(days=8),
        cycle=days_ago(35).isoformat(),
        stage="follow_up_27",
        outcome=Outcome.DELIVERED,
        message_id="m-27",
    )

    reports = [escalate(local_stack, RUN + dt.timedelta(days=n)) for n in (0, 0, 1, 2)]

    assert reports[0]["opened"] == {"ladder_exhausted": 1}
    assert [r["opened"] for r in reports[1:]] == [{}, {}, {}]
    assert [r["already_open"] for r in reports[1:]] == [1, 1, 1]
    (event,) = captured(cases_queue)
    assert event["source"] == "dunning" and event["detail-type"] == "CollectionCaseOpened"
    assert event["detail"] == {
        "loan_id": "L-35",
        "borrower_id": "B-L-35",
        "cycle": days_ago(35).isoformat(),
        "days_past_due": 35,
        "amount_due": "3000.00",
        "late_fees": "45.00",
        "currency": "CNY",
        "reminders_sent": 1,
        "last_outcome": "DELIVERED",
        "reason": "ladder_exhausted",
        "opened_at": "2026-12-12T06:30:00.000Z",
    }
    case = state_item(local_stack, "LOAN#L-35", f"CASE#{days_ago(35).isoformat()}")
    assert case is not None and case["published"] is True
    control = state_item(local_stack, "LOAN#L-35", "CONTROL")
    assert control is not None and control["case_cycle"] == days_ago(35).isoformat()
    assert state_item(local_stack, "LOAN#L-2", f"CASE#{days_ago(2).isoformat()}") is None


def test_a_two_day_old_delinquency_is_left_to_the_sms_ladder(local_stack: LocalStack, cases_queue: str) -> None:
    put_loan(local_stack, "L-2", days_ago(2))

    assert escalate(local_stack)["opened"] == {}
    assert captured(cases_queue) == []


def test_case_control_update_keeps_the_borrower_event_fields(local_stack: LocalStack, cases_queue: str) -> None:
    boto3.client("dynamodb").put_item(
        TableName=local_stack.physical_id("StateTable"),
        Item={
            "pk": {"S": "LOAN#L-40"},
            "sk": {"S": "CONTROL"},
            "loan_id": {"S": "L-40"},
            "promised_date": {"S": "2026-11-20"},
            "promise_broken": {"BOOL": True},
        },
    )
    put_loan(local_stack, "L-40", days_ago(40))  # the stream adds upstream's values to that CONTROL item

    escalate(local_stack)

    control = state_item(local_stack, "LOAN#L-40", "CONTROL")
    assert control is not None
    (event,) = captured(cases_queue)
    assert json.loads(str(control.pop("case_detail"))) == event["detail"]  # kept until the case is recorded
    for name in (*LEAVING, "upstream_seq"):  # the ladder index's attributes (dal.ladder)
        control.pop(name, None)
    assert control == {
        "pk": "LOAN#L-40",
        "sk": "CONTROL",
        "loan_id": "L-40",
        "promised_date": "2026-11-20",
        "promise_broken": True,
        "case_cycle": days_ago(40).isoformat(),
    }


def test_a_half_done_case_is_announced_once_by_the_next_run(local_stack: LocalStack, cases_queue: str) -> None:
    """A run that died after recording the case but before PutEvents: the next run finishes it."""
    cycle = days_ago(33).isoformat()
    put_loan(local_stack, "L-33", days_ago(33))
    stored = {"loan_id": "L-33", "reason": "ladder_exhausted", "opened_at": "2026-12-11T06:30:00.000Z"}
    boto3.client("dynamodb").put_item(
        TableName=local_stack.physical_id("StateTable"),
        Item={
            "pk": {"S": "LOAN#L-33"},
            "sk": {"S": f"CASE#{cycle}"},
            "loan_id": {"S": "L-33"},
            "cycle": {"S": cycle},
            "borrower_id": {"S": "B-L-33"},
            "detail": {"S": json.dumps(stored)},
            "published": {"BOOL": False},
        },
    )

    first, second = escalate(local_stack), escalate(local_stack)

    assert (first["completed"], first["opened"]) == (1, {})
    assert (second["completed"], second["already_open"]) == (0, 1)
    assert [e["detail"] for e in captured(cases_queue)] == [stored]  # the recorded detail, exactly once
    control = state_item(local_stack, "LOAN#L-33", "CONTROL")
    assert control is not None and control["case_cycle"] == cycle


def test_a_run_that_died_between_stopping_sms_and_recording_the_case_opens_that_case_next_time(
    local_stack: LocalStack, cases_queue: str
) -> None:
    """Opening writes CONTROL (SMS stopped, detail kept) and then the case; the run died in between.

    The borrower has opted back in since, so the reason no longer holds: the case opens anyway,
    with the detail of the run that stopped the SMS, exactly once.
    """
    cycle = days_ago(5).isoformat()
    stored = {"loan_id": "L-5", "reason": "opted_out", "opened_at": "2026-12-11T06:30:00.000Z"}
    boto3.client("dynamodb").put_item(
        TableName=local_stack.physical_id("StateTable"),
        Item={
            "pk": {"S": "LOAN#L-5"},
            "sk": {"S": "CONTROL"},
            "loan_id": {"S": "L-5"},
            "case_cycle": {"S": cycle},
            "case_detail": {"S": json.dumps(stored)},
        },
    )
    put_loan(local_stack, "L-5", days_ago(5))

    first, second = escalate(local_stack), escalate(local_stack)

    assert (first["completed"], first["opened"], second["already_open"]) == (1, {}, 1)
    assert [e["detail"] for e in captured(cases_queue)] == [stored]
    case = state_item(local_stack, "LOAN#L-5", f"CASE#{cycle}")
    assert case is not None and case["published"] is True and case["reason"] == "opted_out"


def test_an_opted_out_borrower_with_a_balance_is_escalated_early(local_stack: LocalStack, cases_queue: str) -> None:
    put_loan(local_stack, "L-5", days_ago(5))
    boto3.client("dynamodb").put_item(
        TableName=local_stack.physical_id("StateTable"),
        Item={"pk": {"S": "PHONE#+8613800138000"}, "sk": {"S": "OPTOUT"}, "phone": {"S": "+8613800138000"}},
    )

    assert escalate(local_stack)["opened"] == {"opted_out": 1}
    assert [e["detail"]["reason"] for e in captured(cases_queue)] == ["opted_out"]


def test_a_disputed_loan_is_not_handed_to_collectors(local_stack: LocalStack, cases_queue: str) -> None:
    boto3.client("dynamodb").put_item(
        TableName=local_stack.physical_id("StateTable"),
        Item={
            "pk": {"S": "LOAN#L-50"},
            "sk": {"S": "CONTROL"},
            "loan_id": {"S": "L-50"},
            "dispute_hold": {"BOOL": True},
        },
    )
    put_loan(local_stack, "L-50", days_ago(50))

    assert escalate(local_stack)["held"] == {"hold_dispute": 1}
    assert captured(cases_queue) == []


def test_after_failed_deliveries_the_case_stops_collection_sms(local_stack: LocalStack, cases_queue: str) -> None:
    """Three SMS of the cycle failed: a case opens at day 10, and the day-12 follow-up is never sent."""
    due = days_ago(10)
    put_loan(local_stack, "L-10", due)
    for n, stage in enumerate(("overdue_notice", "follow_up_3", "follow_up_6")):
        sent_at = RUN - dt.timedelta(days=9 - 3 * n)
        put_record(local_stack, "L-10", sent_at, cycle=due.isoformat(), stage=stage, message_id=f"m-{n}")
        # The carrier's FAILURE log, through RecordDeliveryFunction as in the cloud.
        failure = sms_delivery_log(f"m-{n}", success=False, at=sent_at)
        invoke(local_stack, "RecordDeliveryFunction", cloudwatch_logs_event(FAILURE_GROUP, [failure], at=sent_at))
    assert [r["outcome"] for r in records(local_stack, "L-10")] == ["FAILED"] * 3

    assert escalate(local_stack)["opened"] == {"delivery_failed": 1}
    (event,) = captured(cases_queue)
    assert (event["detail"]["reminders_sent"], event["detail"]["last_outcome"]) == (3, "FAILED")

    follow_up_day = dt.datetime(2026, 12, 14, 3, 0, tzinfo=dt.UTC)  # day 12, 11:00 in Shanghai: in the window
    with time_machine.travel(follow_up_day, tick=False):
        invoke(local_stack, "PlanRemindersFunction", scheduled("scheduled_escalate.json", follow_up_day))
        drain_queue(local_stack)
    assert sns_backends[DEFAULT_ACCOUNT_ID][local_stack.region].sms_messages == {}
    suppressed = [r for r in records(local_stack, "L-10") if r["outcome"] == "SUPPRESSED"]
    assert [(r["stage"], r["reason"]) for r in suppressed] == [("follow_up_12", "escalated")]
