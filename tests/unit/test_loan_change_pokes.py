"""LoanChanges wakes the planner shard of a loan upstream inserts already due: once per shard per stream batch,
never for a loan due later, a rewrite of an indexed loan, one that left the index, an invalid one or the backfill;
a poke that fails is counted, not raised. Without AWS: the index and the pokes
are in memory (StateRepository's own shard arithmetic, only its UpdateItem replaced)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError

from dunning.dal.aws import from_item
from dunning.dal.ladder import BACKFILL_SEQ
from dunning.dal.state import StateRepository
from dunning.loan_changes import ChangeKind, IndexOutcome, LoanChange, LoanChanges, check, stage_due_at
from dunning.models.loan import Loan
from dunning.models.policy import load_policy_file
from dunning.observability import metrics
from dunning.sharding import bucket_of
from tests.fakes_send import FakeLadderIndex, FakeSendDeliveries, FakeTables

if TYPE_CHECKING:
    from dunning.dal.aws import RawItem

POLICY = load_policy_file()
AT = dt.datetime(2026, 11, 20, 3, 15, 42, tzinfo=dt.UTC)  # 11:15 in Shanghai: business day 2026-11-20
SHARDS = 64


def loan_item(
    loan_id: str = "L-1", borrower_id: str = "B-1", due: str = "2026-11-16", **changes: Any
) -> dict[str, Any]:
    item = {
        "loan_id": loan_id,
        "borrower_id": borrower_id,
        "borrower_name": "王小明",
        "phone": "+8613800138000",
        "status": "OPEN",
        "due_date": due,
        "amount_due": Decimal("3000.00"),
        "currency": "CNY",
        **changes,
    }
    return {k: v for k, v in item.items() if v is not None}


def change(
    item: dict[str, Any], seq: int | str = 100, kind: ChangeKind = ChangeKind.INSERT, at: dt.datetime = AT
) -> LoanChange:
    return LoanChange(
        loan_id=str(item["loan_id"]),
        kind=kind,
        changed_at=at,
        sequence_number=str(seq),
        item=None if kind is ChangeKind.REMOVE else item,
    )


def loan(**changes: Any) -> Loan:
    verdict = check(change(loan_item(**changes)))
    assert isinstance(verdict, Loan)
    return verdict


def index_items(index: FakeLadderIndex) -> dict[str, dict[str, Any]]:
    """The loans' CONTROL items the index holds, by loan id."""
    found = (from_item(raw) for raw in index.tables.items.values())
    return {str(item["loan_id"]): item for item in found if item.get("sk") == "CONTROL"}


class CountedPokes(StateRepository):
    """StateRepository's pokes, each UpdateItem counted by the item it would bump."""

    def __init__(self, planning_shards: int = SHARDS, *, refuse: bool = False) -> None:
        super().__init__("StateTable", planning_shards=planning_shards)
        self.pokes: Counter[str] = Counter()
        self.refuse = refuse

    def _poke(self, key: RawItem) -> None:
        if self.refuse:
            throttled = {"Error": {"Code": "ThrottlingException", "Message": "StateTable throttled the poke"}}
            raise ClientError(throttled, "UpdateItem")  # type: ignore[arg-type]
        self.pokes[key["sk"]["S"]] += 1


def loan_changes(state: CountedPokes | None = None, index: FakeLadderIndex | None = None) -> LoanChanges:
    index = index or FakeLadderIndex(FakeTables())
    return LoanChanges(FakeSendDeliveries(index.tables), index, 400, policy=POLICY, state=state or CountedPokes())


def shard_poke(borrower_id: str) -> str:
    return f"POKE#{bucket_of(borrower_id) % SHARDS}#{SHARDS}"


# ---------------------------------------------------------------- due now, by the ladder


@pytest.mark.parametrize(
    ("due", "at", "expected"),
    [
        ("2026-11-16", AT, True),  # follow_up_3
        ("2026-11-20", AT, True),  # due_today
        ("2026-11-23", AT, True),  # courtesy, 3 days ahead: the ladder's first stage
        ("2026-11-24", AT, False),  # its courtesy is tomorrow
        ("2026-12-20", AT, False),  # a new loan due in 30 days: the common case
        ("2026-10-21", AT, False),  # 30 days past due: escalation's, no SMS stage left
        ("2026-11-24", dt.datetime(2026, 11, 20, 16, 0, tzinfo=dt.UTC), True),  # 00:00 on the 21st in Shanghai
        ("2026-11-24", dt.datetime(2026, 11, 20, 15, 59, tzinfo=dt.UTC), False),  # still the 20th there
    ],
)
def test_a_loan_is_due_now_when_the_ladder_has_a_stage_for_it_on_the_business_day_of_the_change(
    due: str, at: dt.datetime, expected: bool
) -> None:
    assert stage_due_at(loan(due=due), loan_item(due=due), at, POLICY) is expected


def test_a_stage_the_planner_marked_handled_is_not_due_again_until_its_deferral_ends() -> None:
    overdue = loan(due="2026-11-16")
    mark = {"planned": "2026-11-16#follow_up_3"}

    assert stage_due_at(overdue, {**loan_item(), **mark}, AT, POLICY) is False
    assert stage_due_at(overdue, {**loan_item(), "planned": "2026-11-16#overdue_notice"}, AT, POLICY) is True  # older
    assert (
        stage_due_at(overdue, {**loan_item(), "planned": "2026-10-16#follow_up_3"}, AT, POLICY) is True
    )  # other cycle
    later, earlier = "2026-11-20T05:00:00.000Z", "2026-11-20T03:00:00.000Z"
    assert stage_due_at(overdue, {**loan_item(), **mark, "planned_until": later}, AT, POLICY) is False
    assert stage_due_at(overdue, {**loan_item(), **mark, "planned_until": earlier}, AT, POLICY) is True


def test_under_a_repayment_plan_the_next_unpaid_instalment_decides() -> None:
    overdue = loan(due="2026-11-16")
    plan = [{"due_date": "2026-12-16", "amount": Decimal("1500.00")}, {"due_date": "2027-01-16", "amount": "1500.00"}]
    paid_plan = [{"due_date": "2026-11-01", "amount": Decimal("10.00")}]

    assert stage_due_at(overdue, {**loan_item(), "plan": plan}, AT, POLICY) is False  # its instalment is next month
    past = [{"due_date": "2026-11-18", "amount": Decimal("1500.00")}, *plan[1:]]
    assert stage_due_at(overdue, {**loan_item(), "plan": past}, AT, POLICY) is True
    assert stage_due_at(
        loan(due="2026-11-16", amount_due=Decimal("0")), {**loan_item(), "plan": paid_plan}, AT, POLICY
    ) is (False)


# ---------------------------------------------------------------- one poke per shard per batch


def test_an_inserted_overdue_loan_pokes_its_shard_once_after_the_batch() -> None:
    state = CountedPokes()
    changes = loan_changes(state)

    assert changes.apply(change(loan_item())).index is IndexOutcome.ENTERED
    assert state.pokes == {}  # not per record: after the batch

    assert changes.wake_planners() == 1
    assert state.pokes == {shard_poke("B-1"): 1}
    assert changes.wake_planners() == 0  # nothing new since


def test_a_batch_of_many_overdue_loans_pokes_each_of_their_shards_once() -> None:
    state = CountedPokes()
    changes = loan_changes(state)
    one_shard = [f"B-{n}" for n in range(5000) if bucket_of(f"B-{n}") % SHARDS == bucket_of("B-1") % SHARDS][:40]
    assert len({bucket_of(b) for b in one_shard}) > 1  # several buckets, one shard
    others = ["B-x", "B-y", "B-z"]

    for n, borrower_id in enumerate([*one_shard, *others]):
        for k in range(3):  # three loans each
            changes.apply(change(loan_item(f"L-{n}-{k}", borrower_id), seq=100 + n))
    changes.wake_planners()

    assert state.pokes == Counter({shard_poke(b): 1 for b in [*one_shard, *others]})
    assert sum(state.pokes.values()) == len({bucket_of(b) % SHARDS for b in [*one_shard, *others]}) <= 4


@pytest.mark.parametrize(
    "item",
    [
        loan_item(due="2026-12-20"),  # due in 30 days
        loan_item(status="PAID"),  # left the index
        loan_item(status="CLOSED"),
        loan_item(due_date="2026/11/16"),  # invalid
        loan_item(amount_due="abc"),
        loan_item(phone=None),  # valid but for its phone: indexed for escalation, the planner skips it
        loan_item(due="2026-09-01"),  # past the ladder: escalation's
    ],
    ids=["due_later", "paid", "closed", "invalid_date", "invalid_amount", "unreachable", "past_the_ladder"],
)
def test_a_loan_not_due_by_the_ladder_or_not_for_the_planner_wakes_nobody(item: dict[str, Any]) -> None:
    state = CountedPokes()
    changes = loan_changes(state)

    changes.apply(change(item))

    assert changes.wake_planners() == 0 and state.pokes == {}


def test_a_removed_loan_wakes_nobody() -> None:
    state = CountedPokes()
    changes = loan_changes(state)

    changes.apply(change(loan_item(), kind=ChangeKind.REMOVE))

    assert changes.wake_planners() == 0 and state.pokes == {}


def test_the_backfill_wakes_nobody_whatever_it_indexes() -> None:
    state = CountedPokes()
    index = FakeLadderIndex(FakeTables())
    changes = loan_changes(state, index)

    for n in range(50):
        result = changes.apply(change(loan_item(f"L-{n}", f"B-{n}"), seq=BACKFILL_SEQ))  # as an insert would
        assert result.index is IndexOutcome.ENTERED
    # Nor when built as the backfill command builds it: without a policy or a state.
    bare = LoanChanges(FakeSendDeliveries(FakeTables()), FakeLadderIndex(FakeTables()), 400)
    bare.apply(change(loan_item()))

    assert changes.wake_planners() == 0 and bare.wake_planners() == 0 and state.pokes == {}
    assert len(index_items(index)) == 50


def test_only_an_insert_wakes_a_rewrite_of_an_indexed_loan_leaves_the_shard_to_its_agenda() -> None:
    # A nightly fee accrual rewrites every overdue loan: poking for each would cost every shard its marks.
    state = CountedPokes()
    changes = loan_changes(state)
    changes.apply(change(loan_item(), seq=100))
    assert changes.wake_planners() == 1

    changes.apply(change(loan_item(amount_due=Decimal("2900.00")), seq=101, kind=ChangeKind.MODIFY))
    changes.apply(change(loan_item(due="2026-11-10"), seq=102, kind=ChangeKind.MODIFY))  # a due date moved back
    changes.apply(change(loan_item("L-2", "B-2"), seq=103, kind=ChangeKind.MODIFY))  # first seen by a MODIFY

    assert changes.wake_planners() == 0
    assert state.pokes == {shard_poke("B-1"): 1}


def test_a_control_item_the_planner_cannot_read_keeps_the_loan_indexed_and_wakes_nobody() -> None:
    state = CountedPokes()
    index = FakeLadderIndex(FakeTables())
    changes = loan_changes(state, index)
    index.tables.put(
        "StateTable",
        {
            "pk": "LOAN#L-1",
            "sk": "CONTROL",
            "loan_id": "L-1",
            "planned": "2026-11-16#follow_up_3",
            "planned_until": "not a time",
        },
    )

    assert changes.apply(change(loan_item())).index is IndexOutcome.ENTERED  # the planner sets it aside, not us

    assert changes.wake_planners() == 0 and "ladder_due" in index_items(index)["L-1"]


def test_a_poke_that_fails_is_counted_not_raised_and_a_redelivered_insert_wakes_nobody() -> None:
    state = CountedPokes(refuse=True)
    index = FakeLadderIndex(FakeTables())
    changes = loan_changes(state, index)
    batch = [change(loan_item()), change(loan_item("L-2", "B-2", due="2026-12-20"))]
    for record in batch:
        changes.apply(record)

    metrics.clear_metrics()
    assert changes.wake_planners() == 0  # throttled: the batch goes on, the shard's next wake finds the loan
    assert state.pokes == {} and sorted(index_items(index)) == ["L-1", "L-2"]
    assert metrics.metric_set["PlannerPokeFailures"]["Value"] == [1.0]
    metrics.clear_metrics()

    state.refuse = False
    redelivered = loan_changes(state, index)
    assert [redelivered.apply(record).index for record in batch] == [IndexOutcome.STALE, IndexOutcome.STALE]
    assert redelivered.wake_planners() == 0  # stale: its first delivery decided


def test_the_state_repository_pokes_each_deployment_shard_once_for_a_set_of_buckets() -> None:
    state = CountedPokes(planning_shards=4)

    assert state.wake_planners([1, 5, 9, 2, 1022]) == 2  # 1, 5 and 9 are shard 1 of 4; 2 and 1022 shard 2

    assert state.pokes == {"POKE#1#4": 1, "POKE#2#4": 1}
    assert state.wake_planners([]) == 0
    with pytest.raises(ValueError, match=r"bucket must be in 0\.\.1023"):
        state.wake_planners([1024])
