"""The loans-set-aside alarm in template.yaml watches the metrics the planner, escalation and bureau emit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dunning.records import INVALID_METRIC, UNPROCESSABLE_METRIC
from dunning_tools.local.language_extensions import load_template

TEMPLATE: dict[str, Any] = load_template(Path(__file__).resolve().parents[2] / "template.yaml")


def test_the_alarm_sums_both_metrics_over_an_hour_against_the_threshold_parameter() -> None:
    alarm = TEMPLATE["Resources"]["LoansSetAsideAlarm"]["Properties"]
    watched = {m["MetricStat"]["Metric"]["MetricName"]: m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m}
    assert set(watched) == {INVALID_METRIC, UNPROCESSABLE_METRIC}
    for stat in watched.values():
        assert stat["Metric"]["Namespace"] == "Dunning"
        assert stat["Metric"]["Dimensions"] == [{"Name": "service", "Value": "dunning"}]
        assert (stat["Period"], stat["Stat"]) == (3600, "Sum")
    (returned,) = [m for m in alarm["Metrics"] if m.get("ReturnData")]
    assert returned["Expression"] == "FILL(invalid, 0) + FILL(unprocessable, 0)"
    assert alarm["Threshold"] == {"Ref": "InvalidLoanAlarmThreshold"}
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_the_threshold_is_a_parameter_operators_see_in_the_console() -> None:
    assert TEMPLATE["Parameters"]["InvalidLoanAlarmThreshold"]["Default"] == 10
    interface = TEMPLATE["Metadata"]["AWS::CloudFormation::Interface"]
    assert any("InvalidLoanAlarmThreshold" in group["Parameters"] for group in interface["ParameterGroups"])
    assert "InvalidLoanAlarmThreshold" in interface["ParameterLabels"]
