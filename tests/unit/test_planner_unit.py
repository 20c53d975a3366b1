"""The Planner against in-memory stores (tests/fakes.py): what it enqueues, claims and records, no AWS.

The moto tier (tests/integration/test_planner_agenda.py, test_ladder_index.py, test_pipeline.py) runs the
same service on the template's tables and queue.
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from dunning import ladder
from dunning.loan_changes import index_values
from dunning.models.jobs import SendJob
from dunning.models.loan import parse_loan
from dunning.models.policy import load_policy_file
from dunning.models.state import ClaimState
from dunning.planner import Planner, PlanReport
from tests.fakes import FakeQueue, FakeStores

POLICY = load_policy_file()
NOW = dt.datetime(2026, 12, 12, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai: inside the send window
NIGHT = dt.datetime(2026, 12, 11, 19, 0, tzinfo=dt.UTC)  # 03:00 in Shanghai, the same business day
TODAY = ladder.business_date(NOW, POLICY)


def index_item(loan_id: str, days_past_due: int, borrower_id: str | None = None, **control: Any) -> dict[str, Any]:
    """A loan's CONTROL item on the ladder index, as LoanChangesFunction writes it (plus product fields)."""
    loan = parse_loan(
        {
            "loan_id": loan_id,
            "borrower_id": borrower_id or f"B-{loan_id}",
            "borrower_name": "张三",
            "phone": f"+86138001{zlib.crc32(loan_id.encode()) % 100000:05d}",
            "status": "OPEN",
            "due_date": (TODAY - dt.timedelta(days=days_past_due)).isoformat(),
            "amount_due": Decimal("1000.00"),
            "currency": "CNY",
        }
    )
    return {"loan_id": loan_id, **index_values(loan)[0], **control}


def planner(stores: FakeStores) -> Planner:
    return Planner(stores.index, stores.state, stores.deliveries, stores.queue, POLICY, retention_days=400)


def lines(jobs: list[SendJob]) -> dict[str, list[tuple[str, str, str]]]:
    return {job.borrower_id: [(li.loan_id, li.cycle, li.stage) for li in job.lines] for job in jobs}


def test_due_stages_are_claimed_and_enqueued_one_job_per_borrower() -> None:
    stores = FakeStores.empty()
    stores.load(
        [index_item("L-1", 1, "B-1"), index_item("L-2", 3, "B-1"), index_item("L-3", 2), index_item("L-40", 40)]
    )

    report = planner(stores).run(NOW)

    cycle = {d: (TODAY - dt.timedelta(days=d)).isoformat() for d in (1, 2, 3)}
    assert lines(stores.queue.jobs()) == {
        "B-1": [("L-2", cycle[3], "follow_up_3"), ("L-1", cycle[1], "overdue_notice")],  # most overdue first
        "B-L-3": [("L-3", cycle[2], "overdue_notice")],
    }
    assert (report.jobs_enqueued, report.lines_enqueued, report.loans_read) == (2, 3, 3)  # +40 is past the ladder
    assert {key: claim["state"] for key, claim in stores.table.claims.items()} == {
        ("L-1", cycle[1], "overdue_notice"): "PLANNED",
        ("L-2", cycle[3], "follow_up_3"): "PLANNED",
        ("L-3", cycle[2], "overdue_notice"): "PLANNED",
    }
    assert (stores.table.control("L-1") or {})["planned"] == f"{cycle[1]}#overdue_notice"


def test_no_job_twice_the_next_fire_sleeps_and_a_poked_one_finds_the_claims_taken() -> None:
    stores = FakeStores.empty()
    stores.load([index_item("L-1", 1), index_item("L-2", 5)])
    planner(stores).run(NOW)

    asleep = planner(stores).run(NOW + dt.timedelta(hours=1))
    stores.table.poke()  # a borrower event elsewhere: the marks are not trusted, the claims' writes decide
    poked = planner(stores).run(NOW + dt.timedelta(hours=1))

    assert asleep.asleep_until is not None and asleep.loans_read == 0
    assert poked.jobs_enqueued == 0 and poked.waiting == {"already_planned": 2}
    assert len(stores.queue.jobs()) == 2


def test_at_night_nothing_is_claimed_and_the_agenda_wakes_at_the_window_open() -> None:
    stores = FakeStores.empty()
    stores.load([index_item("L-1", 1)])

    report = planner(stores).run(NIGHT)

    assert report.jobs_enqueued == 0 and report.waiting == {"outside_window": 1}
    assert stores.table.claims == {}
    (agenda,) = stores.table.agendas.values()
    assert agenda.wake_at == dt.datetime(2026, 12, 12, 1, 0, tzinfo=dt.UTC)  # 09:00 in Shanghai


def test_a_job_sqs_refuses_gets_its_claims_back_and_the_next_fire_plans_it_again() -> None:
    stores = FakeStores.empty()
    stores.queue = FakeQueue(refuse=lambda job: job.borrower_id == "B-L-1")
    stores.load([index_item("L-1", 1), index_item("L-2", 1)])

    first = planner(stores).run(NOW)
    assert [job.borrower_id for job in stores.queue.jobs()] == ["B-L-2"]
    assert [key[0] for key in stores.table.claims] == ["L-2"]  # L-1's claim given back
    assert "planned" not in (stores.table.control("L-1") or {})

    stores.queue.refuse = None
    second = planner(stores).run(NOW + dt.timedelta(minutes=5))  # the agenda said: now

    assert first.jobs_enqueued == 1 and second.jobs_enqueued == 1
    assert sorted(job.borrower_id for job in stores.queue.jobs()) == ["B-L-1", "B-L-2"]


def test_a_disputed_loan_is_recorded_suppressed_and_deferred_to_the_next_local_midnight() -> None:
    stores = FakeStores.empty()
    stores.load([index_item("L-1", 3, dispute_hold=True)])

    report = planner(stores).run(NOW)

    assert report.suppressed == {"hold_dispute": 1} and stores.queue.jobs() == []
    (record,) = stores.deliveries.records.values()
    assert (record.outcome.value, record.reason, record.amount_due) == (
        "SUPPRESSED",
        "hold_dispute",
        Decimal("1000.00"),
    )
    (claim,) = stores.table.claims.values()
    assert claim["state"] == ClaimState.DEFERRED.value
    assert claim["retry_after"] == "2026-12-12T16:00:00.000Z"  # midnight in Shanghai


def test_a_run_near_its_time_limit_resumes_from_its_cursor_and_plans_every_loan_once() -> None:
    stores = FakeStores.empty()
    stores.load([index_item(f"L-{n:02d}", 1 + n % 5) for n in range(60)])
    reports: list[PlanReport] = []
    cursor = None
    while not reports or not reports[-1].complete:
        pages = iter([100.0] * 10)  # ten pages an invocation, then out of time

        def time_left(pages: Iterator[float] = pages) -> float:
            return next(pages, 1.0)

        reports.append(planner(stores).run(NOW, shard=0, shards=1, cursor=cursor, time_left=time_left))
        cursor = reports[-1].cursor
        assert len(reports) < 20

    planned = [line.loan_id for job in stores.queue.jobs() for line in job.lines]
    assert len(reports) > 1
    assert sorted(planned) == [f"L-{n:02d}" for n in range(60)]
