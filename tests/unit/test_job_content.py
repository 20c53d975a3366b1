"""What a planner's job carries (pure): the loan as the ladder index holds it, and batches SQS can take."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from dunning.dal.queue import BATCH_BYTES, _batched, _batches
from dunning.dal.snapshots import LOAN_ATTRIBUTES, snapshot_from_index
from dunning.models.jobs import JobLine, SendJob
from dunning.models.state import LoanControl

INDEX_ITEM: dict[str, Any] = {
    "pk": "LOAN#L-1",
    "sk": "CONTROL",
    "loan_id": "L-1",
    "borrower_id": "B-1",
    "borrower_name": "王小明",
    "phone": "+8613800138000",
    "contact_of": "B-1",
    "status": "OPEN",
    "due_date": "2026-11-19",
    "amount_due": Decimal("3000.00"),
    "currency": "CNY",
    "phone_region": "CN",
    "phone_zones": ["Asia/Shanghai"],
    "ladder_due": "2026-11-19#L-1",
    "upstream_seq": "0" * 40,
    "dispute_event_at": "2026-11-18T01:00:00.000Z",
    "planned": "2026-11-19#overdue_notice",
}


def test_the_snapshot_holds_upstreams_attributes_as_typed_values_and_the_collection_state() -> None:
    control = LoanControl.model_validate(INDEX_ITEM)
    snapshot = snapshot_from_index(INDEX_ITEM, control)
    assert snapshot is not None
    assert set(snapshot.loan) <= set(LOAN_ATTRIBUTES)  # never the index's own attributes
    assert snapshot.loan["phone"] == {"S": "+8613800138000"}
    assert snapshot.loan["borrower_name"] == {"S": "王小明"}
    assert snapshot.loan["amount_due"] == {"N": "3000.00"}  # a number, as upstream's item holds it
    assert snapshot.control["dispute_event_at"] == "2026-11-18T01:00:00.000Z"


def test_an_index_item_without_contact_details_gives_no_snapshot_so_the_sender_reads_the_loan() -> None:
    for missing in ("phone", "borrower_name"):
        item = {k: v for k, v in INDEX_ITEM.items() if k != missing}
        assert snapshot_from_index(item, None) is None


def job(lines: int, name_length: int) -> SendJob:
    item = {**INDEX_ITEM, "borrower_name": "王" * name_length}
    snapshot = snapshot_from_index(item, None)
    return SendJob(
        borrower_id="B-1",
        lines=tuple(
            JobLine(loan_id=f"L-{n}", cycle="2026-11-19", stage="overdue_notice", snapshot=snapshot)
            for n in range(lines)
        ),
        planned_at=dt.datetime(2026, 11, 20, 2, tzinfo=dt.UTC),
    )


def test_jobs_go_ten_a_batch_and_never_more_bytes_than_sqs_takes_in_one_call() -> None:
    small = [(j, j.model_dump_json()) for j in [job(1, 3)] * 23]
    assert [len(b) for b in _batches(small)] == [10, 10, 3]
    # 25 lines of a borrower whose name is as long as the model allows: a few such jobs fill a call.
    large = [(j, j.model_dump_json()) for j in [job(25, 1000)] * 10]
    batches = _batches(large)
    assert sum(len(b) for b in batches) == 10 and len(batches) > 1
    assert all(sum(len(body.encode()) for _, body in b) <= BATCH_BYTES for b in batches)
    assert [entry for b in batches for entry in b] == large  # in order, none lost


def test_a_batch_goes_as_soon_as_it_is_complete_so_jobs_built_as_they_go_are_never_all_held() -> None:
    read: list[int] = []

    def bodies(count: int, lines: int, name_length: int) -> Iterator[tuple[SendJob, str]]:
        one = job(lines, name_length)
        for n in range(count):
            read.append(n)
            yield one, one.model_dump_json()

    # A batch is given when the next body would not fit: the 11th job closes the first ten.
    assert [(len(b), len(read)) for b in _batched(bodies(23, 1, 3))] == [(10, 11), (10, 21), (3, 23)]
    read.clear()
    # Past BATCH_BYTES too, and the groups are the same as for a list.
    lazy = [len(b) for b in _batched(bodies(10, 25, 1000))]
    assert lazy == [len(b) for b in _batches([(j, j.model_dump_json()) for j in [job(25, 1000)] * 10])]
    assert len(lazy) > 1
