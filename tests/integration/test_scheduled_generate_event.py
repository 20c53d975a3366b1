"""The scheduled functions run on the event `sam local generate-event cloudwatch scheduled-event` prints."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dunning_tools.local import LocalStack, invoke
from tests.conftest import EVENTS_DIR

GENERATED: dict[str, Any] = json.loads((EVENTS_DIR / "scheduled_generate_event.json").read_text(encoding="utf-8"))


def test_the_generated_event_has_no_version() -> None:
    assert "version" not in GENERATED and GENERATED["time"] == "1970-01-01T00:00:00Z"


@pytest.mark.parametrize("function", ["PlanRemindersFunction", "EscalateFunction"])
def test_planner_and_escalation_run_at_the_generated_events_time(module_stack: LocalStack, function: str) -> None:
    report = invoke(module_stack, function, GENERATED)
    assert report.get("status") != "rejected", report
    assert report["now"] == "1970-01-01T00:00:00+00:00" and report["complete"] is True


def test_bureau_report_writes_the_generated_events_days_file(module_stack: LocalStack) -> None:
    manifest = invoke(module_stack, "BureauReportFunction", GENERATED)
    assert manifest.get("status") != "rejected", manifest
    assert manifest["file"] == "bureau/1970-01-01/delinquencies.jsonl"
