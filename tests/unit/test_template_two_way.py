"""template.yaml wires two-way SMS: the reference-code index the code reads, and what InboundSmsFunction may do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dunning.dal.deliveries import MESSAGE_ID_INDEX, REFERENCE_ATTRIBUTES, REFERENCE_INDEX
from dunning_tools.local.language_extensions import load_template

TEMPLATE: dict[str, Any] = load_template(Path(__file__).resolve().parents[2] / "template.yaml")
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]


def _statements(function: str) -> list[dict[str, Any]]:
    return [
        statement
        for policy in RESOURCES[function]["Properties"].get("Policies", [])
        for statement in policy.get("Statement", [])
        if "Effect" in statement
    ]


def _allowing(function: str, action: str) -> list[Any]:
    return [s["Resource"] for s in _statements(function) if action in s["Action"]]


def test_the_reference_index_projects_what_a_verification_reads_and_never_the_body() -> None:
    table = RESOURCES["DeliveriesTable"]["Properties"]
    indexes = {i["IndexName"]: i for i in table["GlobalSecondaryIndexes"]}
    index = indexes[REFERENCE_INDEX]
    assert index["KeySchema"] == [
        {"AttributeName": "reference", "KeyType": "HASH"},
        {"AttributeName": "record_id", "KeyType": "RANGE"},
    ]
    assert {"AttributeName": "reference", "AttributeType": "S"} in table["AttributeDefinitions"]
    keys = {"loan_id", "record_id", "reference"}  # projected by DynamoDB itself
    assert index["Projection"]["ProjectionType"] == "INCLUDE"
    assert set(index["Projection"]["NonKeyAttributes"]) == set(REFERENCE_ATTRIBUTES) - keys
    assert "body" not in index["Projection"]["NonKeyAttributes"]
    assert "phone" in index["Projection"]["NonKeyAttributes"]  # erased with the record: an erased one matches no number


def test_inbound_sms_may_query_only_its_two_indexes_and_put_only_on_the_loan_events_bus() -> None:
    queried = _allowing("InboundSmsFunction", "dynamodb:Query")
    assert queried == [
        [
            {"Fn::Sub": f"${{DeliveriesTable.Arn}}/index/{REFERENCE_INDEX}"},
            {"Fn::Sub": f"${{DeliveriesTable.Arn}}/index/{MESSAGE_ID_INDEX}"},
        ]
    ]
    assert _allowing("InboundSmsFunction", "events:PutEvents") == [{"Fn::GetAtt": ["LoanEventsBus", "Arn"]}]
    # Answers are notice claims in StateTable, never delivery records (escalation counts those).
    assert _allowing("InboundSmsFunction", "dynamodb:PutItem") == [{"Fn::GetAtt": ["StateTable", "Arn"]}]
    loans = _allowing("InboundSmsFunction", "dynamodb:BatchGetItem")
    assert loans == [_allowing("LoanEventsFunction", "dynamodb:BatchGetItem")[0]]  # LoansTable, created or existing


def test_the_loan_events_rule_lists_detail_types_and_not_ours() -> None:
    pattern = RESOURCES["LoanEventsFunction"]["Properties"]["Events"]["LoanEvents"]["Properties"]["Pattern"]
    assert "BorrowerReplied" not in pattern["detail-type"] and "CollectionCaseOpened" not in pattern["detail-type"]
