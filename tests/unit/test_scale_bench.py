"""benchmarks/scale.py's figures, computed on a tiny book; and the in-memory stores (tests/fakes.py) it plans on.

No timing is asserted: only that each figure is computed, and what must hold whatever the machine
(skew at least 1, memory positive, the projection growing with the book, no stage planned twice).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import subprocess
from pathlib import Path

import pytest

from benchmarks import scale
from dunning.dal.state import ClaimWrite
from dunning.models.policy import Policy, load_policy_file
from dunning.models.state import ClaimState
from dunning.observability import metrics
from tests.fakes import FakeStores

SHARDS = 8


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy_file()


@pytest.fixture(autouse=True)
def _no_metric_pile_up() -> None:
    metrics.clear_metrics()


def test_book_shape_counts_every_loan_once_and_skew_is_at_least_one(policy: Policy) -> None:
    shape = scale.shape(2_000, SHARDS, policy)
    assert sum(shape.open_per_shard.values()) == 2_000
    assert 0 < shape.window_loans < 2_000
    assert shape.skew_open >= 1.0
    assert shape.skew_window >= 1.0


def test_book_skews_due_dates_onto_the_popular_days(policy: Policy) -> None:
    loans = list(scale.book(5_000, dt.date(2026, 11, 20)))
    popular = sum(1 for loan in loans if dt.date.fromisoformat(loan.due_date).day in scale.POPULAR_DAYS)
    assert 0.55 < popular / len(loans) < 0.75  # 60 % chosen on them, and a few of the others fall there too


def test_planning_figures_are_computed_on_a_tiny_book(policy: Policy) -> None:
    shape = scale.shape(3_000, SHARDS, policy)
    chosen = scale.sample_of_shards(shape, target=300)
    assert 1 <= len(chosen) < SHARDS
    stores = scale.stores_for(3_000, SHARDS, set(chosen), policy, keep=False)
    figures = scale.plan(stores, chosen, SHARDS, policy)
    assert figures.loans_read > 0
    assert figures.pages >= len(chosen)
    assert 0 < figures.lines <= figures.loans_read
    assert figures.calls["Query"] == figures.pages
    assert figures.calls["SendMessageBatch"] >= figures.jobs / 10
    assert figures.us_per_loan > 0


def test_shard_peak_memory_is_measured(policy: Policy) -> None:
    figure = scale.shard_peak(300, 64, policy)
    assert figure.window_loans == 300
    assert figure.lines > 0
    assert figure.peak_bytes > 0


def test_projection_grows_with_the_ladder_and_counts_waves(policy: Policy) -> None:
    shape = scale.shape(3_000, SHARDS, policy)
    chosen = scale.sample_of_shards(shape, target=300)
    figures = scale.plan(scale.stores_for(3_000, SHARDS, set(chosen), policy, keep=False), chosen, SHARDS, policy)
    sdk = scale.SdkCosts(query_s=0.01, claims_s=0.01, enqueue_s=0.001, item_bytes=500)

    def total(ladder: int, shards: int = 64, concurrency: int = 40) -> scale.Projection:
        return scale.project(
            ladder, shards=shards, concurrency=concurrency, skew=1.05, figures=figures, sdk=sdk,
            memory_mb=512, timeout_s=300, init_s=0.5,
        )  # fmt: skip

    small, medium, large = total(100_000), total(500_000), total(2_000_000)
    assert 0 < small.total_s < medium.total_s < large.total_s
    assert medium.waves == 2  # 64 shards, 40 at once
    assert total(500_000, concurrency=64).waves == 1
    assert medium.total_s == pytest.approx(medium.waves * medium.shard_s)
    assert medium.shard_s >= medium.bound_s


def test_sdk_costs_run_the_real_repositories_on_canned_answers(policy: Policy) -> None:
    before = dict(os.environ)
    costs = scale.sdk_costs(scale.shard_book(scale.PAGE_SIZE, 0, 64, policy), policy, calls=1)
    assert costs.query_s > 0 and costs.claims_s > 0 and costs.enqueue_s > 0
    assert costs.item_bytes > 100
    assert dict(os.environ) == before  # the placeholder credentials and endpoint are gone again


def test_the_cold_init_bench_times_bytecode_for_the_project_as_for_its_dependencies() -> None:
    scale.compile_project()
    sources = [*(scale.ROOT / "functions").rglob("*.py"), *(scale.ROOT / "shared" / "dunning").rglob("*.py")]
    assert sources
    assert [s for s in sources if not Path(importlib.util.cache_from_source(str(s))).is_file()] == []


@pytest.mark.parametrize("traced", [True, False])
def test_cold_init_is_measured_in_a_fresh_process_with_its_tracing(traced: bool) -> None:
    """Each mode in Lambda's environment; the process refuses to report if its tracer is in the other mode."""
    found = scale.cold_init("plan_reminders", runs=1, traced=traced)
    assert 0 < found.import_s <= found.first_event_s
    assert found.traced is traced


def test_the_cold_init_process_refuses_a_tracer_in_the_wrong_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(scale.FUNCTION_ENV, "POWERTOOLS_TRACE_DISABLED", "true")  # wins over the Active mode's
    with pytest.raises(subprocess.CalledProcessError) as refused:
        scale.cold_init("plan_reminders", runs=1, traced=True)
    assert "in the wrong mode" in refused.value.stderr


# ---------------------------------------------------------------- the stores the bench plans on
def test_fake_ladder_pages_in_due_order_within_the_range(policy: Policy) -> None:
    stores = FakeStores.empty()
    stores.load(scale.shard_book(45, 0, 64, policy))
    first, last = scale.window(policy)
    seen: list[str] = []
    key = None
    while True:
        page = stores.index.page("00", first, f"{last}#\uffff", key, 10)
        assert len(page.items) <= 10
        seen += [str(item["ladder_due"]) for item in page.items]
        key = page.next_key
        if key is None:
            break
    assert seen == sorted(seen)
    assert len(seen) == 45
    assert stores.meter.calls["Query"] == 5  # 10, 10, 10, 10, 5: the last page is short, no key after it


def test_a_claim_taken_is_never_taken_again_and_a_give_back_undoes_only_its_own(policy: Policy) -> None:
    stores = FakeStores.empty()
    now = dt.datetime(2026, 11, 20, 4, tzinfo=dt.UTC)
    key = ("LN1", "2026-11-15", "follow_up_3")
    stores.table.put_control({"loan_id": "LN1"})
    write = ClaimWrite(key, "BR1", ClaimState.PLANNED)
    assert stores.state.take_claims([write], now) == {key: None}
    assert (stores.table.control("LN1") or {})["planned"] == "2026-11-15#follow_up_3"
    again = stores.state.take_claims([write], now + dt.timedelta(hours=6))[key]
    assert again is not None and again.state is ClaimState.PLANNED
    stores.state.give_back([key], now + dt.timedelta(hours=1))  # not the run that took it: nothing changes
    assert key in stores.table.claims
    stores.state.give_back([key], now)
    assert key not in stores.table.claims and "planned" not in (stores.table.control("LN1") or {})


def test_the_planner_on_the_fakes_plans_a_stage_once_however_often_it_runs(policy: Policy) -> None:
    stores = FakeStores.empty()
    stores.load(scale.shard_book(120, 0, 64, policy))
    planner = scale.planner_for(stores, policy)
    first = planner.run(scale.PLAN_AT, shard=0, shards=64)
    assert first.lines_enqueued > 0
    stores.table.poke()  # the marks are not trusted: every claim is tried again, and refused
    later = planner.run(scale.PLAN_AT + dt.timedelta(hours=1), shard=0, shards=64)
    assert later.lines_enqueued == 0
    assert later.waiting["already_planned"] == first.lines_enqueued
    lines = [line for job in stores.queue.jobs() for line in job.lines]
    assert len(lines) == len({(line.loan_id, line.cycle, line.stage) for line in lines}) == first.lines_enqueued
