"""template.yaml wires erasure and retention: the index, the event, the phone-hash key, report expiry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dunning.dal.deliveries import BORROWER_INDEX
from dunning.dal.phone_keys import ENCRYPTION_CONTEXT
from dunning.models.events import LOAN_EVENT_TYPES
from dunning_tools.local.language_extensions import load_template

TEMPLATE: dict[str, Any] = load_template(Path(__file__).resolve().parents[2] / "template.yaml")
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
# The functions that key phone numbers (opt-outs, notices about a number) and so need the key.
HASHING = {  # not the planner: it never reads opt-outs (the sender does), nor any number (the index holds none)
    "SendRemindersFunction",
    "LoanEventsFunction",
    "InboundSmsFunction",
    "EscalateFunction",
    "SyncOptOutsFunction",
}


def _statements(function: str) -> list[dict[str, Any]]:
    return [
        statement
        for policy in RESOURCES[function]["Properties"].get("Policies", [])
        for statement in policy.get("Statement", [])
        if "Effect" in statement
    ]


def test_deliveries_can_be_found_by_borrower_with_keys_only() -> None:
    indexes = {i["IndexName"]: i for i in RESOURCES["DeliveriesTable"]["Properties"]["GlobalSecondaryIndexes"]}
    assert indexes[BORROWER_INDEX]["KeySchema"] == [
        {"AttributeName": "borrower_id", "KeyType": "HASH"},
        {"AttributeName": "record_id", "KeyType": "RANGE"},
    ]
    assert indexes[BORROWER_INDEX]["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    assert "MessageIdIndex" in indexes  # the contract's index stays


def test_the_loan_events_rule_takes_every_contract_event_including_erasure() -> None:
    pattern = RESOURCES["LoanEventsFunction"]["Properties"]["Events"]["LoanEvents"]["Properties"]["Pattern"]
    assert "BorrowerErasureRequested" in LOAN_EVENT_TYPES
    assert sorted(pattern["detail-type"]) == sorted(LOAN_EVENT_TYPES)


def test_only_the_functions_that_key_numbers_may_unwrap_the_phone_hash_key() -> None:
    functions = [name for name, r in RESOURCES.items() if r["Type"] == "AWS::Serverless::Function"]
    for function in functions:
        kms = [s for s in _statements(function) if any(str(a).startswith("kms:") for a in s["Action"])]
        if function not in HASHING:
            assert kms == [], function
            continue
        assert len(kms) == 1, function
        assert sorted(kms[0]["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
        assert kms[0]["Resource"] == {"Fn::GetAtt": ["PhoneHashKey", "Arn"]}
        assert kms[0]["Condition"] == {"StringEquals": {"kms:EncryptionContext:purpose": ENCRYPTION_CONTEXT["purpose"]}}


def test_the_phone_hash_key_outlives_the_stack_and_rotates() -> None:
    key = RESOURCES["PhoneHashKey"]
    assert key["DeletionPolicy"] == "Retain" and key["Properties"]["EnableKeyRotation"] is True
    assert TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]["PHONE_HASH_KEY"] == {
        "Fn::GetAtt": ["PhoneHashKey", "Arn"]
    }


def test_bureau_files_expire_after_the_report_retention_parameter() -> None:
    rules = RESOURCES["ReportsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    bureau = next(r for r in rules if r.get("Prefix") == "bureau/")
    assert bureau["Status"] == "Enabled"
    assert bureau["ExpirationInDays"] == {"Ref": "ReportRetentionDays"}
    assert "NoncurrentVersionExpiration" in bureau  # the bucket is versioned: old versions go too
