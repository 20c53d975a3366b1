"""Integration-tier fixtures: one moto stack per module, and the fault-injection totals in the summary."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from dunning_tools.local import EXECUTE_STATE_MACHINES, LocalStack, deploy_stack
from tests.conftest import REGION


@pytest.fixture(scope="module")
def module_stack() -> Iterator[LocalStack]:
    """template.yaml deployed once for a module (deploying is most of a short test's cost).

    Tests using it must leave it usable (or empty it themselves); a high MaxPartsPerSecond keeps the
    sender's real-time pacing out of the test's wall clock.
    """
    with pytest.MonkeyPatch.context() as env:
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            env.delenv(name, raising=False)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", REGION)
        with mock_aws(config=EXECUTE_STATE_MACHINES):
            yield deploy_stack(parameters={"MaxPartsPerSecond": "1000"})


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Totals of the fault-injection scenarios (each records its counts with `record_property`)."""
    totals = {"scenarios": 0, "fault_duplicates": 0, "fault_lost": 0}
    for report in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get("failed", []):
        properties = dict(getattr(report, "user_properties", []))
        if report.when == "call" and "fault_lost" in properties:
            totals["scenarios"] += 1
            totals["fault_duplicates"] += int(properties["fault_duplicates"])
            totals["fault_lost"] += int(properties["fault_lost"])
    if totals["scenarios"]:
        terminalreporter.write_line(
            f"fault injection: {totals['scenarios']} scenarios, duplicates={totals['fault_duplicates']}"
            f" lost={totals['fault_lost']}"
        )
