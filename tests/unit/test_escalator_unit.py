"""The Escalator against in-memory stores (tests/fakes_escalation.py): its rules as a run applies them, no AWS.

The moto tier (tests/integration/test_escalate.py, test_collection_cases.py) runs the same service on the
template's tables and bus; here each case is one loan and a few milliseconds.
"""

from __future__ import annotations

import datetime as dt
import json
import zlib
from decimal import Decimal
from typing import Any

import pytest

from dunning import ladder
from dunning.escalation import DETAIL_TYPE, Escalator
from dunning.loan_changes import index_values
from dunning.models.loan import InvalidLoan, Loan, parse_loan, parse_unreachable
from dunning.models.policy import load_policy_file
from tests.fakes import FakeLadder, FakeStateTable
from tests.fakes_escalation import FakeBus, FakeCases, FakeEscalationState, FakeHistory, FakeLoans

POLICY = load_policy_file()
NOW = dt.datetime(2026, 12, 12, 1, 0, tzinfo=dt.UTC)  # 09:00 in Shanghai, the daily run
TODAY = ladder.business_date(NOW, POLICY)


class Stores:
    def __init__(self, opted_out: set[str] | None = None) -> None:
        self.table = FakeStateTable()
        self.loans = FakeLoans()
        self.history = FakeHistory()
        self.state = FakeEscalationState(self.table, opted_out)
        self.cases = FakeCases(self.table)
        self.bus = FakeBus()

    def escalator(self) -> Escalator:
        return Escalator(
            index=FakeLadder(self.table),
            loans=self.loans,
            deliveries=self.history,
            state=self.state,
            cases=self.cases,
            bus=self.bus,
            policy=POLICY,
            retention_days=400,
        )

    def add(self, loan_id: str, days_past_due: int, control: dict[str, Any] | None = None, **item: Any) -> None:
        """An OPEN loan in LoansTable and on the ladder index (as LoanChangesFunction keeps it), with CONTROL fields."""
        upstream = {
            "loan_id": loan_id,
            "borrower_id": f"B-{loan_id}",
            "borrower_name": "Ann Lee",
            "phone": f"+86138001{zlib.crc32(loan_id.encode()) % 100000:05d}",
            "status": "OPEN",
            "due_date": (TODAY - dt.timedelta(days=days_past_due)).isoformat(),
            "amount_due": Decimal("1000.00"),
            "currency": "CNY",
            **item,
        }
        self.loans.put(upstream)
        loan: Loan | None
        try:
            loan = parse_loan(upstream)
        except InvalidLoan as exc:
            loan = parse_unreachable(upstream, exc)
        if loan is None:  # broken since the index copied it: the index still holds the item as it was
            loan = parse_loan({**upstream, "amount_due": Decimal(1)})
        self.table.put_control({"loan_id": loan_id, **index_values(loan)[0], **(control or {})})

    def run(self, **kwargs: Any) -> dict[str, object]:
        return self.escalator().run(NOW, **kwargs).as_dict()

    def control(self, loan_id: str) -> dict[str, Any]:
        control = self.table.control(loan_id)
        assert control is not None
        return control

    def opened(self) -> dict[str, str]:
        """Reason of each CollectionCaseOpened on the bus, by loan id."""
        return {d["loan_id"]: d["reason"] for kind, d in self.bus.events if kind == DETAIL_TYPE}


def failed(stores: Stores, loan_id: str, count: int, *, then: str | None = None) -> None:
    """`count` failed SMS of the loan's current cycle (optionally followed by one with outcome `then`)."""
    cycle = stores.loans.items[loan_id]["due_date"]
    outcomes = ["FAILED"] * count + ([then] if then else [])
    for n, outcome in enumerate(outcomes):
        stores.history.add(loan_id, f"2026-12-0{n + 1}T01:00:00Z#{cycle}#follow_up", cycle=cycle, outcome=outcome)


def test_a_loan_past_the_ladder_gets_one_case_and_one_event_whatever_the_reruns() -> None:
    stores = Stores()
    stores.add("L-30", 30)
    stores.add("L-29", 29)
    stores.history.add("L-30", "2026-11-20T01:00:00Z#x", cycle=stores.loans.items["L-30"]["due_date"], outcome="SENT")

    first = stores.run()
    second = stores.run()

    assert stores.opened() == {"L-30": "ladder_exhausted"}
    assert len(stores.bus.events) == 1
    (_, detail) = stores.bus.events[0]
    assert detail["days_past_due"] == 30 and detail["amount_due"] == "1000.00" and detail["currency"] == "CNY"
    assert detail["reminders_sent"] == 1 and detail["last_outcome"] == "SENT"
    assert Decimal(detail["late_fees"]) > 0  # the policy's fee rule: no ledger fees on the item
    assert first["opened"] == {"ladder_exhausted": 1} and first["loans_read"] == 2
    assert second["opened"] == {} and second["already_open"] == 1
    # SMS stopped for the cycle before the case existed (the CONTROL item names it).
    assert stores.control("L-30")["case_cycle"] == stores.loans.items["L-30"]["due_date"]


@pytest.mark.parametrize(
    ("failures", "then", "expected"), [(3, None, "delivery_failed"), (2, None, None), (3, "DELIVERED", None)]
)
def test_delivery_failed_counts_only_the_trailing_failures_of_the_cycle(
    failures: int, then: str | None, expected: str | None
) -> None:
    stores = Stores()
    stores.add("L-F", 10, control={"last_failed_delivery_at": "2026-12-03T01:00:00Z"})
    failed(stores, "L-F", failures, then=then)

    stores.run()

    assert stores.opened() == ({"L-F": expected} if expected else {})


def test_an_opted_out_borrower_with_a_balance_goes_to_collectors_and_a_dispute_holds_even_the_ladders_end() -> None:
    stores = Stores()
    stores.add("L-OPT", 5)
    stores.state.opted_out.add(stores.loans.items["L-OPT"]["phone"])
    stores.add("L-HOLD", 45, control={"dispute_hold": True})

    report = stores.run()

    assert stores.opened() == {"L-OPT": "opted_out"}
    assert report["held"] == {"hold_dispute": 1}


def test_a_loan_without_a_reachable_phone_goes_to_collectors_from_its_first_day_overdue() -> None:
    stores = Stores()
    stores.add("L-NOPHONE", 1, phone="12345")
    stores.add("L-DUE-TODAY", 0, phone="12345")

    stores.run()

    assert stores.opened() == {"L-NOPHONE": "unreachable"}


def test_the_second_broken_promise_of_a_cycle_opens_a_case_and_the_first_is_remembered() -> None:
    stores = Stores()
    promised = TODAY - dt.timedelta(days=2)
    stores.add("L-P", 12, control={"promised_date": promised.isoformat()})

    stores.run()
    assert stores.opened() == {}
    assert stores.control("L-P")["broken_promises"] == [promised.isoformat()]

    # A new promise replaces the first, and is broken too.
    newer = (TODAY - dt.timedelta(days=1)).isoformat()
    stores.table.change_control("L-P", lambda control: control.update(promised_date=newer), create=False)
    stores.run()
    assert stores.opened() == {"L-P": "broken_promises"}


def test_a_case_whose_event_did_not_go_out_is_finished_with_its_stored_detail_once() -> None:
    stores = Stores()
    stores.add("L-30", 30)

    class BusDown(FakeBus):
        def put(self, detail_type: str, detail: dict[str, Any], time: dt.datetime) -> str:
            raise ConnectionError("EventBridge unreachable")

    stores.bus = BusDown()
    with pytest.raises(ConnectionError):
        stores.run()
    stored = stores.cases.cases[("L-30", stores.loans.items["L-30"]["due_date"])]
    assert stored["published"] is False

    stores.bus = FakeBus()
    report = stores.run()
    stores.run()

    assert report["completed"] == 1 and report["opened"] == {}
    assert [detail for _, detail in stores.bus.events] == [json.loads(stored["detail"])]


def test_a_broken_item_is_set_aside_with_a_record_and_the_run_goes_on() -> None:
    stores = Stores()
    stores.add("L-BAD", 35, amount_due="abc")
    stores.add("L-30", 30)

    report = stores.run()

    assert stores.opened() == {"L-30": "ladder_exhausted"}
    assert report["invalid"] == {"invalid_amount": 1}
    assert stores.history.suppressed() == {"L-BAD": "invalid_amount"}


def test_a_run_near_its_time_limit_stops_with_a_cursor_and_the_next_one_finishes_without_repeating() -> None:
    stores = Stores()
    for n in range(40):
        stores.add(f"L-{n:02d}", 30 + n % 3)
    budget = iter([100.0] * 30 + [1.0])  # 30 pages (of 64 partitions), then out of time

    partial = stores.escalator().run(NOW, shard=0, shards=1, time_left=lambda: next(budget, 100.0))
    assert not partial.complete and partial.cursor is not None
    opened_before = set(stores.opened())

    rest = stores.escalator().run(NOW, shard=0, shards=1, cursor=partial.cursor)

    assert rest.complete and rest.cursor is None
    assert set(stores.opened()) == {f"L-{n:02d}" for n in range(40)}
    assert len(stores.bus.events) == 40 and 0 < len(opened_before) < 40
    assert sum(rest.opened.values()) + sum(partial.opened.values()) == 40
