"""Fn::ForEach expanded as CloudFormation expands it (dunning_tools.local.language_extensions)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from dunning_tools.local.language_extensions import LanguageExtensionsError, expand, main

TRANSFORMS = ["AWS::LanguageExtensions", "AWS::Serverless-2016-10-31"]


def _template(resources: dict[str, Any], **sections: Any) -> dict[str, Any]:
    return {"Transform": TRANSFORMS, "Resources": resources, **sections}


def _groups(collection: Any) -> dict[str, Any]:
    return {
        "Fn::ForEach::Groups": [
            "Fn",
            collection,
            {
                "${Fn}LogGroup": {
                    "Type": "AWS::Logs::LogGroup",
                    "Properties": {"LogGroupName": {"Fn::Sub": "/aws/lambda/${${Fn}Function}"}},
                }
            },
        ]
    }


def test_a_loop_writes_one_resource_per_item_with_the_item_in_keys_and_sub_strings() -> None:
    expanded = expand(_template({"Topic": {"Type": "AWS::SNS::Topic"}, **_groups(["Plan", "Send"])}))
    assert expanded["Resources"] == {
        "Topic": {"Type": "AWS::SNS::Topic"},
        "PlanLogGroup": {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {"LogGroupName": {"Fn::Sub": "/aws/lambda/${PlanFunction}"}},
        },
        "SendLogGroup": {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {"LogGroupName": {"Fn::Sub": "/aws/lambda/${SendFunction}"}},
        },
    }
    assert expanded["Transform"] == "AWS::Serverless-2016-10-31"  # what SAM's transform is handed


def test_ref_to_the_identifier_is_the_item_and_plain_strings_are_left_as_written() -> None:
    fragment = {
        "${Fn}Alarm": {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "AlarmDescription": {"Fn::FindInMap": ["Texts", {"Ref": "Fn"}, "Errors"]},
                "Namespace": "${Fn} stays",
                "AlarmName": {"Fn::Sub": ["${Stack}-${Fn}", {"Stack": {"Ref": "AWS::StackName"}, "Of": {"Ref": "Fn"}}]},
            },
        }
    }
    expanded = expand(_template({"Fn::ForEach::Alarms": ["Fn", ["Plan"], fragment]}))
    assert expanded["Resources"]["PlanAlarm"]["Properties"] == {
        "AlarmDescription": {"Fn::FindInMap": ["Texts", "Plan", "Errors"]},
        "Namespace": "${Fn} stays",
        "AlarmName": {"Fn::Sub": ["${Stack}-Plan", {"Stack": {"Ref": "AWS::StackName"}, "Of": "Plan"}]},
    }


def test_ampersand_puts_in_the_item_without_its_non_alphanumeric_characters() -> None:
    fragment = {"Queue&{Name}": {"Type": "AWS::SQS::Queue"}}
    expanded = expand(_template({"Fn::ForEach::Queues": ["Name", ["a-b.c", "d_e"], fragment]}))
    assert set(expanded["Resources"]) == {"Queueabc", "Queuede"}


def test_nested_loops_expand_every_pair_and_outputs_and_conditions_expand_too() -> None:
    inner = {"Fn::ForEach::Metrics": ["Metric", ["Errors", "Throttles"], {"${Fn}${Metric}Alarm": {"Type": "X"}}]}
    template = _template(
        {"Fn::ForEach::Functions": ["Fn", ["Plan", "Send"], inner]},
        Outputs={"Fn::ForEach::Out": ["Fn", ["Plan"], {"${Fn}Name": {"Value": {"Ref": "Fn"}}}]},
        Conditions={"Fn::ForEach::Is": ["Fn", ["Plan"], {"Is${Fn}": {"Fn::Equals": [{"Ref": "Fn"}, "Plan"]}}]},
    )
    expanded = expand(template)
    assert sorted(expanded["Resources"]) == [
        "PlanErrorsAlarm",
        "PlanThrottlesAlarm",
        "SendErrorsAlarm",
        "SendThrottlesAlarm",
    ]
    assert expanded["Outputs"] == {"PlanName": {"Value": "Plan"}}
    assert expanded["Conditions"] == {"IsPlan": {"Fn::Equals": ["Plan", "Plan"]}}


def test_the_input_is_left_untouched() -> None:
    template = _template(_groups(["Plan"]))
    before = json.dumps(template, sort_keys=True)
    expand(template)
    assert json.dumps(template, sort_keys=True) == before


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({"PlanLogGroup": {"Type": "X"}, **_groups(["Plan"])}, "PlanLogGroup defined twice"),
        (_groups({"Ref": "FunctionNames"}), "literal list of strings"),
        (_groups(["Plan", 3]), "literal list of strings"),
        ({"Fn::ForEach::Bad": ["Fn", ["Plan"]]}, "expected [identifier, collection, fragment]"),
        ({"Fn::ForEach::Bad": ["F-n", ["Plan"], {"A": {}}]}, "must be alphanumeric"),
        ({"Fn::ForEach::Bad": ["LogLevel", ["Plan"], {"A${LogLevel}": {}}]}, "already a loop identifier or parameter"),
        (
            {"A": {"Type": "X", "Properties": {"Fn::ForEach::Tags": ["T", ["a"], {"${T}": "x"}]}}},
            "found Resources.A.Properties.Fn::ForEach::Tags",
        ),
    ],
)
def test_what_cannot_be_expanded_is_refused_with_the_loop_named(resources: dict[str, Any], message: str) -> None:
    with pytest.raises(LanguageExtensionsError, match=re.escape(message)):
        expand(_template(resources, Parameters={"LogLevel": {"Type": "String"}}))


def test_a_loop_without_the_transform_is_refused_and_a_template_without_loops_passes() -> None:
    with pytest.raises(LanguageExtensionsError, match="without the AWS::LanguageExtensions transform"):
        expand({"Transform": "AWS::Serverless-2016-10-31", "Resources": _groups(["Plan"])})
    plain = {"Transform": "AWS::Serverless-2016-10-31", "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}
    assert expand(plain) == plain


def test_main_writes_the_expanded_template_and_reports_a_bad_one(tmp_path: Path) -> None:
    source, target = tmp_path / "template.yaml", tmp_path / "out" / "expanded.json"
    source.write_text(
        "Transform: [AWS::LanguageExtensions]\n"
        "Resources:\n"
        "  Fn::ForEach::Topics:\n"
        "    - Name\n"
        "    - [Alarms, Replies]\n"
        "    - ${Name}Topic: {Type: AWS::SNS::Topic}\n",
        encoding="utf-8",
    )
    assert main([str(source), str(target)]) == 0
    assert json.loads(target.read_text(encoding="utf-8")) == {
        "Resources": {"AlarmsTopic": {"Type": "AWS::SNS::Topic"}, "RepliesTopic": {"Type": "AWS::SNS::Topic"}}
    }
    source.write_text("Resources:\n  Fn::ForEach::Topics: [Name, [A], {'${Name}': {}}]\n", encoding="utf-8")
    assert main([str(source), str(target)]) == 1
    assert main([str(source)]) == 2
