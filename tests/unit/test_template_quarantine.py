"""template.yaml keeps rejected input: QuarantineQueue, who may write to it, and the two alarms on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dunning_tools.commands.common import QUARANTINING_FUNCTIONS
from dunning_tools.local.language_extensions import load_template

TEMPLATE: dict[str, Any] = load_template(Path(__file__).resolve().parents[2] / "template.yaml")
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
QUARANTINE_ARN = {"Fn::GetAtt": ["QuarantineQueue", "Arn"]}


def writes_to_quarantine(function: str) -> bool:
    statements = [s for p in RESOURCES[function]["Properties"]["Policies"] for s in p.get("Statement", [])]
    return any(s.get("Resource") == QUARANTINE_ARN and s.get("Action") == ["sqs:SendMessage"] for s in statements)


def test_the_quarantine_is_encrypted_and_keeps_messages_14_days() -> None:
    queue = RESOURCES["QuarantineQueue"]["Properties"]
    assert queue == {"MessageRetentionPeriod": 1209600, "SqsManagedSseEnabled": True}
    assert TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]["QUARANTINE_QUEUE_URL"] == {
        "Ref": "QuarantineQueue"
    }


@pytest.mark.parametrize(
    "function", sorted(n for n, r in RESOURCES.items() if r["Type"] == "AWS::Serverless::Function")
)
def test_only_the_functions_that_quarantine_may_send_to_it(function: str) -> None:
    assert writes_to_quarantine(function) == (function in QUARANTINING_FUNCTIONS)


@pytest.mark.parametrize(
    ("alarm", "namespace", "metric", "dimension"),
    [
        (
            "QuarantineQueueAlarm",
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            {"Fn::GetAtt": ["QuarantineQueue", "QueueName"]},
        ),
        ("MalformedEventsAlarm", "Dunning", "MalformedEvents", "dunning"),
    ],
)
def test_malformed_input_and_a_non_empty_quarantine_alarm(
    alarm: str, namespace: str, metric: str, dimension: Any
) -> None:
    properties = RESOURCES[alarm]["Properties"]
    assert (properties["Namespace"], properties["MetricName"]) == (namespace, metric)
    assert [d["Value"] for d in properties["Dimensions"]] == [dimension]
    assert (properties["Period"], properties["Threshold"], properties["ComparisonOperator"]) == (
        300,
        0,
        "GreaterThanThreshold",
    )
    assert properties["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_the_event_rule_takes_its_sources_from_the_parameter() -> None:
    parameter = TEMPLATE["Parameters"]["AllowedEventSources"]
    assert parameter["Type"] == "CommaDelimitedList"
    pattern = RESOURCES["LoanEventsFunction"]["Properties"]["Events"]["LoanEvents"]["Properties"]["Pattern"]
    assert pattern["source"] == {"Ref": "AllowedEventSources"}
    groups = TEMPLATE["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    assert any("AllowedEventSources" in group["Parameters"] for group in groups)
