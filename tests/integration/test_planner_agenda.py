"""The planner's agenda on the moto stack: a fire that cannot change anything reads one item, not the book.

Each test drives the hourly schedule by hand and checks both sides: the fires that slept read
no loan, and nothing was sent later than the hourly re-read would have sent it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import boto3
import time_machine

from dunning.dal.state import StateRepository
from dunning.planner import LONGEST_SLEEP
from dunning_tools.local import LocalStack, deploy_stack, drain_queue, invoke
from tests.conftest import RunHours, scheduled_event
from tests.integration.borrower_helpers import PHONE, event, put_loan, records, send_event, sms_sent

NY_PHONE = "+12125550147"
NY_MIDNIGHT = dt.datetime(2026, 11, 28, 5, 0, tzinfo=dt.UTC)  # 00:00 in New York, 13:00 in Shanghai
NY_WINDOW_OPENS = dt.datetime(2026, 11, 28, 14, 0, tzinfo=dt.UTC)  # 09:00 in New York


def new_yorker(stack: LocalStack, loan_id: str = "L-NY-1") -> None:
    put_loan(
        stack,
        loan_id=loan_id,
        borrower_id=f"B-{loan_id}",
        borrower_name="Jane Roe",
        phone=NY_PHONE,
        due_date="2026-11-20",
        amount_due="420.50",
        currency="USD",
        locale="en-US",
        timezone="America/New_York",
    )


def read_the_book(report: dict[str, Any]) -> bool:
    return report["asleep_until"] is None


def test_fires_while_every_borrower_sleeps_read_only_the_agenda_and_the_window_opening_sends(
    local_stack: LocalStack, run_hours: RunHours
) -> None:
    new_yorker(local_stack)

    reports = run_hours(local_stack, NY_MIDNIGHT, 10, fires=1)  # 05:00Z .. 14:00Z
    hours = [NY_MIDNIGHT + dt.timedelta(hours=n) for n in range(10)]

    read = [at.hour for at, report in zip(hours, reports, strict=True) if read_the_book(report)]
    # 05:00 reads; then it sleeps until LONGEST_SLEEP has passed (11:00) and again until the window opens.
    assert read == [5, (NY_MIDNIGHT + LONGEST_SLEEP).hour, 14]
    assert all(r["loans_read"] == 0 for r in reports if not read_the_book(r))
    assert reports[1]["asleep_until"] == "2026-11-28T11:00:00.000Z"
    assert reports[7]["asleep_until"] == "2026-11-28T14:00:00.000Z"
    # Not an hour late: the SMS leaves at the window's first fire.
    (sent,) = [r for r in records(local_stack) if r["loan_id"] == "L-NY-1"]
    assert (sent["outcome"], sent["created_at"]) == ("SENT", "2026-11-28T14:00:00.000Z")


def test_a_borrower_event_makes_the_next_fire_read_the_book(local_stack: LocalStack, run_hours: RunHours) -> None:
    put_loan(local_stack)  # Shanghai, overdue since 2026-11-16
    send_event(local_stack, event("loan_event_dispute.json"), dt.datetime(2026, 11, 18, 1, 0, tzinfo=dt.UTC))
    held, asleep = run_hours(local_stack, dt.datetime(2026, 11, 18, 2, 0, tzinfo=dt.UTC), 2, fires=1)  # 10:00, 11:00
    assert held["suppressed"] == {"hold_dispute": 1}
    assert asleep["asleep_until"] is not None and asleep["loans_read"] == 0

    send_event(local_stack, event("loan_event_dispute_resolved.json"), dt.datetime(2026, 11, 18, 3, 30, tzinfo=dt.UTC))
    woken, again = run_hours(local_stack, dt.datetime(2026, 11, 18, 4, 0, tzinfo=dt.UTC), 2, fires=1)

    assert read_the_book(woken) and woken["loans_read"] == 1
    assert again["asleep_until"] is not None  # one read per change, not one per hour
    # The released hold's deferral still runs to the local midnight, as without the agenda.
    assert woken["jobs_enqueued"] == 0 and sms_sent() == []


def test_a_loan_upstream_adds_while_the_planner_sleeps_is_found_after_longest_sleep_at_most(
    local_stack: LocalStack, run_hours: RunHours
) -> None:
    put_loan(local_stack, loan_id="L-EARLY", borrower_id="B-EARLY", phone="+8613800138001")
    start = dt.datetime(2026, 11, 18, 1, 0, tzinfo=dt.UTC)  # 09:00 in Shanghai: the window opens
    (first,) = run_hours(local_stack, start, 1, fires=1)
    assert first["jobs_enqueued"] == 1
    pokes = _poke_versions(local_stack)
    # No event of ours announces it, and its change wakes no shard: stamped when nothing of it was due yet
    # (a loan that falls due while the shard sleeps), so only the sleep's bound finds it.
    with time_machine.travel(dt.datetime(2026, 11, 1, tzinfo=dt.UTC), tick=False):
        put_loan(local_stack)  # due 2026-11-16
    assert _poke_versions(local_stack) == pokes

    later = run_hours(local_stack, start + dt.timedelta(hours=1), 7, fires=1)  # 02:00Z .. 08:00Z

    read = [start.hour + 1 + n for n, report in enumerate(later) if read_the_book(report)]
    assert read[0] - start.hour <= LONGEST_SLEEP.total_seconds() // 3600
    assert len(sms_sent(PHONE)) == 1


def test_a_loan_upstream_writes_already_overdue_is_planned_at_the_next_fire_not_after_the_sleep(
    local_stack: LocalStack, run_hours: RunHours
) -> None:
    """A migrated or late-booked loan already past its due date: its change wakes its shard (LoanChangesFunction)."""
    put_loan(
        local_stack, loan_id="L-LATER", borrower_id="B-LATER", phone="+8613800138001", due_date="2026-12-16"
    )  # due next month
    start = dt.datetime(2026, 11, 18, 1, 0, tzinfo=dt.UTC)  # 09:00 in Shanghai: the window opens
    (first,) = run_hours(local_stack, start, 1, fires=1)
    agenda, _ = StateRepository(local_stack.physical_id("StateTable"), planning_shards=64).planner_agenda(0, 1)
    assert read_the_book(first) and agenda is not None
    assert agenda.wake_at == start + LONGEST_SLEEP  # asleep until 07:00Z but for a poke

    with time_machine.travel(start + dt.timedelta(minutes=30), tick=False):
        put_loan(local_stack)  # overdue since 2026-11-16; the stream is drained at the write's time
    woken, again = run_hours(local_stack, start + dt.timedelta(hours=1), 2, fires=1)  # 02:00Z, 03:00Z

    assert read_the_book(woken) and woken["jobs_enqueued"] == 1
    assert again["asleep_until"] is not None  # one read for the change, not one an hour
    (sent,) = [r for r in records(local_stack) if r["loan_id"] == "L-20261101-0001"]
    assert (sent["outcome"], sent["created_at"]) == ("SENT", "2026-11-18T02:00:00.000Z")
    assert len(sms_sent(PHONE)) == 1


def test_a_loan_upstream_writes_due_later_wakes_no_planner(local_stack: LocalStack, run_hours: RunHours) -> None:
    start = dt.datetime(2026, 11, 18, 1, 0, tzinfo=dt.UTC)
    with time_machine.travel(start - dt.timedelta(hours=1), tick=False):
        put_loan(local_stack, loan_id="L-EARLY", borrower_id="B-EARLY", phone="+8613800138001")  # overdue
    (first,) = run_hours(local_stack, start, 1, fires=1)
    assert first["jobs_enqueued"] == 1
    before = poke_version(local_stack)

    with time_machine.travel(start + dt.timedelta(minutes=30), tick=False):
        put_loan(local_stack, due_date="2026-12-18")  # a new loan due in 30 days: the common case
    (asleep,) = run_hours(local_stack, start + dt.timedelta(hours=1), 1, fires=1)

    assert poke_version(local_stack) == before
    assert asleep["asleep_until"] is not None and asleep["loans_read"] == 0


def test_a_deferral_at_send_time_wakes_the_planner(local_stack: LocalStack) -> None:
    """A job planned at 19:00 in Shanghai that reaches the sender after 20:00 waits for tomorrow's window."""
    put_loan(local_stack)
    planned_at = dt.datetime(2026, 11, 18, 11, 0, tzinfo=dt.UTC)  # 19:00 in Shanghai
    with time_machine.travel(planned_at, tick=False):
        assert invoke(local_stack, "PlanRemindersFunction", scheduled_event(planned_at))["jobs_enqueued"] == 1
    before = poke_version(local_stack)

    drain_at(local_stack, planned_at + dt.timedelta(hours=1, minutes=5))  # 20:05 local: outside the window

    assert [r for r in records(local_stack) if r["outcome"] == "SENT"] == []
    assert poke_version(local_stack) == before + 1


def poke_version(stack: LocalStack) -> int:
    """The pokes an unsharded planner run watches: every shard's and each of the stack's PlanningShards (64)."""
    return StateRepository(stack.physical_id("StateTable"), planning_shards=64).planner_agenda(0, 1)[1]


def drain_at(stack: LocalStack, at: dt.datetime) -> None:
    with time_machine.travel(at, tick=False):
        drain_queue(stack)


def test_a_borrower_whose_window_never_opens_does_not_stop_the_run(moto_aws: None) -> None:
    """A policy window disjoint from the phone country's rule allows nothing: that loan waits, the run goes on."""
    policy = (Path(__file__).parents[2] / "shared/dunning/default_policy.yaml").read_text(encoding="utf-8")
    window = 'send_window: {start: "09:00", end: "20:00"}'
    late_window = policy.replace(window, 'send_window: {start: "22:30", end: "23:30"}')
    assert late_window != policy
    boto3.client("ssm").put_parameter(Name="/dunning/policy", Value=late_window, Type="String")
    stack = deploy_stack(parameters={"PolicyParameterName": "/dunning/policy", "MaxPartsPerSecond": "1000"})
    new_yorker(stack)  # US rule 08:00-21:00: nothing left of 22:30-23:30
    put_loan(stack)  # Shanghai, CN rule 08:00-22:00: nothing left either

    with time_machine.travel(NY_WINDOW_OPENS, tick=False):
        report = invoke(stack, "PlanRemindersFunction", scheduled_event(NY_WINDOW_OPENS))

    assert report["complete"] is True and report["waiting"] == {"outside_window": 2}
    assert report["jobs_enqueued"] == 0


def test_payments_and_redelivered_events_wake_the_planner_too(local_stack: LocalStack) -> None:
    """A payment may move a plan to an instalment due now; a redelivery may follow a crash before the poke."""
    put_loan(local_stack)
    before = poke_version(local_stack)  # written at the wall clock: its change may have woken its shard
    at = dt.datetime(2026, 11, 18, 1, 0, tzinfo=dt.UTC)
    send_event(local_stack, event("loan_event_dispute.json"), at)
    after_event = poke_version(local_stack)
    assert send_event(local_stack, event("loan_event_dispute.json"), at)["applied"] is False  # redelivered
    after_redelivery = poke_version(local_stack)
    send_event(local_stack, event("loan_event_payment_received.json"), at)

    assert (after_event, after_redelivery, poke_version(local_stack)) == (before + 1, before + 2, before + 3)


def _poke_versions(stack: LocalStack) -> list[dict[str, Any]]:
    """The planner's poke items (PLANNER / POKE#...): what a poke bumps."""
    table = boto3.resource("dynamodb").Table(stack.physical_id("StateTable"))
    items = table.scan(ConsistentRead=True)["Items"]
    return sorted((i for i in items if str(i.get("sk", "")).startswith("POKE")), key=str)
