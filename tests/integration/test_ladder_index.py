"""The ladder index (issue 11) on the moto stack: kept from LoansTable's stream, backfilled, read by shard.

- maintenance: an OPEN valid item enters with its bucket and chased date; a due-date change moves it;
  paid, invalid or removed items leave it (the product's own attributes stay); an older or replayed
  stream record changes nothing; under a repayment plan the item chases the next unpaid instalment;
- `dunning backfill`: an existing table's items through the same code, idempotent, never over a stream write;
- the planner by shard, stopped by its time budget and resumed from its cursor, plans exactly what one
  run plans, once; a job on a slow queue is never enqueued again; a job SQS refuses gets its claims back;
- pokes wake only the shard of the loan's bucket, and only for loans in the ladder;
- escalation and the bureau report by shard and cursor; the bureau file assembled from the shards'
  parts is byte-identical to the one an unsharded run writes over the same data.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from decimal import Decimal
from typing import Any

import boto3
import pytest
import time_machine
from botocore.awsrequest import AWSResponse

from dunning.dal.deliveries import DeliveriesRepository
from dunning.dal.ladder import LADDER_INDEX, LEAVING, LadderRepository
from dunning.dal.state import StateRepository
from dunning.loan_changes import ChangeKind, IndexOutcome, LoanChange, LoanChanges
from dunning.models.state import ClaimState
from dunning.sharding import bucket_key, bucket_of
from dunning_tools import cli
from dunning_tools.local import FakeLambdaContext, LocalStack, drain_queue, drain_stream, invoke
from tests.conftest import scheduled_event
from tests.integration.after_sms_helpers import scheduled, state_item

PLAN_AT = dt.datetime(2026, 11, 20, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai
DAILY_AT = dt.datetime(2026, 12, 12, 6, 30, tzinfo=dt.UTC)
CHANGED_AT = dt.datetime(2026, 11, 19, 8, 0, tzinfo=dt.UTC)
SHARDS = 64  # PlanningShards' default: how the stack keys its pokes


def loan(loan_id: str, borrower_id: str = "", due: str = "2026-11-19", **overrides: Any) -> dict[str, Any]:
    return {
        "loan_id": loan_id,
        "borrower_id": borrower_id or f"B-{loan_id}",
        "borrower_name": "王小明",
        "phone": "+8613800138000",
        "status": "OPEN",
        "due_date": due,
        "amount_due": Decimal("3000.00"),
        "currency": "CNY",
        **overrides,
    }


def changes(stack: LocalStack) -> LoanChanges:
    return LoanChanges(
        DeliveriesRepository(stack.physical_id("DeliveriesTable")),
        LadderRepository(stack.physical_id("StateTable")),
        400,
    )


def change(
    item: dict[str, Any] | None, seq: int, kind: ChangeKind = ChangeKind.MODIFY, loan_id: str = ""
) -> LoanChange:
    return LoanChange(
        loan_id=loan_id or str((item or {})["loan_id"]),
        kind=kind,
        changed_at=CHANGED_AT,
        sequence_number=str(1100000000000000000000 + seq),
        item=item,
    )


def indexed(stack: LocalStack) -> dict[str, dict[str, Any]]:
    """The LadderIndex's items by loan id (a Scan of the index: tests only)."""
    resource = boto3.resource("dynamodb", region_name=stack.region).Table(stack.physical_id("StateTable"))
    items = resource.scan(IndexName=LADDER_INDEX)["Items"]
    return {str(i["loan_id"]): i for i in items}


def put_loans(stack: LocalStack, *items: dict[str, Any]) -> None:
    table = boto3.resource("dynamodb", region_name=stack.region).Table(stack.physical_id("LoansTable"))
    with table.batch_writer() as batch:
        for item in items:
            batch.put_item(Item=item)


# ---------------------------------------------------------------- maintenance from stream records


def test_an_open_loan_enters_with_its_bucket_and_chased_date_and_the_contact_details_the_sender_composes_with(
    local_stack: LocalStack,
) -> None:
    result = changes(local_stack).apply(change(loan("L-1", "B-7"), 1, ChangeKind.INSERT))

    assert result.index is IndexOutcome.ENTERED
    item = indexed(local_stack)["L-1"]
    assert item["ladder_bucket"] == bucket_key(bucket_of("B-7"))
    assert item["ladder_due"] == "2026-11-19#L-1"
    assert (item["status"], item["amount_due"], item["currency"], item["phone_region"]) == (
        "OPEN",
        Decimal("3000.00"),
        "CNY",
        "CN",
    )
    # What the sender needs to compose (the planner's job carries it), marked for an erasure to find.
    assert (item["phone"], item["borrower_name"], item["contact_of"]) == ("+8613800138000", "王小明", "B-7")
    assert not any("8613800138000" in str(v) for k, v in item.items() if k not in ("phone", "pk", "sk"))


def test_a_due_date_change_moves_the_item_in_the_index(local_stack: LocalStack) -> None:
    apply = changes(local_stack).apply
    apply(change(loan("L-1"), 1, ChangeKind.INSERT))
    apply(change(loan("L-1", due="2026-12-19", amount_due=Decimal("1200.00")), 2))

    item = indexed(local_stack)["L-1"]
    assert (item["ladder_due"], item["due_date"], item["amount_due"]) == ("2026-12-19#L-1", "2026-12-19", 1200)


@pytest.mark.parametrize(
    ("leaving", "kind"),
    [
        (loan("L-1", status="PAID"), ChangeKind.MODIFY),
        (loan("L-1", status="WRITTEN_OFF"), ChangeKind.MODIFY),
        (loan("L-1", due_date="2026/11/19"), ChangeKind.MODIFY),  # turned invalid
        (loan("L-1", phone="12345", currency="ZZZ"), ChangeKind.MODIFY),  # more than its phone broken
        (None, ChangeKind.REMOVE),
    ],
    ids=["paid", "written-off", "invalid-date", "invalid-phone-and-currency", "removed"],
)
def test_a_loan_leaving_open_turning_invalid_or_removed_leaves_the_index_keeping_the_products_state(
    local_stack: LocalStack, leaving: dict[str, Any] | None, kind: ChangeKind
) -> None:
    apply = changes(local_stack).apply
    apply(change(loan("L-1"), 1, ChangeKind.INSERT))
    StateRepository(local_stack.physical_id("StateTable")).update_control(
        "L-1", "dispute", CHANGED_AT, {"dispute_hold": True}
    )

    result = apply(change(leaving, 2, kind, loan_id="L-1"))

    assert result.index is IndexOutcome.LEFT
    assert indexed(local_stack) == {}
    control = state_item(local_stack, "LOAN#L-1", "CONTROL")
    assert control is not None and control["dispute_hold"] is True  # the product's attributes survive
    assert not set(LEAVING) & set(control)  # upstream's values go with it


def test_a_loan_valid_but_for_its_phone_stays_in_the_index_flagged_unreachable_and_the_planner_skips_it(
    local_stack: LocalStack,
) -> None:
    apply = changes(local_stack).apply
    apply(change(loan("L-1"), 1, ChangeKind.INSERT))
    assert indexed(local_stack)["L-1"]["phone_region"] == "CN"

    result = apply(change(loan("L-1", phone="12345"), 2, loan_id="L-1"))
    assert not {"phone", "borrower_name", "contact_of"} & set(indexed(local_stack)["L-1"])  # nothing to send with

    # Escalation opens its `unreachable` case from the index (tests/integration/test_collection_cases.py).
    assert (result.reason, result.index) == ("invalid_phone", IndexOutcome.ENTERED)
    item = indexed(local_stack)["L-1"]
    assert item["unreachable"] is True and "phone_region" not in item and "phone_zones" not in item
    with time_machine.travel(PLAN_AT, tick=False):
        report = invoke(local_stack, "PlanRemindersFunction", scheduled_event(PLAN_AT))
    assert report["waiting"] == {"unreachable": 1} and report["jobs_enqueued"] == 0

    assert apply(change(loan("L-1"), 3, loan_id="L-1")).index is IndexOutcome.ENTERED  # the number fixed
    fixed = indexed(local_stack)["L-1"]
    assert "unreachable" not in fixed and fixed["phone_zones"] == ["Asia/Shanghai"]


def test_an_older_or_replayed_stream_record_never_overwrites_a_newer_one(local_stack: LocalStack) -> None:
    apply = changes(local_stack).apply
    apply(change(loan("L-1"), 5, ChangeKind.INSERT))
    paid = change(loan("L-1", status="PAID"), 7)
    assert apply(paid).index is IndexOutcome.LEFT

    late = apply(change(loan("L-1", due="2026-11-25"), 6))  # written before the payment, delivered after it
    replayed = apply(paid)
    again = apply(change(loan("L-1"), 5, ChangeKind.INSERT))

    assert (late.index, replayed.index, again.index) == (IndexOutcome.STALE,) * 3
    assert indexed(local_stack) == {}
    assert apply(change(loan("L-1", due="2026-12-01"), 8)).index is IndexOutcome.ENTERED  # reopened later
    assert indexed(local_stack)["L-1"]["ladder_due"] == "2026-12-01#L-1"


def test_under_a_repayment_plan_the_item_chases_the_next_unpaid_instalment(local_stack: LocalStack) -> None:
    apply = changes(local_stack).apply
    apply(change(loan("L-1", due="2026-11-01", amount_due=Decimal("900.00")), 1, ChangeKind.INSERT))
    plan = {
        "version": "0",
        "id": "plan-1",
        "detail-type": "RepaymentPlanAgreed",
        "source": "lender.loans",
        "account": "123456789012",
        "time": "2026-11-10T02:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "loan_id": "L-1",
            "instalments": [
                {"due_date": "2026-11-30", "amount": "300.00"},
                {"due_date": "2026-12-30", "amount": "300.00"},
                {"due_date": "2027-01-30", "amount": "300.00"},
            ],
        },
    }
    with time_machine.travel(dt.datetime(2026, 11, 10, 2, 0, tzinfo=dt.UTC), tick=False):
        assert invoke(local_stack, "LoanEventsFunction", plan)["applied"] is True
    assert indexed(local_stack)["L-1"]["ladder_due"] == "2026-11-30#L-1"

    apply(change(loan("L-1", due="2026-11-01", amount_due=Decimal("600.00")), 2))  # the first one paid upstream

    assert indexed(local_stack)["L-1"]["ladder_due"] == "2026-12-30#L-1"
    assert state_item(local_stack, "PLANDUE", "2026-11-30#L-1") is None  # no single-partition plan index


# ---------------------------------------------------------------- backfill


def test_backfill_indexes_an_existing_table_once_and_never_over_a_stream_write(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    put_loans(
        local_stack,
        loan("L-1"),
        loan("L-2", due="2026-11-25"),
        loan("L-3", status="PAID"),
        loan("L-4", phone="12345"),
    )

    pokes = StateRepository(local_stack.physical_id("StateTable"), planning_shards=SHARDS)
    before = [pokes.planner_agenda(shard, shards)[1] for shard, shards in ((0, 1), (5, 8), (63, 64))]
    assert cli.main(["backfill", "--stack-name", local_stack.name, "--segments", "3"]) == 0
    first = json.loads(capsys.readouterr().out)
    # Every shard woken once at the end, not once per loan indexed.
    after = [pokes.planner_agenda(shard, shards)[1] for shard, shards in ((0, 1), (5, 8), (63, 64))]
    assert after == [version + 1 for version in before]
    assert (
        first["items"] == 4 and first["index"] == {"entered": 3, "left": 1} and first["invalid"] == {"invalid_phone": 1}
    )
    assert sorted(indexed(local_stack)) == ["L-1", "L-2", "L-4"]  # L-4 flagged unreachable (escalation's case)
    assert indexed(local_stack)["L-4"]["unreachable"] is True
    assert [
        r for r in boto3.client("dynamodb").scan(TableName=local_stack.physical_id("DeliveriesTable"))["Items"]
    ] == []

    assert cli.main(["backfill", "--stack-name", local_stack.name]) == 0  # idempotent
    assert json.loads(capsys.readouterr().out)["index"] == {"left": 1, "stale": 3}

    # A stream write lands; a backfill that had read the older image must not undo it.
    apply = changes(local_stack).apply
    apply(change(loan("L-2", due="2026-12-25"), 9))
    stale_image = LoanChange(
        loan_id="L-2", kind=ChangeKind.MODIFY, changed_at=CHANGED_AT, sequence_number="0" * 40, item=loan("L-2")
    )
    assert apply(stale_image).index is IndexOutcome.STALE
    assert indexed(local_stack)["L-2"]["ladder_due"] == "2026-12-25#L-2"


def test_backfill_names_a_bad_argument(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["backfill", "--segments", "0", "--loans-table", "l", "--state-table", "s", "--deliveries-table", "d"])
    assert "--segments: must be between 1 and 64" in capsys.readouterr().err


# ---------------------------------------------------------------- the planner by shard


class Budget(FakeLambdaContext):
    """A context whose remaining time runs out after `pages` checks: the run stops near its 'limit'."""

    def __init__(self, pages: int) -> None:
        super().__init__("budget", timeout_seconds=300)
        self.left = pages

    def get_remaining_time_in_millis(self) -> int:  # type: ignore[override]
        self.left -= 1
        return 300_000 if self.left >= 0 else 1_000


def queued_lines(stack: LocalStack, at: dt.datetime = PLAN_AT + dt.timedelta(hours=6)) -> Counter[tuple[str, str, str]]:
    """The job lines on the queue, read (and hidden for an hour) at `at`: after the jobs were sent."""
    with time_machine.travel(at, tick=False):
        return _receive_lines(stack)


def _receive_lines(stack: LocalStack) -> Counter[tuple[str, str, str]]:
    sqs = boto3.client("sqs", region_name=stack.region)
    lines: Counter[tuple[str, str, str]] = Counter()
    while messages := sqs.receive_message(
        QueueUrl=stack.queue_url("ReminderQueue"), MaxNumberOfMessages=10, VisibilityTimeout=3600
    ).get("Messages", []):
        for message in messages:
            job = json.loads(message["Body"])
            lines.update((line["loan_id"], line["cycle"], line["stage"]) for line in job["lines"])
    return lines


BOOK = [loan(f"L-{n:02d}", f"B-{n // 2:02d}") for n in range(24)]  # 12 borrowers, two loans each


def plan(stack: LocalStack, detail: dict[str, Any], pages: int = 10_000) -> dict[str, Any]:
    event = scheduled_event(PLAN_AT)
    event["detail"] = detail
    with time_machine.travel(PLAN_AT, tick=False):
        report: dict[str, Any] = invoke(stack, "PlanRemindersFunction", event, context=Budget(pages))
    return report


def test_shard_runs_stopped_by_their_time_budget_and_resumed_plan_exactly_what_one_run_plans(
    local_stack: LocalStack,
) -> None:
    put_loans(local_stack, *BOOK)
    drain_stream(local_stack)
    expected = Counter((item["loan_id"], "2026-11-19", "overdue_notice") for item in BOOK)

    invocations = 0
    for shard in range(3):
        detail: dict[str, Any] = {"shard": shard, "shards": 3}
        while True:
            report = plan(local_stack, detail, pages=10)  # a shard reads 64 partitions (3 does not divide 64)
            invocations += 1
            if report["complete"]:
                assert report["cursor"] is None
                break
            assert report["cursor"]
            detail = {"shard": shard, "shards": 3, "cursor": report["cursor"]}

    assert invocations > 6  # every shard stopped and resumed several times
    lines = queued_lines(local_stack)
    assert lines == expected  # every stage once, nothing twice, nothing missed


def test_the_unsharded_run_plans_the_same_book_in_one_job_per_borrower(local_stack: LocalStack) -> None:
    put_loans(local_stack, *BOOK)
    drain_stream(local_stack)

    report = plan(local_stack, {})

    assert report["complete"] is True and report["loans_read"] == 24
    assert (report["jobs_enqueued"], report["lines_enqueued"]) == (12, 24)
    assert queued_lines(local_stack) == Counter((item["loan_id"], "2026-11-19", "overdue_notice") for item in BOOK)


def test_a_job_waiting_on_a_slow_queue_is_never_enqueued_again(local_stack: LocalStack) -> None:
    """40 overdue borrowers, the queue not drained for 6 hourly runs: 40 jobs queued, not 280 (issue 11)."""
    put_loans(local_stack, *(loan(f"L-{n:02d}") for n in range(40)))
    drain_stream(local_stack)
    poke = StateRepository(local_stack.physical_id("StateTable"))
    for hour in range(6):
        at = PLAN_AT + dt.timedelta(hours=hour)
        poke.wake_planner()  # every fire reads the book (no agenda sleep), and does not trust its marks
        with time_machine.travel(at, tick=False):
            invoke(local_stack, "PlanRemindersFunction", scheduled_event(at))

    lines = queued_lines(local_stack)
    assert len(lines) == 40 and set(lines.values()) == {1}


def test_a_stage_the_sender_deferred_is_planned_again_at_its_time_though_the_mark_says_planned(
    local_stack: LocalStack,
) -> None:
    put_loans(local_stack, loan("L-1"))
    drain_stream(local_stack)
    assert plan(local_stack, {})["lines_enqueued"] == 1
    queued_lines(local_stack)  # the job reaches a sender, which defers the stage by 3 hours (say, a cap)
    state = StateRepository(local_stack.physical_id("StateTable"))
    key = ("L-1", "2026-11-19", "overdue_notice")
    retry = PLAN_AT + dt.timedelta(hours=3)
    assert state.settle(key, "B-L-1", ClaimState.DEFERRED, PLAN_AT, reason="cap_daily", retry_after=retry)
    state.wake_planner()  # as the sender does after a deferral

    def fire(at: dt.datetime) -> dict[str, Any]:
        with time_machine.travel(at, tick=False):
            report: dict[str, Any] = invoke(local_stack, "PlanRemindersFunction", scheduled_event(at))
        return report

    poked = fire(PLAN_AT + dt.timedelta(hours=1))  # does not trust its marks: finds the deferral
    assert (poked["lines_enqueued"], poked["waiting"].get("already_deferred")) == (0, 1)
    assert fire(PLAN_AT + dt.timedelta(hours=2))["asleep_until"] == "2026-11-20T05:00:00.000Z"
    assert fire(retry)["lines_enqueued"] == 1  # trusts the mark, which now says until when


def test_jobs_sqs_refuses_get_their_claims_back_and_the_next_run_plans_them(local_stack: LocalStack) -> None:
    put_loans(local_stack, loan("L-1"), loan("L-2"))
    drain_stream(local_stack)

    entries: list[str] = []

    def note_entries(params: dict[str, Any], **_: Any) -> None:
        entries[:] = [e["Id"] for e in params["Entries"]]

    def refuse_all(**_: Any) -> tuple[Any, dict[str, Any]]:
        failed = [{"Id": i, "SenderFault": False, "Code": "InternalError"} for i in entries]
        answer = AWSResponse("https://sqs.invalid", 200, {}, None)
        return answer, {"Successful": [], "Failed": failed, "ResponseMetadata": {"HTTPStatusCode": 200}}

    from dunning.dal.aws import client

    events = client("sqs").meta.events
    events.register("before-parameter-build.sqs.SendMessageBatch", note_entries, unique_id="note-entries")
    events.register("before-call.sqs.SendMessageBatch", refuse_all, unique_id="refuse-all")
    try:
        refused = plan(local_stack, {})
    finally:
        events.unregister("before-parameter-build.sqs.SendMessageBatch", unique_id="note-entries")
        events.unregister("before-call.sqs.SendMessageBatch", unique_id="refuse-all")

    assert refused["jobs_enqueued"] == 0
    for loan_id in ("L-1", "L-2"):
        assert state_item(local_stack, f"LOAN#{loan_id}", "SEND#2026-11-19#overdue_notice") is None
        control = state_item(local_stack, f"LOAN#{loan_id}", "CONTROL")
        assert control is not None and "planned" not in control
    later = PLAN_AT + dt.timedelta(hours=1)
    event = scheduled_event(later)
    with time_machine.travel(later, tick=False):
        again = invoke(local_stack, "PlanRemindersFunction", event)  # the agenda woke at once
        drain_queue(local_stack)
    assert again["lines_enqueued"] == 2


def test_a_planner_shard_sleeps_through_pokes_of_other_shards(local_stack: LocalStack) -> None:
    state = StateRepository(local_stack.physical_id("StateTable"), planning_shards=4)
    before = [state.planner_agenda(shard, 4)[1] for shard in range(4)]
    bucket = bucket_of("B-somebody")

    state.wake_planner(bucket)

    after = [state.planner_agenda(shard, 4)[1] for shard in range(4)]
    assert [a - b for a, b in zip(after, before, strict=True)] == [int(s == bucket % 4) for s in range(4)]
    assert (
        state.planner_agenda(0, 1)[1] - StateRepository(local_stack.physical_id("StateTable")).planner_agenda(0, 1)[1]
        == 1
    )
    state.wake_planner()  # every shard's
    assert [state.planner_agenda(shard, 4)[1] for shard in range(4)] == [a + 1 for a in after]


def test_a_borrower_event_pokes_only_for_a_loan_in_the_ladder(local_stack: LocalStack) -> None:
    put_loans(local_stack, loan("L-1", "B-1"), loan("L-2", "B-2", status="PAID"))
    drain_stream(local_stack)
    # Pokes are keyed by the stack's PlanningShards (its default); an unsharded run watches them all.
    state = StateRepository(local_stack.physical_id("StateTable"), planning_shards=SHARDS)
    dispute = json.loads(json.dumps(scheduled("loan_event_dispute.json", PLAN_AT)))
    before = state.planner_agenda(0, 1)[1]  # written at the wall clock: L-1's change may have woken its shard

    versions = []
    for loan_id in ("L-2", "L-1"):
        dispute["detail"]["loan_id"] = loan_id
        dispute["id"] = f"dispute-{loan_id}"
        with time_machine.travel(PLAN_AT, tick=False):
            invoke(local_stack, "LoanEventsFunction", dispute)
        versions.append(state.planner_agenda(0, 1)[1] - before)

    assert versions == [0, 1]  # the paid loan woke nobody


# ---------------------------------------------------------------- escalation and the bureau by shard


OVERDUE_BOOK = [loan(f"E-{n:02d}", f"B-{n:02d}", due=f"2026-10-{1 + n % 28:02d}") for n in range(20)]


def test_escalation_by_shard_and_cursor_opens_each_case_once(local_stack: LocalStack) -> None:
    put_loans(local_stack, *OVERDUE_BOOK, loan("E-NEW", due="2026-12-11"))  # E-NEW: due yesterday, not past the ladder
    drain_stream(local_stack)

    opened: Counter[str] = Counter()
    invocations = 0
    for shard in range(2):
        detail: dict[str, Any] = {"shard": shard, "shards": 2}
        while True:
            event = {**scheduled("scheduled_escalate.json", DAILY_AT), "detail": detail}
            report = invoke(local_stack, "EscalateFunction", event, context=Budget(10))
            invocations += 1
            opened.update(report["opened"])
            if report["complete"]:
                break
            detail = {**detail, "cursor": report["cursor"]}

    assert invocations > 4  # each shard (32 partitions) stopped and resumed
    assert opened == {"ladder_exhausted": 20}
    again = invoke(local_stack, "EscalateFunction", scheduled("scheduled_escalate.json", DAILY_AT))
    assert again["opened"] == {} and again["already_open"] == 20


def report_bytes(stack: LocalStack, day: str) -> tuple[bytes, bytes]:
    s3 = boto3.client("s3")
    bucket = stack.physical_id("ReportsBucket")
    return tuple(  # type: ignore[return-value]
        s3.get_object(Bucket=bucket, Key=f"bureau/{day}/{name}")["Body"].read()
        for name in ("delinquencies.jsonl", "manifest.json")
    )


def test_the_bureau_file_assembled_from_shard_parts_is_byte_identical_to_an_unsharded_run(
    local_stack: LocalStack,
) -> None:
    put_loans(local_stack, *OVERDUE_BOOK, loan("E-PAID", due="2026-10-01", status="PAID"))
    drain_stream(local_stack)
    boto3.client("dynamodb").put_item(  # reported earlier, paid since: a SETTLED correction
        TableName=local_stack.physical_id("StateTable"),
        Item={
            "pk": {"S": "BUREAU#REPORTED"},
            "sk": {"S": "LOAN#E-PAID"},
            "loan_id": {"S": "E-PAID"},
            "borrower_id": {"S": "B-E-PAID"},
            "currency": {"S": "CNY"},
            "first_delinquency_date": {"S": "2026-10-02"},
            "reported_since": {"S": "2026-11-01"},
        },
    )

    chunks = 0
    for shard in range(3):
        detail: dict[str, Any] = {"shard": shard, "shards": 3}
        while True:
            event = {**scheduled("scheduled_bureau.json", DAILY_AT), "detail": detail}
            part = invoke(local_stack, "BureauReportFunction", event, context=Budget(20))
            chunks += not part["complete"]
            if part["complete"]:
                break
            detail = {**detail, "cursor": part["cursor"]}  # lines so far kept as a chunk
    assembled = invoke(
        local_stack,
        "BureauReportFunction",
        {**scheduled("scheduled_bureau.json", DAILY_AT), "detail": {"shards": 3, "assemble": True}},
    )
    sharded = report_bytes(local_stack, "2026-12-12")

    unsharded = invoke(local_stack, "BureauReportFunction", scheduled("scheduled_bureau.json", DAILY_AT))

    assert chunks >= 6  # every shard stopped (64 partitions, 20 pages an invocation) and joined its chunks
    assert report_bytes(local_stack, "2026-12-12") == sharded
    assert assembled == unsharded
    assert (unsharded["delinquent"], unsharded["settled"]) == (20, 1)
    lines = [json.loads(line) for line in sharded[0].decode().splitlines()]
    assert [line["loan_id"] for line in lines] == sorted(line["loan_id"] for line in lines)


def test_assembling_before_every_shard_wrote_its_part_names_the_missing_ones(local_stack: LocalStack) -> None:
    event = {**scheduled("scheduled_bureau.json", DAILY_AT), "detail": {"shard": 1, "shards": 3}}
    invoke(local_stack, "BureauReportFunction", event)
    assemble = {**scheduled("scheduled_bureau.json", DAILY_AT), "detail": {"shards": 3, "assemble": True}}

    with pytest.raises(ValueError, match=r"shard part\(s\) \[0, 2\] of 3 not written yet"):
        invoke(local_stack, "BureauReportFunction", assemble)
