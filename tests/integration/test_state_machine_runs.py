"""The template's state machines executed in moto, their Lambda tasks running the functions in-process.

The definitions are the template's (rendered by the local stack with the stack's own values),
never a copy: a sharded execution must plan, escalate and report exactly what one unsharded
invocation does.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
import time_machine
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns.models import sns_backends

from dunning_tools import cli
from dunning_tools.local import (
    EXECUTE_STATE_MACHINES,
    ExecutionFailed,
    LocalStack,
    LocalStackError,
    deploy_stack,
    drain_queue,
    invoke,
    run_schedule,
    run_state_machine,
    scheduler_event,
)
from dunning_tools.local.language_extensions import load_template
from tests.integration.after_sms_helpers import event_file, put_loan, scheduled

PLAN_AT = dt.datetime(2026, 11, 28, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai: inside the send window
TODAY = dt.date(2026, 11, 28)
PARAMETERS = {"MaxPartsPerSecond": "1000", "PlanningShards": "4"}


@dataclass(frozen=True)
class Outcome:
    """What a run left behind: send claims, SMS recipients, bureau files, and the run's own answer."""

    claims: set[tuple[str, str, str]]
    sms: list[str]
    files: dict[str, bytes]
    result: Any


def run_in_fresh_moto(run: Callable[[LocalStack], Any], *, seed: Callable[[LocalStack], None] | None = None) -> Outcome:
    """Deploy the template into an empty moto (executing state machines), seed the book, run, collect the outcome.

    The unsharded and the sharded run each get their own moto: a stack's fixed names (SNS log groups) exist once.
    """
    with mock_aws(config=EXECUTE_STATE_MACHINES):
        stack = deploy_stack(parameters=PARAMETERS)
        (seed or seed_book)(stack)
        result = run(stack)
        bucket = stack.physical_id("ReportsBucket")
        s3 = boto3.client("s3")
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
        files = {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}
        return Outcome(claims(stack), sms_phones(), files, result)


def seed_book(stack: LocalStack) -> None:
    """One loan per borrower, due dates across the ladder's window (every segment has some), one per day."""
    for days_past_due in range(-4, 31):
        put_loan(
            stack,
            f"L{days_past_due + 10:03d}",
            TODAY - dt.timedelta(days=days_past_due),
            phone=f"+86138001{days_past_due + 10:05d}",
            amount_due=Decimal("1200.00"),
        )


def claims(stack: LocalStack) -> set[tuple[str, str, str]]:
    """The send claims in StateTable: (loan, cycle#stage, state)."""
    table = boto3.resource("dynamodb").Table(stack.physical_id("StateTable"))
    return {
        (str(item["pk"]), str(item["sk"]), str(item["state"]))
        for item in table.scan()["Items"]
        if str(item["sk"]).startswith("SEND#")
    }


def sms_phones() -> list[str]:
    return sorted(phone for phone, _ in sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sms_messages.values())


@pytest.fixture
def stack(moto_aws: None) -> LocalStack:
    return deploy_stack(parameters=PARAMETERS)


def test_the_local_definition_is_the_templates_with_the_stacks_values(stack: LocalStack) -> None:
    template = load_template(stack.root.joinpath("template.yaml"))
    for logical_id, machine in stack.state_machines.items():
        text = json.dumps(template["Resources"][logical_id]["Properties"]["Definition"])
        values = {
            "${Partition}": "aws",
            "${Shards}": "4",
            "${Concurrency}": "40",
            "${PlanRemindersFunctionArn}": stack.function_configuration("PlanRemindersFunction")["FunctionArn"],
            "${EscalateFunctionArn}": stack.function_configuration("EscalateFunction")["FunctionArn"],
            "${BureauReportFunctionArn}": stack.function_configuration("BureauReportFunction")["FunctionArn"],
        }
        for placeholder, value in values.items():
            text = text.replace(placeholder, value)
        assert json.loads(machine.definition) == json.loads(text), logical_id
        assert "$$.Map.Item.Index" in machine.definition  # CloudFormation's substitution leaves `$$` alone


def plan_unsharded(stack: LocalStack) -> Any:
    with time_machine.travel(PLAN_AT, tick=False):
        report = invoke(stack, "PlanRemindersFunction", scheduled("scheduled_plan.json", PLAN_AT))
        drain_queue(stack)
    return report


def test_the_hourly_run_over_three_shards_plans_and_sends_what_one_unsharded_invocation_does(
    aws_credentials: None,
) -> None:
    unsharded = run_in_fresh_moto(plan_unsharded)

    def plan_sharded(stack: LocalStack) -> Any:
        with time_machine.travel(PLAN_AT, tick=False):
            run = run_schedule(stack, "plan", PLAN_AT)
            drain_queue(stack)
        return run

    sharded = run_in_fresh_moto(plan_sharded)

    assert unsharded.result["complete"] is True and unsharded.result["jobs_enqueued"] > 3
    assert sharded.claims == unsharded.claims and {state for _, _, state in sharded.claims} == {"SENT"}
    assert sharded.sms == unsharded.sms and len(set(sharded.sms)) == len(sharded.sms)  # once each
    run = sharded.result
    assert run.status == "SUCCEEDED"
    details = sorted((i.event["detail"]["shard"], i.event["detail"]["shards"]) for i in run.invocations)
    assert details == [(shard, 4) for shard in range(4)]
    assert {i.event["time"] for i in run.invocations} == {"2026-11-28T02:00:00Z"}  # the schedule's time, unchanged
    assert {(i.result["complete"], i.result["cursor"]) for i in run.invocations} == {(True, None)}
    assert sum(i.result["jobs_enqueued"] for i in run.invocations) == unsharded.result["jobs_enqueued"]


def test_a_shard_that_stops_near_its_time_limit_is_invoked_again_with_its_cursor(aws_credentials: None) -> None:
    unsharded = run_in_fresh_moto(plan_unsharded)

    def plan_in_short_invocations(stack: LocalStack) -> Any:
        # A 19 s budget is under the planner's 20 s margin: each invocation plans one due date, then stops.
        boto3.client("lambda").update_function_configuration(
            FunctionName=stack.physical_id("PlanRemindersFunction"), Timeout=19
        )
        with time_machine.travel(PLAN_AT, tick=False):
            run = run_schedule(stack, "plan", PLAN_AT)
            drain_queue(stack)
        return run

    sharded = run_in_fresh_moto(plan_in_short_invocations)

    for shard in range(4):
        chain = [i for i in sharded.result.invocations if i.event["detail"]["shard"] == shard]
        assert len(chain) > 2, f"shard {shard} was not resumed"
        assert chain[0].event["detail"]["cursor"] is None
        for before, after in itertools.pairwise(chain):
            assert before.result["complete"] is False and before.result["cursor"]
            assert after.event["detail"]["cursor"] == before.result["cursor"]
            assert after.event["time"] == before.event["time"]
        assert chain[-1].result["complete"] is True
    assert sharded.claims == unsharded.claims
    assert sharded.sms == unsharded.sms


DAILY_AT = dt.datetime(2026, 11, 28, 6, 30, tzinfo=dt.UTC)


def seed_daily_book(stack: LocalStack) -> None:
    seed_book(stack)
    put_loan(stack, "L-OLD", TODAY - dt.timedelta(days=45), phone="+8613800200045")
    put_loan(stack, "L-PAID", TODAY - dt.timedelta(days=70), status="PAID")


def test_the_daily_run_escalates_and_writes_the_bureau_file_from_its_parts(aws_credentials: None) -> None:
    def daily_unsharded(stack: LocalStack) -> Any:
        with time_machine.travel(DAILY_AT, tick=False):
            invoke(stack, "BureauReportFunction", scheduled("scheduled_bureau.json", DAILY_AT))
            return invoke(stack, "EscalateFunction", scheduled("scheduled_escalate.json", DAILY_AT))

    def daily_sharded(stack: LocalStack) -> Any:
        with time_machine.travel(DAILY_AT, tick=False):
            return run_schedule(stack, "daily", DAILY_AT)

    unsharded = run_in_fresh_moto(daily_unsharded, seed=seed_daily_book)
    sharded = run_in_fresh_moto(daily_sharded, seed=seed_daily_book)

    run = sharded.result
    escalation, bureau = run.output
    assert escalation == {"escalation": "complete", "failed": False}
    assert bureau["bureau"]["file"] == f"bureau/{TODAY}/delinquencies.jsonl" and bureau["bureau"]["delinquent"] == 2
    # The file and its manifest are the unsharded run's, byte for byte; the parts are extra.
    day = f"bureau/{TODAY}"
    for name in ("delinquencies.jsonl", "manifest.json"):
        assert sharded.files[f"{day}/{name}"] == unsharded.files[f"{day}/{name}"]
    parts = [i for i in run.invocations if i.function == "BureauReportFunction"]
    assert sorted(str(i.result.get("part")) for i in parts[:-1]) == [
        f"{day}/parts/{n:04d}-of-0004.jsonl" for n in range(4)
    ]
    assert parts[-1].event["detail"] == {"assemble": True, "shards": 4}  # after every part
    opened = sum(sum(i.result["opened"].values()) for i in run.invocations if i.function == "EscalateFunction")
    assert opened == sum(unsharded.result["opened"].values()) == 2


def test_a_task_that_fails_fails_the_execution_with_its_error(stack: LocalStack) -> None:
    not_an_event: dict[str, Any] = {"detail": {}}  # no time: the planner rejects it, so the task has no result

    with pytest.raises(ExecutionFailed) as failed:
        run_state_machine(stack, "PlanningStateMachine", not_an_event)

    assert failed.value.run.status == "FAILED" and failed.value.run.error == "States.Runtime"
    assert {i.result["status"] for i in failed.value.run.invocations} == {"rejected"}


def test_the_scheduler_event_is_the_templates_input_at_the_scheduled_time(stack: LocalStack) -> None:
    shanghai = dt.timezone(dt.timedelta(hours=8))
    event = scheduler_event(stack, "PlanningStateMachine", dt.datetime(2026, 11, 28, 10, tzinfo=shanghai))
    assert event["time"] == "2026-11-28T02:00:00Z"
    assert (event["account"], event["region"], event["detail"]) == (DEFAULT_ACCOUNT_ID, "us-east-1", {})
    schedule = f"arn:aws:scheduler:us-east-1:{DEFAULT_ACCOUNT_ID}:schedule/default/PlanningStateMachineHourly"
    assert event["resources"] == [schedule]


def test_moto_that_does_not_execute_state_machines_is_a_clear_error(aws_credentials: None) -> None:
    # Explicitly off: a moto server of this session (moto_server) may have turned it on process-wide.
    with mock_aws(config={"stepfunctions": {"execute_state_machine": False}}):
        stack = deploy_stack()
        with pytest.raises(LocalStackError, match="moto does not execute state machines"):
            run_schedule(stack, "plan", PLAN_AT)


def test_the_hourly_run_over_http(moto_server: str) -> None:
    stack = deploy_stack(parameters=PARAMETERS)
    put_loan(stack, "L-HTTP", TODAY - dt.timedelta(days=1))

    with time_machine.travel(PLAN_AT, tick=False):
        run = run_schedule(stack, "plan", PLAN_AT)

    assert run.status == "SUCCEEDED" and len(run.invocations) == 4
    assert sum(i.result["jobs_enqueued"] for i in run.invocations) == 1


def test_the_shard_sample_events_run_as_sam_local_invoke_would_send_them(stack: LocalStack) -> None:
    put_loan(stack, "L-OLD", TODAY - dt.timedelta(days=45))
    for shard in range(4):
        part = {**event_file("scheduled_bureau_shard.json")}
        part["detail"] = {**part["detail"], "shard": shard}
        assert invoke(stack, "BureauReportFunction", part)["complete"] is True
    manifest = invoke(stack, "BureauReportFunction", event_file("scheduled_bureau_assemble.json"))
    assert manifest["delinquent"] == 1 and manifest["file"] == "bureau/2026-12-12/delinquencies.jsonl"
    resumed = invoke(stack, "PlanRemindersFunction", event_file("scheduled_plan_shard_resume.json"))
    assert resumed["complete"] is True and resumed["cursor"] is None


def test_the_schedule_command_fires_the_state_machine_on_the_loans_given(
    aws_credentials: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    loans = tmp_path / "loans.json"
    due = (TODAY - dt.timedelta(days=1)).isoformat()
    loans.write_text(
        json.dumps(
            [
                {
                    "loan_id": "L-CLI",
                    "borrower_id": "B-CLI",
                    "borrower_name": "王小明",
                    "phone": "+8613800138000",
                    "status": "OPEN",
                    "due_date": due,
                    "amount_due": 3000.00,
                    "currency": "CNY",
                }
            ]
        ),
        encoding="utf-8",
    )
    argv = ["schedule", "plan", "--time", "2026-11-28T02:00:00Z", "--loans", str(loans)]

    assert cli.main([*argv, "--parameter-overrides", "PlanningShards=2"]) == 0

    printed = json.loads(capsys.readouterr().out)
    assert printed["status"] == "SUCCEEDED"
    assert sorted(i["detail"]["shard"] for i in printed["invocations"]) == [0, 1]
    assert sum(i["result"]["jobs_enqueued"] for i in printed["invocations"]) == 1


def test_the_schedule_command_refuses_a_time_without_offset(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["schedule", "daily", "--time", "2026-11-28T06:30:00"])
    assert "expected an ISO 8601 time with its offset" in capsys.readouterr().err


def test_moto_runs_each_map_one_iteration_at_a_time_and_the_stack_keeps_its_definition(stack: LocalStack) -> None:
    """In-process invocations swap os.environ: the runner registers the Maps with MaxConcurrency 1 (still within the
    template's bound), so no other iteration's thread reads the environment mid-swap; nothing else changes."""
    run_schedule(stack, "plan", PLAN_AT)
    machine = stack.state_machines["PlanningStateMachine"]
    registered = json.loads(
        boto3.client("stepfunctions").describe_state_machine(stateMachineArn=machine.arn)["definition"]
    )
    own = json.loads(machine.definition)
    assert own["States"]["PlanEachShard"]["MaxConcurrencyPath"] == "$.concurrency"
    assert registered["States"]["PlanEachShard"]["MaxConcurrency"] == 1
    assert "MaxConcurrencyPath" not in registered["States"]["PlanEachShard"]
    del own["States"]["PlanEachShard"]["MaxConcurrencyPath"], registered["States"]["PlanEachShard"]["MaxConcurrency"]
    assert registered == own
