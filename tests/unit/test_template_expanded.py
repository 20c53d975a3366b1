"""template.yaml as it is deployed: Fn::ForEach and Globals expanded, SAM's transform applied.

The template writes what repeats once (Globals; Fn::ForEach over the functions for their log groups and
alarms; checkov's family-wide skips in .checkov.yaml). The facts below were recorded from the template
before it was folded (main at 322a89c, translated by the same code as here) and hold after it: the
refactor deployed the same resources with the same settings. Keep them in step with deliberate changes.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from dunning_tools.local.language_extensions import load_template

# The local stack's own transform (Fn::ForEach, then aws-sam-translator): what moto is given.
from dunning_tools.local.stack import _translate

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_TEXT = (REPO_ROOT / "template.yaml").read_text(encoding="utf-8")
TRANSLATED: dict[str, Any] = json.loads(_translate(TEMPLATE_TEXT, (), "us-east-1").template)
RESOURCES: dict[str, Any] = TRANSLATED["Resources"]
MAPPINGS: dict[str, Any] = TRANSLATED["Mappings"]

TYPES = {
    "AWS::CloudWatch::Alarm": 31,
    "AWS::CloudWatch::Dashboard": 1,
    "AWS::DynamoDB::Table": 3,
    "AWS::Events::EventBus": 1,
    "AWS::Events::Rule": 1,
    "AWS::IAM::Role": 15,
    "AWS::KMS::Alias": 1,
    "AWS::KMS::Key": 2,
    "AWS::Lambda::EventSourceMapping": 2,
    "AWS::Lambda::Function": 9,
    "AWS::Lambda::LayerVersion": 1,
    "AWS::Lambda::Permission": 4,
    "AWS::Logs::LogGroup": 13,
    "AWS::Logs::SubscriptionFilter": 2,
    "AWS::S3::Bucket": 1,
    "AWS::S3::BucketPolicy": 1,
    "AWS::SNS::Subscription": 2,
    "AWS::SNS::Topic": 2,
    "AWS::SNS::TopicPolicy": 1,
    "AWS::SQS::Queue": 5,
    "AWS::Scheduler::Schedule": 3,
    "AWS::StepFunctions::StateMachine": 2,
}
# Function -> (Timeout, MemorySize, statements in its role's own policy, managed policies of its role).
FUNCTIONS = {
    "BureauReportFunction": (300, 1024, 9, 2),
    "EscalateFunction": (300, 512, 10, 2),
    "InboundSmsFunction": (60, 512, 9, 2),
    "LoanChangesFunction": (60, 512, 8, 3),  # + ssm:GetParameter on the policy parameter (it reads the policy)
    "LoanEventsFunction": (60, 512, 13, 2),
    "PlanRemindersFunction": (300, 512, 7, 2),
    "RecordDeliveryFunction": (60, 512, 5, 2),
    "SendRemindersFunction": (60, 512, 7, 3),
    "SyncOptOutsFunction": (300, 512, 5, 2),
}
# Every function gets the same environment (Globals).
ENVIRONMENT = {
    "DELIVERIES_TABLE",
    "EVENT_BUS_NAME",
    "LOANS_TABLE",
    "MAX_PARTS_PER_SECOND",
    "NOTICE_SHARE_PERCENT",
    "ORIGINATION_NUMBER",
    "PHONE_HASH_KEY",
    "PLANNING_SHARDS",
    "POLICY_PARAMETER",
    "POWERTOOLS_LOG_LEVEL",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_TRACE_DISABLED",
    "QUARANTINE_QUEUE_URL",
    "RECORD_RETENTION_DAYS",
    "REMINDER_QUEUE_URL",
    "REPORTS_BUCKET",
    "SENDER_CONCURRENCY",
    "SENDER_ID",
    "SMS_TYPE",
    "STATE_TABLE",
}
# Alarm -> (namespace, metric, or the metrics of its expression joined by "+", threshold).
ALARMS = {
    "BureauReportErrorsAlarm": ("AWS/Lambda", "Errors", 0),
    "BureauReportThrottlesAlarm": ("AWS/Lambda", "Throttles", 0),
    "DailyRunFailedAlarm": ("AWS/States", "ExecutionsFailed+ExecutionsTimedOut+ExecutionsAborted", 0),
    "EscalateErrorsAlarm": ("AWS/Lambda", "Errors", 0),
    "EscalateThrottlesAlarm": ("AWS/Lambda", "Throttles", 0),
    "FailedDeliveryRateAlarm": ("Dunning", "SmsDelivered+SmsFailed", {"Ref": "FailedDeliveryRatePercent"}),
    "FailedInvocationsQueueAlarm": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", 0),
    "InboundSmsErrorsAlarm": ("AWS/Lambda", "Errors", 0),
    "InboundSmsThrottlesAlarm": ("AWS/Lambda", "Throttles", 0),
    "LoanChangesErrorsAlarm": ("AWS/Lambda", "Errors", 0),
    "LoanChangesFailureQueueAlarm": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", 0),
    "LoanChangesIteratorAgeAlarm": ("AWS/Lambda", "IteratorAge", 3600000),
    "LoanChangesThrottlesAlarm": ("AWS/Lambda", "Throttles", 0),
    "LoanEventsErrorsAlarm": ("AWS/Lambda", "Errors", 0),
    "LoanEventsThrottlesAlarm": ("AWS/Lambda", "Throttles", 0),
    "LoansSetAsideAlarm": ("Dunning", "InvalidLoanItems+UnprocessableLoanItems", {"Ref": "InvalidLoanAlarmThreshold"}),
    "MalformedEventsAlarm": ("Dunning", "MalformedEvents", 0),
    "PlanRemindersErrorsAlarm": ("AWS/Lambda", "Errors", 0),
    "PlanRemindersThrottlesAlarm": ("AWS/Lambda", "Throttles", 0),
    "PlanningRunFailedAlarm": ("AWS/States", "ExecutionsFailed+ExecutionsTimedOut+ExecutionsAborted", 0),
    "QuarantineQueueAlarm": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", 0),
    "RecordDeliveryErrorsAlarm": ("AWS/Lambda", "Errors", 0),
    "RecordDeliveryThrottlesAlarm": ("AWS/Lambda", "Throttles", 0),
    "ReminderDeadLetterQueueAlarm": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", 0),
    "ReminderQueueAgeAlarm": ("AWS/SQS", "ApproximateAgeOfOldestMessage", 10800),
    "SendRemindersErrorsAlarm": ("AWS/Lambda", "Errors", 0),
    "SendRemindersThrottlesAlarm": ("AWS/Lambda", "Throttles", 0),
    "SmsSpendAlarm": ("AWS/SNS", "SMSMonthToDateSpentUSD", {"Ref": "MonthlySpendAlarmUSD"}),
    "SyncOptOutsErrorsAlarm": ("AWS/Lambda", "Errors", 0),
    "SyncOptOutsThrottlesAlarm": ("AWS/Lambda", "Throttles", 0),
    "UncertainSmsAlarm": ("Dunning", "SmsUncertain", 0),
}


def _of_type(resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: r["Properties"] for name, r in RESOURCES.items() if r["Type"] == resource_type}


def _metric(alarm: dict[str, Any]) -> tuple[Any, str, Any]:
    if "MetricName" in alarm:
        return alarm["Namespace"], alarm["MetricName"], alarm["Threshold"]
    stats = [query["MetricStat"]["Metric"] for query in alarm["Metrics"] if "MetricStat" in query]
    return stats[0]["Namespace"], "+".join(stat["MetricName"] for stat in stats), alarm["Threshold"]


def test_the_stack_has_the_same_resources_of_each_type() -> None:
    assert dict(Counter(r["Type"] for r in RESOURCES.values())) == TYPES


def test_each_function_keeps_its_runtime_handler_limits_environment_and_permissions() -> None:
    functions = _of_type("AWS::Lambda::Function")
    assert set(functions) == set(FUNCTIONS)
    for name, function in functions.items():
        role = RESOURCES[function["Role"]["Fn::GetAtt"][0]]["Properties"]
        statements = [s for policy in role.get("Policies", []) for s in policy["PolicyDocument"]["Statement"]]
        facts = (function["Timeout"], function["MemorySize"], len(statements), len(role.get("ManagedPolicyArns", [])))
        assert facts == FUNCTIONS[name], name
        assert (function["Runtime"], function["Handler"], function["Architectures"]) == (
            "python3.13",
            "app.lambda_handler",
            ["arm64"],
        ), name
        assert set(function["Environment"]["Variables"]) == ENVIRONMENT, name
        assert function["TracingConfig"] == {"Mode": {"Ref": "Tracing"}}, name
        assert function["Layers"] == [{"Ref": layer} for layer in _of_type("AWS::Lambda::LayerVersion")], name


def test_the_alarms_watch_the_same_metrics_against_the_same_thresholds() -> None:
    alarms = _of_type("AWS::CloudWatch::Alarm")
    assert {name: _metric(alarm) for name, alarm in alarms.items()} == ALARMS
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}], name


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_each_function_gets_its_log_group_and_two_alarms_from_the_loops(function: str) -> None:
    short = function.removesuffix("Function")
    group = RESOURCES[f"{short}LogGroup"]["Properties"]
    assert group == {
        "LogGroupName": {"Fn::Sub": f"/aws/lambda/${{{function}}}"},
        "RetentionInDays": {"Ref": "LogRetentionDays"},
    }
    for metric in ("Errors", "Throttles"):
        alarm = RESOURCES[f"{short}{metric}Alarm"]["Properties"]
        assert alarm["AlarmName"] == {"Fn::Sub": f"${{AWS::StackName}}-{function}-{metric.lower()}"}
        assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Fn::Sub": f"${{{function}}}"}}]
        mapping, key, entry = alarm["AlarmDescription"]["Fn::FindInMap"]
        description = MAPPINGS[mapping][key][entry]
        assert description.startswith(function), description  # the runbook line names its function


def test_family_wide_checkov_skips_are_in_the_config_and_resource_skips_concern_one_resource() -> None:
    config = yaml.safe_load((REPO_ROOT / ".checkov.yaml").read_text(encoding="utf-8"))
    family = set(config["skip-check"])
    resources = load_template(REPO_ROOT / "template.yaml")["Resources"]
    local = [
        (name, skip["id"])
        for name, resource in resources.items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert local == [("ReportsBucket", "CKV_AWS_18")]
    assert not family & {check for _, check in local}
    config_text = (REPO_ROOT / ".checkov.yaml").read_text(encoding="utf-8")
    for check in family:  # each skip says why, in the comment right above it
        above = config_text.split(f"  - {check}\n")[0].rstrip().splitlines()[-1]
        assert above.lstrip().startswith("#"), check
