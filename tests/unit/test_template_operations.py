"""template.yaml is operable: every function has its log group, alarms and least-privilege policy.

Guards the conventions a new function must follow (the template is edited by many hands), and
that samconfig.toml's overrides are the template's own defaults.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from dunning_tools.local.language_extensions import load_template
from tests.unit.test_cold_init_imports import loaded

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE: dict[str, Any] = load_template(REPO_ROOT / "template.yaml")
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
FUNCTIONS = sorted(name for name, r in RESOURCES.items() if r["Type"] == "AWS::Serverless::Function")
ALARMS = {name: r["Properties"] for name, r in RESOURCES.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
# Actions that address no resource (an SMS goes to a phone number): the only ones allowed on "*".
ACTIONS_WITHOUT_RESOURCE = {"sns:Publish", "sns:ListPhoneNumbersOptedOut"}


def _statements(function: str) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = []
    for policy in RESOURCES[function]["Properties"].get("Policies", []):
        for statement in policy.get("Statement", []):
            if "Fn::If" in statement:  # a conditional statement: both branches count
                statements.extend(branch for branch in statement["Fn::If"][1:] if "Effect" in branch)
            else:
                statements.append(statement)
    return statements


def _names_of(logical_id: str) -> list[dict[str, str]]:
    return [{"Ref": logical_id}, {"Fn::Sub": f"${{{logical_id}}}"}]


def test_the_template_has_functions() -> None:
    assert "PlanRemindersFunction" in FUNCTIONS
    assert "SendRemindersFunction" in FUNCTIONS


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_function_logs_into_its_own_group_with_the_stacks_retention(function: str) -> None:
    groups = [
        r["Properties"]
        for r in RESOURCES.values()
        if r["Type"] == "AWS::Logs::LogGroup"
        and r["Properties"].get("LogGroupName") == {"Fn::Sub": f"/aws/lambda/${{{function}}}"}
    ]
    assert len(groups) == 1, f"{function} needs an AWS::Logs::LogGroup named !Sub /aws/lambda/${{{function}}}"
    assert groups[0]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
def test_each_function_has_an_errors_and_a_throttles_alarm(function: str, metric: str) -> None:
    watching = [
        name
        for name, alarm in ALARMS.items()
        if alarm.get("Namespace") == "AWS/Lambda"
        and alarm.get("MetricName") == metric
        # `!Sub ${Function}` is the function's name as `!Ref` is (Fn::ForEach can only name it through Fn::Sub)
        and alarm.get("Dimensions") in ([{"Name": "FunctionName", "Value": name}] for name in _names_of(function))
    ]
    assert watching, f"no AWS/Lambda {metric} alarm on {function}"


def test_every_alarm_notifies_the_alarm_topic() -> None:
    assert ALARMS
    for name, alarm in ALARMS.items():
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}], name


def test_the_alarm_email_is_subscribed_only_when_given() -> None:
    subscription = RESOURCES["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert TEMPLATE["Conditions"]["HasAlarmEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_function_policy_is_least_privilege(function: str) -> None:
    statements = _statements(function)
    assert statements, f"{function} has no inline policy statements"
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert not [a for a in actions if "*" in a], f"{function}: wildcard action in {actions}"
        if statement["Resource"] == "*":
            assert set(actions) <= ACTIONS_WITHOUT_RESOURCE, f"{function}: {actions} on Resource '*'"


def _may_read_the_policy_parameter(function: str) -> bool:
    """Whether the function's role may read the SSM parameter named by PolicyParameterName, when one is given."""
    for policy in RESOURCES[function]["Properties"].get("Policies", []):
        for statement in policy.get("Statement", []):
            condition, granted, _ = statement.get("Fn::If", (None, {}, None))
            if condition == "HasPolicyParameter" and granted.get("Action") == ["ssm:GetParameter"]:
                return True
    return False


def test_every_function_that_reads_the_policy_may_read_its_parameter_and_no_other_may() -> None:
    # Which functions read the policy: those whose service, built in a fresh process, loads `dunning.config`.
    code_dirs = {f: RESOURCES[f]["Properties"]["CodeUri"].strip("/").split("/")[-1] for f in FUNCTIONS}
    readers = {f for f in FUNCTIONS if "dunning.config" in loaded(code_dirs[f])}

    assert {"SendRemindersFunction", "LoanChangesFunction"} <= readers
    assert {f for f in FUNCTIONS if _may_read_the_policy_parameter(f)} == readers


def test_every_parameter_is_in_a_console_group() -> None:
    groups = TEMPLATE["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    grouped = [name for group in groups for name in group["Parameters"]]
    assert sorted(grouped) == sorted(TEMPLATE["Parameters"])


def test_samconfig_overrides_are_the_templates_defaults() -> None:
    samconfig = tomllib.loads((REPO_ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    deploy = samconfig["default"]["deploy"]["parameters"]
    # IAM roles, and the AWS::LanguageExtensions transform (Fn::ForEach) expanded by CloudFormation.
    assert deploy["capabilities"].split() == ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"]
    assert deploy["resolve_s3"] is True
    assert deploy["confirm_changeset"] is True
    assert samconfig["default"]["global"]["parameters"]["stack_name"] == "dunning"
    overrides = dict(entry.split("=", 1) for entry in deploy["parameter_overrides"])
    assert overrides
    for name, value in overrides.items():
        assert name in TEMPLATE["Parameters"], name
        assert value.strip('"') == str(TEMPLATE["Parameters"][name]["Default"]), name


def test_the_state_machines_trace_exactly_when_the_functions_do() -> None:
    """One `Tracing` parameter: the functions' X-Ray mode and POWERTOOLS_TRACE_DISABLED (their Tracer), and the
    state machines' tracing, all from the same condition (tests/integration/test_local_stack.py deploys both)."""
    assert TEMPLATE["Conditions"]["TracingActive"] == {"Fn::Equals": [{"Ref": "Tracing"}, "Active"]}
    function_globals = TEMPLATE["Globals"]["Function"]
    assert function_globals["Tracing"] == {"Ref": "Tracing"}
    assert function_globals["Environment"]["Variables"]["POWERTOOLS_TRACE_DISABLED"] == {
        "Fn::If": ["TracingActive", "false", "true"]
    }
    machines = {name: r["Properties"] for name, r in RESOURCES.items() if r["Type"] == "AWS::Serverless::StateMachine"}
    assert machines
    assert all(m["Tracing"] == {"Enabled": {"Fn::If": ["TracingActive", True, False]}} for m in machines.values())
    assert not any("Tracing" in RESOURCES[f]["Properties"] for f in FUNCTIONS)  # none overrides the parameter
