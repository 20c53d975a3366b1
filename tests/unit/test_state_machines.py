"""template.yaml's state machines: the schedules start them, they map over the shards and resume a shard.

Read from the template itself (the definitions the local runner executes in moto, and AWS in the cloud).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dunning.sharding import INDEX_PARTITIONS
from dunning_tools.local.language_extensions import load_template

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE: dict[str, Any] = load_template(REPO_ROOT / "template.yaml")
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
MACHINES = {name: r["Properties"] for name, r in RESOURCES.items() if r["Type"] == "AWS::Serverless::StateMachine"}
# Each Map over the shards: (state machine, path to the Map's States, Map state, task state, the function it invokes).
SHARD_MAPS = [
    ("PlanningStateMachine", (), "PlanEachShard", "PlanShard", "PlanRemindersFunction"),
    ("DailyStateMachine", ("EscalationAndBureau", 0), "EscalateEachShard", "EscalateShard", "EscalateFunction"),
    ("DailyStateMachine", ("EscalationAndBureau", 1), "ReportEachShard", "ReportShard", "BureauReportFunction"),
]
FUNCTION_TIMEOUT = max(
    RESOURCES[f]["Properties"]["Timeout"] for f in ("PlanRemindersFunction", "EscalateFunction", "BureauReportFunction")
)
LAMBDA_SERVICE_ERRORS = {"Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException"}


def _states(machine: str, branch: tuple[Any, ...]) -> dict[str, Any]:
    states: dict[str, Any] = MACHINES[machine]["Definition"]["States"]
    if branch:
        parallel, index = branch
        states = states[parallel]["Branches"][index]["States"]
    return states


def _substitution(machine: str, placeholder: str) -> Any:
    """What a `${Name}` placeholder of the definition is replaced with at deploy time."""
    assert placeholder.startswith("${") and placeholder.endswith("}"), placeholder
    return MACHINES[machine]["DefinitionSubstitutions"][placeholder[2:-1]]


def test_the_sharded_functions_are_no_longer_scheduled_directly() -> None:
    scheduled = set()
    for name, resource in RESOURCES.items():
        if resource["Type"] == "AWS::Serverless::Function":
            events = resource["Properties"].get("Events", {}).values()
            if [e for e in events if e["Type"].startswith("Schedule")]:
                scheduled.add(name)
    # The SNS opt-out sync reads one list, not the book: it keeps its own hourly schedule.
    assert scheduled == {"SyncOptOutsFunction"}


@pytest.mark.parametrize(
    ("machine", "expression"),
    [("PlanningStateMachine", "PlanScheduleExpression"), ("DailyStateMachine", "DailyScheduleExpression")],
)
def test_each_state_machine_is_started_by_its_schedule(machine: str, expression: str) -> None:
    (schedule,) = MACHINES[machine]["Events"].values()
    assert schedule["Type"] == "ScheduleV2"
    assert schedule["Properties"]["ScheduleExpression"] == {"Ref": expression}
    assert schedule["Properties"]["ScheduleExpressionTimezone"] == {"Ref": "ScheduleTimezone"}
    assert "<aws.scheduler.scheduled-time>" in schedule["Properties"]["Input"]["Fn::Sub"]


@pytest.mark.parametrize("machine", sorted(MACHINES))
def test_the_shard_count_and_concurrency_are_the_templates_parameters(machine: str) -> None:
    first = MACHINES[machine]["Definition"]["States"]["Shards"]
    assert first["Type"] == "Pass" and MACHINES[machine]["Definition"]["StartAt"] == "Shards"
    assert first["Parameters"]["event.$"] == "$"  # the Scheduler's event, its time untouched
    assert first["Parameters"]["shards.$"] == "States.StringToJson('${Shards}')"
    assert first["Parameters"]["items.$"] == "States.ArrayRange(1, States.StringToJson('${Shards}'), 1)"
    assert first["Parameters"]["concurrency.$"] == "States.StringToJson('${Concurrency}')"
    assert _substitution(machine, "${Shards}") == {"Ref": "PlanningShards"}
    assert _substitution(machine, "${Concurrency}") == {"Ref": "PlanningConcurrency"}
    shards = TEMPLATE["Parameters"]["PlanningShards"]
    # Whole partitions of the ladder index per shard (INDEX_PARTITIONS of them): no shard reads another's.
    assert sorted(int(n) for n in shards["AllowedValues"]) == [2**k for k in range(7)]
    assert (
        all(INDEX_PARTITIONS % int(n) == 0 for n in shards["AllowedValues"]) and shards["Default"] == INDEX_PARTITIONS
    )
    assert TEMPLATE["Parameters"]["PlanningConcurrency"]["MaxValue"] == 40  # an inline Map's limit


@pytest.mark.parametrize(("machine", "branch", "map_state", "task", "function"), SHARD_MAPS)
def test_a_map_over_the_shards_invokes_the_function_with_the_schedules_event_and_its_shard(
    machine: str, branch: tuple[Any, ...], map_state: str, task: str, function: str
) -> None:
    fan_out = _states(machine, branch)[map_state]
    assert fan_out["Type"] == "Map" and fan_out["ItemsPath"] == "$.items"
    assert fan_out["MaxConcurrencyPath"] == "$.concurrency"
    assert fan_out["ItemSelector"] == {
        "event.$": "$.event",
        "next": {"detail": {"shard.$": "$$.Map.Item.Index", "shards.$": "$.shards", "cursor": None}},
    }
    invoke = fan_out["ItemProcessor"]["States"][task]
    assert invoke["Resource"] == "arn:${Partition}:states:::lambda:invoke"
    assert _substitution(machine, invoke["Parameters"]["FunctionName"]) == {"Fn::GetAtt": [function, "Arn"]}
    # The event as the schedule delivered it (time unchanged), its detail replaced by the shard's.
    assert invoke["Parameters"]["Payload.$"] == "States.JsonMerge($.event, $.next, false)"
    assert invoke["ResultSelector"] == {"complete.$": "$.Payload.complete", "cursor.$": "$.Payload.cursor"}


@pytest.mark.parametrize(("machine", "branch", "map_state", "task", "function"), SHARD_MAPS)
def test_a_shard_that_is_not_complete_is_invoked_again_with_its_cursor(
    machine: str, branch: tuple[Any, ...], map_state: str, task: str, function: str
) -> None:
    states = _states(machine, branch)[map_state]["ItemProcessor"]["States"]
    check = states[states[task]["Next"]]
    assert check["Type"] == "Choice"
    (loop,) = check["Choices"]
    assert (loop["Variable"], loop["BooleanEquals"]) == ("$.result.complete", False)
    resume = states[loop["Next"]]
    assert resume["Next"] == task
    assert resume["Parameters"]["next"]["detail"] == {
        "shard.$": "$.next.detail.shard",
        "shards.$": "$.next.detail.shards",
        "cursor.$": "$.result.cursor",
    }
    assert resume["Parameters"]["event.$"] == "$.event"
    assert states[check["Default"]]["Type"] == "Succeed"


def _tasks(states: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for state in states.values():
        if state["Type"] == "Task":
            found.append(state)
        for nested in [state.get("ItemProcessor", {}), *state.get("Branches", [])]:
            found.extend(_tasks(nested.get("States", {})))
    return found


@pytest.mark.parametrize("machine", sorted(MACHINES))
def test_every_task_retries_lambda_errors_and_failures_with_backoff(machine: str) -> None:
    tasks = _tasks(MACHINES[machine]["Definition"]["States"])
    assert tasks
    for task in tasks:
        service, failures = task["Retry"]
        assert LAMBDA_SERVICE_ERRORS | {"Lambda.TooManyRequestsException"} <= set(service["ErrorEquals"])
        assert set(failures["ErrorEquals"]) == {"States.TaskFailed", "States.Timeout"}
        for retrier in (service, failures):
            assert retrier["BackoffRate"] > 1 and retrier["MaxAttempts"] >= 2 and retrier["IntervalSeconds"] >= 1
        assert task["TimeoutSeconds"] > FUNCTION_TIMEOUT  # the function's own limit comes first


def test_the_daily_run_assembles_the_bureau_parts_after_every_shard() -> None:
    states = MACHINES["DailyStateMachine"]["Definition"]["States"]
    assert states["Shards"]["Parameters"]["assemble"] == {
        "detail": {"assemble": True, "shards.$": "States.StringToJson('${Shards}')"}
    }
    bureau = states["EscalationAndBureau"]["Branches"][1]["States"]
    assert bureau["ReportEachShard"]["Next"] == "AssembleBureauFile"
    assemble = bureau["AssembleBureauFile"]
    assert assemble["Parameters"]["Payload.$"] == "States.JsonMerge($.event, $.assemble, false)"
    function = _substitution("DailyStateMachine", assemble["Parameters"]["FunctionName"])
    assert function == {"Fn::GetAtt": ["BureauReportFunction", "Arn"]}


def test_a_failed_daily_branch_leaves_the_other_to_finish_then_fails_the_execution() -> None:
    states = MACHINES["DailyStateMachine"]["Definition"]["States"]
    for branch in states["EscalationAndBureau"]["Branches"]:
        catchers = [c for s in branch["States"].values() for c in s.get("Catch", [])]
        assert catchers and all(c["ErrorEquals"] == ["States.ALL"] for c in catchers)
        assert {branch["States"][c["Next"]]["Parameters"]["failed"] for c in catchers} == {True}
    verdict = states[states["EscalationAndBureau"]["Next"]]
    assert states[verdict["Choices"][0]["Next"]]["Type"] == "Fail"


@pytest.mark.parametrize(
    ("machine", "functions"),
    [
        ("PlanningStateMachine", ["PlanRemindersFunction"]),
        ("DailyStateMachine", ["EscalateFunction", "BureauReportFunction"]),
    ],
)
def test_a_state_machine_may_invoke_its_functions_only(machine: str, functions: list[str]) -> None:
    policies = MACHINES[machine]["Policies"]
    invoked = [p["LambdaInvokePolicy"]["FunctionName"] for p in policies if "LambdaInvokePolicy" in p]
    assert invoked == [{"Ref": f} for f in functions]
    for policy in policies:
        for statement in policy.get("Statement", []):
            assert all(action.startswith("logs:") and "*" not in action for action in statement["Action"])


@pytest.mark.parametrize("machine", sorted(MACHINES))
def test_failed_timed_out_or_aborted_executions_raise_an_alarm(machine: str) -> None:
    alarms = [r["Properties"] for r in RESOURCES.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    watching = [
        alarm
        for alarm in alarms
        if {"ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"}
        <= {m["MetricStat"]["Metric"]["MetricName"] for m in alarm.get("Metrics", []) if "MetricStat" in m}
        and all(
            m["MetricStat"]["Metric"]["Dimensions"] == [{"Name": "StateMachineArn", "Value": {"Ref": machine}}]
            for m in alarm["Metrics"]
            if "MetricStat" in m
        )
    ]
    (alarm,) = watching
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")


@pytest.mark.parametrize("machine", sorted(MACHINES))
def test_execution_logs_hold_no_execution_data(machine: str) -> None:
    logging = MACHINES[machine]["Logging"]
    assert logging["IncludeExecutionData"] is False and logging["Level"] == "ERROR"
    (destination,) = logging["Destinations"]
    group = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
    assert RESOURCES[group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
