"""The pure part of change capture: the verdict on one LoansTable change and its record, without AWS."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import DynamoDBStreamModel

from dunning.loan_changes import ChangeKind, LoanChange, MissingNewImage, check, intake_record
from dunning.models.delivery import Outcome
from dunning.models.loan import InvalidLoan, Loan
from functions.loan_changes.app import LoanStreamRecord

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"
AT = dt.datetime(2026, 11, 20, 3, 15, 42, tzinfo=dt.UTC)
ITEM: dict[str, Any] = {
    "loan_id": "L-1",
    "borrower_id": "B-1",
    "borrower_name": "Jane Doe",
    "phone": "+14155550123",
    "status": "OPEN",
    "due_date": "2026-11-16",
    "amount_due": Decimal("250.00"),
    "currency": "USD",
}


def change(kind: ChangeKind = ChangeKind.INSERT, at: dt.datetime = AT, **item: Any) -> LoanChange:
    image = {k: v for k, v in {**ITEM, **item}.items() if v is not None}
    return LoanChange(
        loan_id="L-1",
        kind=kind,
        changed_at=at,
        sequence_number="100",
        item=None if kind is ChangeKind.REMOVE else image,
    )


def test_a_valid_item_is_a_loan() -> None:
    verdict = check(change())
    assert isinstance(verdict, Loan)
    assert verdict.loan_id == "L-1"


@pytest.mark.parametrize(
    ("broken", "reason"),
    [
        ({"due_date": "2026/11/16"}, "invalid_due_date"),
        ({"due_date": "2026-02-30"}, "invalid_due_date"),
        ({"status": "open"}, "invalid_status"),
        ({"status": None}, "missing_status"),
        ({"phone": None}, "missing_phone"),
        ({"currency": "XYZ"}, "invalid_currency"),
    ],
)
def test_a_broken_item_is_invalid_with_its_reason(broken: dict[str, Any], reason: str) -> None:
    verdict = check(change(**broken))
    assert isinstance(verdict, InvalidLoan)
    assert verdict.reason == reason


def test_a_removal_needs_no_check() -> None:
    assert check(change(ChangeKind.REMOVE)) is None


def test_a_change_without_new_image_is_a_clear_error() -> None:
    keys_only = change().model_copy(update={"item": None})
    with pytest.raises(MissingNewImage, match="NEW_IMAGE"):
        check(keys_only)


def test_the_record_is_suppressed_at_intake_dated_by_the_day_of_the_change() -> None:
    broken = change(due_date="2026/11/16", phone="+14155550123")
    verdict = check(broken)
    assert isinstance(verdict, InvalidLoan)

    record = intake_record(broken, verdict, retention_days=400)

    assert record.outcome is Outcome.SUPPRESSED
    assert (record.stage, record.reason, record.cycle) == ("intake", "invalid_due_date", "2026/11/16")
    assert record.record_id == "2026-11-20T00:00:00.000Z#2026/11/16#intake#invalid_due_date"
    assert record.updated_at == AT
    assert record.expires_at == int(dt.datetime(2027, 12, 25, tzinfo=dt.UTC).timestamp())
    assert record.phone is None and record.body is None  # no PII on the record


def test_the_same_change_always_makes_the_same_record_and_another_day_a_new_one() -> None:
    broken = change(status="open")
    verdict = check(broken)
    assert isinstance(verdict, InvalidLoan)
    later_that_day = change(status="open", at=AT + dt.timedelta(hours=5))
    next_day = change(status="open", at=AT + dt.timedelta(days=1))

    assert intake_record(broken, verdict, 400) == intake_record(broken, verdict, 400)
    assert intake_record(later_that_day, verdict, 400).record_id == intake_record(broken, verdict, 400).record_id
    assert intake_record(next_day, verdict, 400).record_id != intake_record(broken, verdict, 400).record_id


def test_the_parser_model_reads_the_sample_stream_event() -> None:
    event = json.loads((EVENTS_DIR / "dynamodb_stream_loan_changes.json").read_text(encoding="utf-8"))
    DynamoDBStreamModel.model_validate(event)  # Powertools' own model accepts the sample as well

    records = [LoanStreamRecord.model_validate(record) for record in event["Records"]]

    first = records[0].dynamodb
    assert first.ApproximateCreationDateTime == dt.datetime.fromtimestamp(1795910400, dt.UTC)
    assert first.NewImage is not None and first.NewImage["amount_due"] == Decimal("1200.50")
    assert first.Keys == {"loan_id": "LN-20261116-0042"}
    assert [r.eventName for r in records] == ["INSERT", "MODIFY", "REMOVE"]
    assert records[2].dynamodb.NewImage is None
