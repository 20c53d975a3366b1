"""Read models: StoredRecord (a DeliveriesTable record read back, full, projected or erased) and
CollectionCase (a StateTable case item)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from pydantic import ValidationError

from dunning.dal.aws import from_item, to_item
from dunning.models.delivery import DeliveryRecord, Outcome, StoredRecord, expires_at, record_id
from dunning.models.state import CollectionCase

SENT_AT = dt.datetime(2026, 11, 20, 1, 30, tzinfo=dt.UTC)


def written() -> DeliveryRecord:
    return DeliveryRecord(
        loan_id="L-1",
        record_id=record_id(SENT_AT, "2026-11-25", "D-3"),
        borrower_id="B-1",
        cycle="2026-11-25",
        stage="D-3",
        outcome=Outcome.SENT,
        message_id="m-1",
        phone="+8613800138000",
        body="text",
        segments=1,
        amount_due=Decimal("1000.00"),
        currency="CNY",
        created_at=SENT_AT,
        updated_at=SENT_AT,
        expires_at=expires_at(SENT_AT, 400),
    )


def test_a_written_record_reads_back_with_the_same_values() -> None:
    record = written()
    stored = StoredRecord.model_validate(from_item(to_item(record.to_item())))
    assert stored.model_dump(exclude={"erased_at"}) == record.model_dump()
    assert stored.erased_at is None


def test_an_erased_record_reads_without_contact_and_with_when_it_was_erased() -> None:
    item = written().to_item()
    del item["phone"], item["body"]
    item["erased_at"] = "2026-11-28T09:00:00.000Z"
    stored = StoredRecord.model_validate(from_item(to_item(item)))
    assert (stored.phone, stored.body) == (None, None)
    assert stored.erased_at == dt.datetime(2026, 11, 28, 9, tzinfo=dt.UTC)
    assert stored.amount_due == Decimal("1000.00")


def test_a_projection_reads_with_only_its_attributes_and_unknown_ones_are_ignored() -> None:
    stored = StoredRecord.model_validate(
        {"loan_id": "L-1", "record_id": "r", "outcome": "FAILED", "cycle": "c", "added_later": 1}
    )
    assert (stored.outcome, stored.cycle, stored.created_at, stored.phone) == (Outcome.FAILED, "c", None, None)


def test_an_unknown_outcome_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match="outcome"):
        StoredRecord.model_validate({"loan_id": "L-1", "record_id": "r", "outcome": "LOST"})


def case_item(**changes: object) -> dict[str, object]:
    """A case item as `CaseRepository.open` writes it and DynamoDB returns it (keys included)."""
    item: dict[str, object] = {
        "pk": "LOAN#L-35",
        "sk": "CASE#2026-11-07",
        "loan_id": "L-35",
        "cycle": "2026-11-07",
        "borrower_id": "B-35",
        "reason": "ladder_exhausted",
        "opened_at": "2026-12-12T06:30:00.000Z",
        "detail": '{"loan_id": "L-35", "reason": "ladder_exhausted"}',
        "published": False,
    }
    return from_item(to_item({**item, **changes}))


def test_an_open_case_reads_not_published_and_not_closed() -> None:
    case = CollectionCase.model_validate(case_item())
    assert (case.loan_id, case.cycle, case.borrower_id) == ("L-35", "2026-11-07", "B-35")
    assert (case.published, case.closed_at, case.close_detail, case.close_published) == (False, None, None, False)
    assert case.opened_at == dt.datetime(2026, 12, 12, 6, 30, tzinfo=dt.UTC)


def test_a_closed_case_reads_its_closing() -> None:
    case = CollectionCase.model_validate(
        case_item(published=True, closed_at="2026-12-20T01:00:00.000Z", close_reason="paid", close_detail="{}")
    )
    assert (case.published, case.close_reason, case.close_detail, case.close_published) == (True, "paid", "{}", False)


def test_a_case_without_its_detail_is_refused_naming_it() -> None:
    item = case_item()
    del item["detail"]
    with pytest.raises(ValidationError, match="detail"):
        CollectionCase.model_validate(item)
