"""BureauReportFunction on the moto stack: the day's delinquency file in ReportsBucket."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import boto3

from dunning_tools.local import LocalStack, invoke
from tests.integration.after_sms_helpers import put_loan, scheduled, state_item

RUN = dt.datetime(2026, 12, 12, 6, 30, tzinfo=dt.UTC)  # the events/scheduled_bureau.json time
TODAY = dt.date(2026, 12, 12)
PAST_THRESHOLD = {
    "L-030": ("M1", 30),
    "L-031": ("M2", 31),
    "L-061": ("M3", 61),
    "L-090": ("M3", 90),
    "L-091": ("M4+", 91),
}


def seed_book(stack: LocalStack) -> None:
    for loan_id, (_, days) in PAST_THRESHOLD.items():
        put_loan(stack, loan_id, TODAY - dt.timedelta(days=days), amount_due="1234.5")
    put_loan(stack, "L-029", TODAY - dt.timedelta(days=29))
    put_loan(stack, "L-002", TODAY - dt.timedelta(days=2))
    put_loan(stack, "L-PAID", TODAY - dt.timedelta(days=70), status="PAID")


def report(stack: LocalStack, day: int = 0) -> dict[str, Any]:
    result: dict[str, Any] = invoke(
        stack, "BureauReportFunction", scheduled("scheduled_bureau.json", RUN + dt.timedelta(days=day))
    )
    return result


def file_bytes(stack: LocalStack, date: dt.date, name: str = "delinquencies.jsonl") -> bytes:
    body = boto3.client("s3").get_object(Bucket=stack.physical_id("ReportsBucket"), Key=f"bureau/{date}/{name}")["Body"]
    data: bytes = body.read()
    return data


def lines(stack: LocalStack, date: dt.date) -> list[dict[str, Any]]:
    return [json.loads(line) for line in file_bytes(stack, date).decode("utf-8").splitlines()]


def test_the_file_lists_exactly_the_loans_past_the_threshold_with_their_buckets(local_stack: LocalStack) -> None:
    seed_book(local_stack)

    manifest = report(local_stack)

    found = lines(local_stack, TODAY)
    assert [(line["loan_id"], line["bucket"], line["days_past_due"]) for line in found] == [
        (loan_id, bucket, days) for loan_id, (bucket, days) in sorted(PAST_THRESHOLD.items())
    ]
    assert {line["status"] for line in found} == {"DELINQUENT"}
    assert {line["amount_overdue"] for line in found} == {"1234.50"}
    assert found[0]["first_delinquency_date"] == "2026-11-13"
    assert found[0]["reporting_date"] == "2026-12-12"
    assert manifest["delinquent"] == 5 and manifest["settled"] == 0
    assert manifest["buckets"] == {"M1": 1, "M2": 1, "M3": 2, "M4+": 1}
    # The run's result is the manifest, plus the shard contract's `complete` and `cursor`.
    assert (manifest.pop("complete"), manifest.pop("cursor")) == (True, None)
    assert json.loads(file_bytes(local_stack, TODAY, "manifest.json")) == manifest
    assert state_item(local_stack, "BUREAU#REPORTED", "LOAN#L-030") is not None


def test_rerunning_a_date_rewrites_identical_bytes(local_stack: LocalStack) -> None:
    seed_book(local_stack)
    report(local_stack)
    first = (file_bytes(local_stack, TODAY), file_bytes(local_stack, TODAY, "manifest.json"))

    report(local_stack)

    assert (file_bytes(local_stack, TODAY), file_bytes(local_stack, TODAY, "manifest.json")) == first


def test_a_paid_loan_gets_one_settled_correction(local_stack: LocalStack) -> None:
    seed_book(local_stack)
    report(local_stack)
    put_loan(local_stack, "L-061", TODAY - dt.timedelta(days=61), amount_due="1234.5", status="PAID")
    tomorrow = TODAY + dt.timedelta(days=1)

    report(local_stack, day=1)
    settling_file = file_bytes(local_stack, tomorrow)
    report(local_stack, day=1)  # a rerun of the settling date repeats the correction, byte for byte
    assert file_bytes(local_stack, tomorrow) == settling_file

    settled = [line for line in lines(local_stack, tomorrow) if line["status"] == "SETTLED"]
    assert settled == [
        {
            "loan_id": "L-061",
            "borrower_id": "B-L-061",
            "reporting_date": "2026-12-13",
            "days_past_due": 0,
            "bucket": "M0",
            "amount_overdue": "0.00",
            "currency": "CNY",
            "first_delinquency_date": "2026-10-13",
            "status": "SETTLED",
        }
    ]
    assert "L-061" not in {line["loan_id"] for line in lines(local_stack, tomorrow) if line["status"] != "SETTLED"}

    report(local_stack, day=2)
    assert "L-061" not in {line["loan_id"] for line in lines(local_stack, TODAY + dt.timedelta(days=2))}
    assert state_item(local_stack, "BUREAU#REPORTED", "LOAN#L-061") is None
    # The loan that crossed the threshold since (29 days past due yesterday) is reported from its first day.
    assert state_item(local_stack, "BUREAU#REPORTED", "LOAN#L-029") is not None
