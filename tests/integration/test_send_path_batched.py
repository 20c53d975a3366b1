"""The send path per SQS batch (issue 11): no read in the usual case, the re-checks folded into its writes.

On the fault suite's stack and book: the sender decides from the planner's snapshot, and its
pre-publish transaction ConditionChecks the live loan, its CONTROL item and the opt-out items. A loan
changed since planning is read again and decided from what it is now; a job of an older planner
(no snapshot) is read. The borrower's caps live in one item taken with a conditional update, and
delivery status learns its records from the answer of the update that notes the outcome on the MSG#
pointer (no read). Every scenario ends with the fault
suite's accounting (0 duplicates, 0 lost).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest
import time_machine
from botocore.stub import Stubber

from dunning import compliance
from dunning.dal import aws
from dunning.dal.sms import SmsGateway, SmsSettings
from dunning.dal.transact import Unit, write_units
from dunning.models.policy import load_policy_file
from dunning.opt_out_sync import OptOutSync
from dunning_tools.local import LocalStack, invoke
from dunning_tools.local.sample_events import FAILURE_GROUP, SUCCESS_GROUP, cloudwatch_logs_event, sms_delivery_log
from tests.integration.phone_key_helpers import opted_out, state_repository
from tests.integration.test_faults import (
    AT,
    CLEAN,
    Fault,
    check,
    drain_with_redelivery,
    ends,
    fire_planner,
    fresh_stack,
    injector,
    receive_all,
    scan,
    sms_sent,
    sync_opt_outs,
)

SENT_AT = AT + dt.timedelta(seconds=5)
READS = re.compile(r"dynamodb\.(GetItem|BatchGetItem|Query|Scan)")


@pytest.fixture
def stack(module_stack: LocalStack) -> Iterator[LocalStack]:
    yield from fresh_stack(module_stack)


def planned(stack: LocalStack) -> None:
    """The hour's planner, then SNS's opt-out list synced (F-3 opted out after planning)."""
    fire_planner(stack, AT)
    sync_opt_outs(stack, AT)


def loans_table(stack: LocalStack) -> Any:
    return boto3.resource("dynamodb", region_name=stack.region).Table(stack.physical_id("LoansTable"))


def test_a_batch_is_sent_with_no_read_one_transaction_before_and_one_after_publish(
    stack: LocalStack, record_property: Callable[[str, object], None]
) -> None:
    planned(stack)
    traced = injector(stack)
    drain_with_redelivery(stack, SENT_AT)
    check(stack, record_property, "one batch", CLEAN)
    calls = Counter(call.split(" ")[0] for call in traced.calls)
    # The planner's jobs carry the loans as the ladder index holds them (contact details included): no read.
    assert [call for call in traced.calls if READS.match(call)] == []
    assert calls["sns.Publish"] == 2  # F-1's SMS and F-2A + F-2B's
    # Claims of the round (tried again without F-3, whose opt-out check failed), its outcomes, F-3's record.
    assert calls["dynamodb.TransactWriteItems"] == 4
    assert sum(calls.values()) == 6


def test_a_loan_changed_since_planning_is_read_again_and_sent_as_it_is_now(
    stack: LocalStack, record_property: Callable[[str, object], None]
) -> None:
    planned(stack)
    loans_table(stack).update_item(
        Key={"loan_id": "F-1"}, UpdateExpression="SET amount_due = :a", ExpressionAttributeValues={":a": Decimal("999")}
    )
    traced = injector(stack)
    drain_with_redelivery(stack, SENT_AT)
    check(stack, record_property, "changed since planning", CLEAN)
    (record,) = [r for r in scan(stack, "DeliveriesTable") if r["loan_id"] == "F-1"]
    assert record["amount_due"] == Decimal("999") and "¥1,000.50" in record["body"]  # 999 + its late fees
    # One read, of F-1 and its CONTROL item (one BatchGetItem over both tables).
    assert [c for c in traced.calls if READS.match(c)] == ["dynamodb.BatchGetItem LoansTable"]


def test_a_failed_read_of_a_loan_changed_since_planning_is_redelivered_and_sent_once(
    stack: LocalStack, record_property: Callable[[str, object], None]
) -> None:
    planned(stack)
    loans_table(stack).update_item(
        Key={"loan_id": "F-1"}, UpdateExpression="SET amount_due = :a", ExpressionAttributeValues={":a": Decimal("999")}
    )
    read = Fault(r"BatchGetItem LoansTable")
    installed = injector(stack, read)
    drain_with_redelivery(stack, SENT_AT)
    assert installed.fired[read] == 1
    check(stack, record_property, "changed since planning, its read failed once", CLEAN)
    (record,) = [r for r in scan(stack, "DeliveriesTable") if r["loan_id"] == "F-1"]
    assert record["amount_due"] == Decimal("999")


def test_a_loan_paid_since_planning_is_suppressed_at_the_last_moment(
    stack: LocalStack, record_property: Callable[[str, object], None]
) -> None:
    planned(stack)
    loans_table(stack).update_item(
        Key={"loan_id": "F-1"},
        UpdateExpression="SET #s = :paid",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":paid": "PAID"},
    )
    drain_with_redelivery(stack, SENT_AT)
    result = check(stack, record_property, "paid since planning", ends(F_1="SUPPRESSED:paid"))
    assert "+8613900139021" not in result.sms_per_phone


def test_a_dispute_since_planning_holds_the_sms(
    stack: LocalStack, record_property: Callable[[str, object], None]
) -> None:
    planned(stack)
    event = {
        "version": "0",
        "id": "dispute-1",
        "detail-type": "LoanDisputed",
        "source": "lender.crm",
        "account": "123456789012",
        "time": (AT + dt.timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": stack.region,
        "resources": [],
        "detail": {"loan_id": "F-1", "reason": "amount contested"},
    }
    with time_machine.travel(AT + dt.timedelta(seconds=2), tick=False):
        invoke(stack, "LoanEventsFunction", event)
    drain_with_redelivery(stack, SENT_AT)
    result = check(stack, record_property, "disputed since planning", ends(F_1="SUPPRESSED:hold_dispute"))
    assert "+8613900139021" not in result.sms_per_phone


def test_a_job_of_an_older_planner_without_a_snapshot_is_read_and_sent(
    stack: LocalStack, record_property: Callable[[str, object], None]
) -> None:
    planned(stack)
    sqs = boto3.client("sqs", region_name=stack.region)
    with time_machine.travel(SENT_AT, tick=False):
        for message in receive_all(stack):
            job = json.loads(message["Body"])
            for line in job["lines"]:
                line.pop("snapshot")
            sqs.send_message(QueueUrl=stack.queue_url("ReminderQueue"), MessageBody=json.dumps(job))
            sqs.delete_message(QueueUrl=stack.queue_url("ReminderQueue"), ReceiptHandle=message["ReceiptHandle"])
    traced = injector(stack)
    drain_with_redelivery(stack, SENT_AT)
    check(stack, record_property, "jobs without snapshot", CLEAN)
    # Each batch's loans and CONTROL items in one BatchGetItem over both tables.
    assert {c for c in traced.calls if READS.match(c)} == {"dynamodb.BatchGetItem LoansTable"}


def test_delivery_status_learns_the_records_from_the_message_pointers_without_a_read(
    stack: LocalStack, record_property: Callable[[str, object], None]
) -> None:
    planned(stack)
    drain_with_redelivery(stack, SENT_AT)
    check(stack, record_property, "sent, then delivery logs", CLEAN)
    by_phone = {phone: message_id for message_id, (phone, _) in sms_sent(stack).items()}
    delivered, failed = by_phone["+8613900139022"], by_phone["+8613900139021"]
    traced = injector(stack)
    at = SENT_AT + dt.timedelta(minutes=1)
    with time_machine.travel(at, tick=False):
        ok = invoke(
            stack,
            "RecordDeliveryFunction",
            cloudwatch_logs_event(SUCCESS_GROUP, [sms_delivery_log(delivered, success=True, at=at)], at=at),
        )
        ko = invoke(
            stack,
            "RecordDeliveryFunction",
            cloudwatch_logs_event(FAILURE_GROUP, [sms_delivery_log(failed, success=False, at=at)], at=at),
        )
        again = invoke(
            stack,
            "RecordDeliveryFunction",
            cloudwatch_logs_event(SUCCESS_GROUP, [sms_delivery_log(failed, success=True, at=at)], at=at),
        )
    assert ok["records"] == {"applied": 2} and ko["records"] == {"applied": 1}
    assert again["records"] == {"conflict": 1}  # the first final outcome stands
    outcomes = {r["loan_id"]: r["outcome"] for r in scan(stack, "DeliveriesTable") if r["outcome"] != "SUPPRESSED"}
    assert outcomes == {"F-1": "FAILED", "F-2A": "DELIVERED", "F-2B": "DELIVERED"}
    control = [i for i in scan(stack, "StateTable") if i["pk"] == "LOAN#F-1" and i["sk"] == "CONTROL"]
    assert control and "last_failed_delivery_at" in control[0]
    assert not [c for c in traced.calls if READS.match(c)]  # the pointers' answers, not a read
    # Per log the pointer's outcome (its answer names the records), then the records' outcomes; the late
    # contradicting log stops at the pointer, which holds the first outcome.
    assert Counter(c.split(" ")[0] for c in traced.calls) == {
        "dynamodb.UpdateItem": 3,
        "dynamodb.TransactWriteItems": 2,
    }
    pointers = [i for i in scan(stack, "StateTable") if str(i["pk"]).startswith("MSG#")]
    assert {str(i["pk"]).removeprefix("MSG#"): i["outcome"] for i in pointers} == {
        delivered: "DELIVERED",
        failed: "FAILED",
    }


def test_the_borrower_caps_held_in_one_item_agree_with_the_rolling_week(stack: LocalStack) -> None:
    """Random send attempts over three weeks: the conditional update allows exactly what cap_reason allows."""
    policy = load_policy_file()
    caps = policy.caps
    state = state_repository(stack)
    rng = random.Random(20261128)  # test data
    start = dt.date(2026, 11, 1)
    for borrower in range(8):
        history: Counter[dt.date] = Counter()
        day = start
        for _ in range(14):
            day += dt.timedelta(days=rng.choice([0, 1, 1, 2]))
            take = state.take_cap(f"CAP-{borrower}", day, caps.per_borrower_per_day, caps.per_borrower_per_7_days, 0)
            refused = write_units([Unit("take", [take])])
            allowed = compliance.cap_reason(dict(history), day, policy) is None
            assert (not refused) == allowed, (borrower, day, dict(history))
            if not refused and rng.random() < 0.25:
                # Its SMS never left: the slot is given back, and the day counts as before.
                back = state.give_back_cap(
                    f"CAP-{borrower}", day, caps.per_borrower_per_day, caps.per_borrower_per_7_days
                )
                assert write_units([Unit("back", [back])]) == []
            elif not refused:
                history[day] += 1


def test_the_opt_out_sync_resumes_where_it_stopped_and_keeps_an_existing_opt_outs_source(stack: LocalStack) -> None:
    state = state_repository(stack)
    state.opt_out("+8613900139021", "inbound_sms", "reply-7", AT)
    pages = [
        {"phoneNumbers": ["+8613900139021", "+8613900139022", "12345"], "nextToken": "page-2"},
        {"phoneNumbers": ["+8613900139024"]},
    ]
    sync = OptOutSync(state, SmsGateway(SmsSettings("Transactional")))
    with Stubber(aws.client("sns")) as sns:
        sns.add_response("list_phone_numbers_opted_out", pages[0], {})
        first = sync.run(AT, time_left=lambda: 5.0)  # near its time limit after the first page
        sns.add_response("list_phone_numbers_opted_out", pages[1], {"nextToken": "page-2"})
        second = sync.run(AT + dt.timedelta(hours=1))
        sns.assert_no_pending_responses()
    assert first.as_dict() == {"listed": 3, "added": 1, "invalid": 1, "complete": False}
    assert second.as_dict() == {"listed": 1, "added": 1, "invalid": 0, "complete": True}
    assert all(opted_out(stack, p) for p in ("+8613900139021", "+8613900139022", "+8613900139024"))
    assert state.opt_out_sync_cursor() is None
    sources = {str(i.get("source")) for i in scan(stack, "StateTable") if i["sk"] == "OPTOUT"}
    assert sources == {"inbound_sms", "sns"}  # the borrower's own STOP keeps its source
