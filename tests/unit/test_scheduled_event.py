"""The scheduled functions' event: what `sam local generate-event` prints and what the Scheduler delivers.

The Scheduler's event is the `Input` of each ScheduleV2 in template.yaml (on the state machines), with the
`<aws.scheduler.…>` placeholders filled in at run time and the pseudo parameters at deploy time.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import boto3
import pytest

from dunning.dal.ladder import Cursor
from dunning.models.scheduled import ScheduledEvent
from dunning_tools.local.language_extensions import load_template

REPO_ROOT = Path(__file__).resolve().parents[2]
EVENTS_DIR = REPO_ROOT / "events"
TEMPLATE: dict[str, Any] = load_template(REPO_ROOT / "template.yaml")
SCHEDULES = {
    (target, name): event["Properties"]
    for target, resource in TEMPLATE["Resources"].items()
    if resource["Type"] in {"AWS::Serverless::Function", "AWS::Serverless::StateMachine"}
    for name, event in resource["Properties"].get("Events", {}).items()
    if event["Type"] == "ScheduleV2"
}
DEPLOYED = {"AWS::AccountId": "210987654321", "AWS::Region": "eu-west-1", "AWS::Partition": "aws"}


def _as_the_scheduler_delivers(input_: Any, schedule_name: str, scheduled_time: str) -> dict[str, Any]:
    """CloudFormation's !Sub of the pseudo parameters, then the Scheduler's context attributes."""
    text = input_["Fn::Sub"] if isinstance(input_, dict) and set(input_) == {"Fn::Sub"} else input_
    assert isinstance(text, str), "Input must be a string or a !Sub of one"
    names = set(re.findall(r"\$\{([^}]*)\}", text))
    assert names <= set(DEPLOYED), f"Input refers to {names - set(DEPLOYED)}"
    for name in names:
        text = text.replace(f"${{{name}}}", DEPLOYED[name])
    region, account = DEPLOYED["AWS::Region"], DEPLOYED["AWS::AccountId"]
    schedule_arn = f"arn:aws:scheduler:{region}:{account}:schedule/default/{schedule_name}"
    context = {
        "<aws.scheduler.execution-id>": "d8e3c5f0-3b1a-4c47-9e0b-6f2a1d9c7e55",
        "<aws.scheduler.schedule-arn>": schedule_arn,
        "<aws.scheduler.scheduled-time>": scheduled_time,
    }
    for placeholder, value in context.items():
        text = text.replace(placeholder, value)
    assert "<aws.scheduler." not in text, "a context attribute the Scheduler does not fill"
    delivered: dict[str, Any] = json.loads(text)
    return delivered


def test_the_schedules_start_the_planning_and_daily_state_machines_and_the_opt_out_sync() -> None:
    # The state machines pass the event on to every shard's invocation (tests/unit/test_state_machines.py).
    assert {target for target, _ in SCHEDULES} == {"PlanningStateMachine", "DailyStateMachine", "SyncOptOutsFunction"}


@pytest.mark.parametrize(("target", "name"), sorted(SCHEDULES))
def test_each_schedules_input_is_a_scheduled_event_of_this_account_and_region(target: str, name: str) -> None:
    schedule = SCHEDULES[(target, name)]
    delivered = _as_the_scheduler_delivers(schedule["Input"], f"dunning-{name}", "2026-11-28T02:00:00Z")
    event = ScheduledEvent.model_validate(delivered)

    assert re.fullmatch(r"[0-9]{12}", event.account) and event.account == DEPLOYED["AWS::AccountId"]
    assert event.region in boto3.session.Session().get_available_regions("scheduler")
    assert event.region == DEPLOYED["AWS::Region"]
    assert event.time == dt.datetime(2026, 11, 28, 2, 0, tzinfo=dt.UTC)  # the run's clock
    assert event.resources == [f"arn:aws:scheduler:eu-west-1:210987654321:schedule/default/dunning-{name}"]
    assert (event.source, event.detail_type, event.version) == ("aws.scheduler", "Scheduled Event", "0")


def test_the_sam_generate_event_shape_without_version_is_accepted() -> None:
    printed = json.loads((EVENTS_DIR / "scheduled_generate_event.json").read_text(encoding="utf-8"))
    assert "version" not in printed  # as `sam local generate-event cloudwatch scheduled-event` prints it
    event = ScheduledEvent.model_validate(printed)
    assert event.time == dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    assert (event.detail.shard, event.detail.shards, event.detail.cursor) == (None, 1, None)  # every shard


@pytest.mark.parametrize("name", ["scheduled_plan.json", "scheduled_escalate.json", "scheduled_bureau.json"])
def test_the_scheduler_shape_with_version_is_accepted(name: str) -> None:
    event = ScheduledEvent.model_validate_json((EVENTS_DIR / name).read_text(encoding="utf-8"))
    assert event.version == "0"


RESUME_CURSOR = Cursor(5, None, {"t": False, "p": 0, "w": "2026-11-28T08:00:00+00:00"}).encode()


@pytest.mark.parametrize(
    ("name", "detail"),
    [
        ("scheduled_plan_shard.json", (5, 64, None, False)),
        # The cursor a shard run returned (dal.ladder.Cursor: partition 5 from its start).
        ("scheduled_plan_shard_resume.json", (5, 64, RESUME_CURSOR, False)),
        ("scheduled_bureau_shard.json", (0, 4, None, False)),
        ("scheduled_bureau_assemble.json", (None, 4, None, True)),
    ],
)
def test_the_shard_samples_are_what_the_state_machines_send(name: str, detail: tuple[object, ...]) -> None:
    event = ScheduledEvent.model_validate_json((EVENTS_DIR / name).read_text(encoding="utf-8"))
    assert (event.detail.shard, event.detail.shards, event.detail.cursor, event.detail.assemble) == detail
    assert event.resources[0].endswith(("PlanningStateMachineHourly", "DailyStateMachineDaily"))
