"""The LoanEventsBus rule hands LoanEventsFunction only the sources the lender configured (AllowedEventSources).

moto's EventBridge has no TestEventPattern, but it matches rules on PutEvents: the stack's rule, as
rendered from template.yaml, gets an SQS target standing in for the function (moto cannot deliver to
Lambda), and what reaches the queue is what the rule matched.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from dunning_tools.local import LocalStack, deploy_stack
from dunning_tools.local.language_extensions import load_template

EVENTS = Path(__file__).resolve().parents[2] / "events"
SAMPLES = sorted(EVENTS.glob("loan_event_*.json"))


def matched(stack: LocalStack, events: list[dict[str, Any]]) -> list[str]:
    """The ids of `events` that the LoanEventsFunction rule matches, put on the stack's bus."""
    (rule,) = [r for r, functions in stack.rule_targets.items() if "LoanEventsFunction" in functions]
    bus = stack.physical_id("LoanEventsBus")
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="rule-matches")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    eventbridge = boto3.client("events")
    name = stack.physical_id(rule).split("/")[-1].split("|")[0]
    eventbridge.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "matches", "Arn": queue_arn}])
    entries = [
        {"EventBusName": bus, "Source": e["source"], "DetailType": e["detail-type"], "Detail": json.dumps(e["detail"])}
        for e in events
    ]
    assert eventbridge.put_events(Entries=entries)["FailedEntryCount"] == 0
    received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
    return sorted(json.loads(m["Body"])["source"] + ":" + json.loads(m["Body"])["detail-type"] for m in received)


def sample(path: Path, **changes: Any) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return {**loaded, **changes}


def test_the_rendered_rule_matches_exactly_the_configured_sources(local_stack: LocalStack) -> None:
    (rule,) = [r for r, functions in local_stack.rule_targets.items() if "LoanEventsFunction" in functions]
    pattern = local_stack.template["Resources"][rule]["Properties"]["EventPattern"]
    assert pattern["source"] == {"Ref": "AllowedEventSources"}

    samples = [sample(path) for path in SAMPLES if path.name != "loan_event_malformed.json"]
    foreign = sample(EVENTS / "loan_event_opt_out.json", source="com.attacker.loans")
    assert matched(local_stack, [*samples, foreign]) == sorted(f"{e['source']}:{e['detail-type']}" for e in samples)


def test_a_lender_configures_its_own_sources(moto_aws: None) -> None:
    stack = deploy_stack(parameters={"AllowedEventSources": "com.lender.core,com.lender.crm"})
    ours = sample(EVENTS / "loan_event_opt_out.json", source="com.lender.crm")
    default_source = sample(EVENTS / "loan_event_opt_in.json")  # com.example.customer-service: not configured

    assert matched(stack, [ours, default_source]) == ["com.lender.crm:ContactOptOut"]


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_every_sample_event_comes_from_a_default_source(path: Path) -> None:
    template = load_template(EVENTS.parent / "template.yaml")
    defaults = template["Parameters"]["AllowedEventSources"]["Default"].split(",")
    assert sample(path)["source"] in defaults  # `sam local invoke -e` and the demo stay inside the rule
