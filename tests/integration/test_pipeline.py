"""The core pipeline on the moto stack: planner -> ReminderQueue -> sender -> SNS SMS + delivery records.

The week scenario is the issue's "Done when": an unseen book (overdue, paid, not yet due, opted
out, malformed; borrowers in Shanghai and New York) run hourly for a week with every schedule
firing twice, checked SMS by SMS.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import time_machine
from boto3.dynamodb.conditions import Key
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns import sns_backends

from dunning.compose import is_reference_code
from dunning_tools.local import LocalStack, drain_queue, invoke
from tests.conftest import RunHours, opt_out_at_sns

EVENTS = Path(__file__).resolve().parents[2] / "events"
SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
WEEK_START = dt.datetime(2026, 11, 23, 0, 0, tzinfo=dt.UTC)  # 08:00 Monday in Shanghai


def utc(day: int, hour: int) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, tzinfo=dt.UTC)


def loan(loan_id: str, borrower_id: str, phone: str | None, due_date: str, **extra: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "loan_id": loan_id,
        "borrower_id": borrower_id,
        "borrower_name": "李雷",
        "phone": phone,
        "status": "OPEN",
        "due_date": due_date,
        "amount_due": Decimal("1500.00"),
        "currency": "CNY",
        **extra,
    }
    return {k: v for k, v in item.items() if v is not None}


def new_yorker(loan_id: str, borrower_id: str, phone: str, due_date: str) -> dict[str, Any]:
    return loan(
        loan_id,
        borrower_id,
        phone,
        due_date,
        borrower_name="Jane Roe",
        currency="USD",
        amount_due=Decimal("420.50"),
        locale="en-US",
        timezone="America/New_York",
    )


BOOK = [
    # Shanghai (policy default zone): the window 09:00-20:00 opens at 01:00Z.
    loan("L01", "B01", "+8613900139001", "2026-11-25"),  # not yet due when first seen
    loan("L02", "B02", "+8613700137002", "2026-11-09"),  # 14 days overdue when first seen
    loan(
        "L03",
        "B03",
        "+8613600136003",
        "2026-10-26",
        borrower_name="Li Lei",
        locale="en-US",
        timezone="Asia/Shanghai",
        late_fees="12.34",
    ),
    loan("L04", "B04", "+8613500135004", "2026-11-20", status="PAID"),
    loan("L05", "B05", "+8613800138099", "2026-11-22"),  # on SNS's opt-out list (synced hourly)
    loan("L06", "B06", "+8618600186005", "2026-11-24"),  # paid after two days (see the test)
    loan("L09A", "B09", "+8613300133009", "2026-11-20"),  # one borrower, two loans: one SMS
    loan("L09B", "B09", "+8613300133009", "2026-11-20", amount_due=Decimal("300.00")),
    # New York: the window opens at 14:00Z (EST), and Shanghai's business day turns at 16:00Z.
    new_yorker("L07", "B07", "+12025550143", "2026-11-25"),
    new_yorker("L08", "B08", "+13125550111", "2026-11-20"),
    # Malformed items: each skipped with a recorded reason, the rest of every run goes on.
    loan("M01", "BM1", "12345", "2026-11-24"),
    loan("M04", "BM4", "+8613800138004", "2026-11-24", amount_due="abc"),
]
MALFORMED_ITEMS = [
    loan("M01", "BM1", "12345", "2026-11-24"),
    loan("M02", "BM2", "8613800138001", "2026-11-24"),  # no '+': moto would take it, AWS does not
    loan("M03", "BM3", None, "2026-11-24"),
    loan("M04", "BM4", "+8613800138004", "2026-11-24", amount_due="abc"),
    loan("M05", "BM5", "+8613800138005", "2026-11-24", currency="XYZ"),
    loan("M06", "BM6", "+8613800138006", "2026-11-24", timezone="Mars/Olympus_Mons"),
]

# (stage, the scheduled hour it goes out) per loan, for the week from WEEK_START.
EXPECTED_SMS: dict[str, list[tuple[str, dt.datetime]]] = {
    "L01": [
        ("courtesy", utc(23, 1)),
        ("due_today", utc(25, 1)),
        ("overdue_notice", utc(26, 1)),
        ("follow_up_3", utc(28, 1)),
    ],
    "L02": [("follow_up_12", utc(23, 1)), ("follow_up_15", utc(24, 1)), ("follow_up_18", utc(27, 1))],
    "L03": [("follow_up_27", utc(23, 1))],  # day 30 (11-25) escalates: no more SMS
    "L04": [],
    "L05": [],
    "L06": [("courtesy", utc(23, 1)), ("due_today", utc(24, 1))],
    "L09A": [("follow_up_3", utc(23, 1)), ("follow_up_6", utc(26, 1)), ("follow_up_9", utc(29, 1))],
    "L09B": [("follow_up_3", utc(23, 1)), ("follow_up_6", utc(26, 1)), ("follow_up_9", utc(29, 1))],
    # 00:00Z is 19:00 the evening before in New York: still inside its window.
    "L07": [
        ("courtesy", utc(23, 0)),
        ("due_today", utc(24, 16)),
        ("overdue_notice", utc(25, 16)),
        ("follow_up_3", utc(27, 16)),
    ],
    "L08": [("follow_up_3", utc(23, 0)), ("follow_up_6", utc(25, 16)), ("follow_up_9", utc(28, 16))],
}
MALFORMED = {
    "M01": "invalid_phone",
    "M02": "invalid_phone",
    "M03": "missing_phone",
    "M04": "invalid_amount",
    "M05": "invalid_currency",
    "M06": "invalid_timezone",
}


def deliveries(stack: LocalStack) -> list[dict[str, Any]]:
    table = boto3.resource("dynamodb", region_name=stack.region).Table(stack.physical_id("DeliveriesTable"))
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {}
    while True:
        page = table.scan(**kwargs)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def records_of(stack: LocalStack, loan_id: str) -> list[dict[str, Any]]:
    table = boto3.resource("dynamodb", region_name=stack.region).Table(stack.physical_id("DeliveriesTable"))
    items: list[dict[str, Any]] = table.query(KeyConditionExpression=Key("loan_id").eq(loan_id))["Items"]
    return items


def sms_sent(stack: LocalStack) -> dict[str, tuple[str, str]]:
    """moto's record of every SMS published: message_id -> (phone, body)."""
    return dict(sns_backends[DEFAULT_ACCOUNT_ID][stack.region].sms_messages)


def when(record: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(str(record["created_at"]).replace("Z", "+00:00"))


def set_status(stack: LocalStack, loan_id: str, status: str) -> None:
    table = boto3.resource("dynamodb", region_name=stack.region).Table(stack.physical_id("LoansTable"))
    table.update_item(
        Key={"loan_id": loan_id},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": status},
    )


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return event


# ---------------------------------------------------------------- the week


def test_a_week_of_hourly_runs_each_fired_twice(
    local_stack: LocalStack, seed_loans: Callable[..., None], run_hours: RunHours
) -> None:
    """The book run hourly for a week, the planner firing twice each hour; L06 is paid after two days.

    One test (the week is most of this file's runtime), its checks split by property below.
    """
    seed_loans(*BOOK)
    opt_out_at_sns(local_stack, "+8613800138099")  # L05's borrower replied STOP to SNS
    reports = run_hours(local_stack, WEEK_START, 48)
    set_status(local_stack, "L06", "PAID")  # upstream overwrites the item
    reports += run_hours(local_stack, WEEK_START + dt.timedelta(hours=48), 7 * 24 - 48)
    assert len(reports) == 2 * 7 * 24 and all(report["complete"] for report in reports)
    check_exactly_the_expected_sms_per_loan(local_stack)
    check_complete_sent_records_and_each_sms_once(local_stack)
    check_sms_read_as_their_locale_says(local_stack)
    check_only_inside_the_window_and_once_a_local_day(local_stack)
    check_no_sms_but_records_with_reasons(local_stack)
    check_queues_empty(local_stack)


def check_exactly_the_expected_sms_per_loan(week: LocalStack) -> None:
    sent: dict[str, list[tuple[str, dt.datetime]]] = defaultdict(list)
    for record in deliveries(week):
        if record["outcome"] == "SENT":
            sent[record["loan_id"]].append((record["stage"], when(record)))
    assert {loan_id: sorted(v, key=lambda s: s[1]) for loan_id, v in sent.items()} == {
        loan_id: expected for loan_id, expected in EXPECTED_SMS.items() if expected
    }


def check_complete_sent_records_and_each_sms_once(week: LocalStack) -> None:
    phones = {item["loan_id"]: item.get("phone") for item in BOOK}
    published = sms_sent(week)
    sent = [r for r in deliveries(week) if r["outcome"] == "SENT"]
    by_message: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in sent:
        by_message[record["message_id"]].append(record)
        assert record["phone"] == phones[record["loan_id"]]
        assert record["body"] and record["encoding"] in {"GSM-7", "UCS-2"}
        assert 1 <= int(record["segments"]) <= 2
        assert is_reference_code(record["reference"]) and record["reference"] in record["body"]
        assert published[record["message_id"]] == (record["phone"], record["body"])
        assert record["cycle"] and record["currency"] and record["amount_due"] > 0
        assert record["late_fees"] >= 0
    # One SMS per message id, every published SMS is recorded, none went out twice.
    assert set(published) == set(by_message)
    assert len(published) == sum(1 for expected in EXPECTED_SMS.values() for _ in expected) - 3  # B09 shares 3
    assert len({(phone, body) for phone, body in published.values()}) == len(published)
    # The borrower with two loans got one SMS a day naming both.
    for records in by_message.values():
        if len(records) > 1:
            assert {r["loan_id"] for r in records} == {"L09A", "L09B"}


def check_sms_read_as_their_locale_says(week: LocalStack) -> None:
    for record in deliveries(week):
        if record["outcome"] != "SENT":
            continue
        if record["loan_id"] in {"L03", "L07", "L08"}:
            assert record["locale"] == "en-US"
            assert record["encoding"] == "GSM-7"
            assert record["body"].endswith("Reply STOP to opt out")
        else:
            assert record["locale"] == "zh-CN"
            assert record["body"].startswith("【信飞】") and record["body"].endswith("回T退订")
    # The ledger's late fees are what the SMS states, not the policy's.
    (l03,) = [r for r in records_of(week, "L03") if r["outcome"] == "SENT"]
    assert l03["late_fees"] == Decimal("12.34")
    assert "12.34" in l03["body"]


def check_only_inside_the_window_and_once_a_local_day(week: LocalStack) -> None:
    zones = {item["borrower_id"]: ZoneInfo(item.get("timezone", "Asia/Shanghai")) for item in BOOK}
    messages_per_day: dict[tuple[str, dt.date], set[str]] = defaultdict(set)
    stages_per_day: dict[tuple[str, dt.date], set[str]] = defaultdict(set)
    for record in deliveries(week):
        if record["outcome"] != "SENT":
            continue
        local = when(record).astimezone(zones[record["borrower_id"]])
        assert dt.time(9) <= local.time() < dt.time(20), (record["loan_id"], local)
        messages_per_day[(record["borrower_id"], local.date())].add(record["message_id"])
        stages_per_day[(record["loan_id"], local.date())].add(record["stage"])
    assert messages_per_day and all(len(ids) == 1 for ids in messages_per_day.values())
    assert all(len(stages) == 1 for stages in stages_per_day.values())


def check_no_sms_but_records_with_reasons(week: LocalStack) -> None:
    published_to = {phone for phone, _ in sms_sent(week).values()}
    opted_out = records_of(week, "L05")
    assert {(r["stage"], r["outcome"], r["reason"]) for r in opted_out} == {
        ("overdue_notice", "SUPPRESSED", "opted_out"),
        ("follow_up_3", "SUPPRESSED", "opted_out"),
        ("follow_up_6", "SUPPRESSED", "opted_out"),
    }
    assert "+8613800138099" not in published_to
    assert records_of(week, "L04") == []  # paid before we ever saw it: never even read
    assert all(r["outcome"] == "SENT" for r in records_of(week, "L06"))  # paid: nothing more, not even a record

    for loan_id in ("M01", "M04"):
        reason = MALFORMED[loan_id]
        records = records_of(week, loan_id)
        assert records, loan_id
        assert {(r["outcome"], r["reason"]) for r in records} == {("SUPPRESSED", reason)}, loan_id
        # One record, when upstream wrote the item (LoanChangesFunction); the planner never reads it (no index).
        assert [r["stage"] for r in records] == ["intake"], loan_id
        assert all(r["cycle"] == "2026-11-24" for r in records)
    assert "12345" not in published_to


def check_queues_empty(week: LocalStack) -> None:
    sqs = boto3.client("sqs", region_name=week.region)
    for queue in ("ReminderQueue", "ReminderDeadLetterQueue"):
        attributes = sqs.get_queue_attributes(
            QueueUrl=week.queue_url(queue),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        assert attributes == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}


# ---------------------------------------------------------------- the handlers with the events files

EVENT_TIME = dt.datetime(2026, 11, 28, 2, 0, tzinfo=dt.UTC)  # scheduled_plan.json: 10:00 in Shanghai
EVENT_BOOK = [
    loan("L-EV-1", "B-EV-1", "+8613900139011", "2026-11-28"),  # due today
    loan("L-EV-2", "B-EV-2", "+8613900139012", "2026-11-25", locale="en-US"),  # follow_up_3
]


def test_scheduled_plan_event_file_plans_the_sqs_event_files_jobs(
    local_stack: LocalStack, seed_loans: Callable[..., None]
) -> None:
    seed_loans(*EVENT_BOOK)
    event = load_event("scheduled_plan.json")
    assert event["time"] == "2026-11-28T02:00:00Z"
    report = invoke(local_stack, "PlanRemindersFunction", event)
    assert report["jobs_enqueued"] == 2 and report["lines_enqueued"] == 2
    # What the planner enqueued is exactly what events/sqs_send_job.json carries.
    sqs = boto3.client("sqs", region_name=local_stack.region)
    queued = sqs.receive_message(QueueUrl=local_stack.queue_url("ReminderQueue"), MaxNumberOfMessages=10)["Messages"]
    sample = [json.loads(r["body"]) for r in load_event("sqs_send_job.json")["Records"]]
    planned = [json.loads(m["Body"]) for m in queued]
    normal = [{**job, "planned_at": job["planned_at"].replace("+00:00", "Z")} for job in planned]
    assert sorted(normal, key=lambda j: j["borrower_id"]) == sample


def test_sqs_send_job_event_file_sends_each_job_once(local_stack: LocalStack, seed_loans: Callable[..., None]) -> None:
    seed_loans(*EVENT_BOOK)
    with time_machine.travel(EVENT_TIME, tick=False):
        invoke(local_stack, "PlanRemindersFunction", load_event("scheduled_plan.json"))
        response = invoke(local_stack, "SendRemindersFunction", load_event("sqs_send_job.json"))
        assert response == {"batchItemFailures": []}
        # The planner's own copies of the same jobs (and a redelivery of the file) change nothing.
        drain_queue(local_stack)
        assert invoke(local_stack, "SendRemindersFunction", load_event("sqs_send_job.json")) == {
            "batchItemFailures": []
        }
    published = sms_sent(local_stack)
    assert sorted(phone for phone, _ in published.values()) == ["+8613900139011", "+8613900139012"]
    for loan_id, stage in (("L-EV-1", "due_today"), ("L-EV-2", "follow_up_3")):
        (record,) = records_of(local_stack, loan_id)
        assert (record["outcome"], record["stage"], when(record)) == ("SENT", stage, EVENT_TIME)
        assert published[record["message_id"]][1] == record["body"]


def test_sqs_batch_reports_only_the_junk_record_as_failed(
    local_stack: LocalStack, seed_loans: Callable[..., None]
) -> None:
    seed_loans(*EVENT_BOOK)
    event = load_event("sqs_send_job.json")
    junk = copy.deepcopy(event["Records"][0])
    junk["messageId"] = "junk-0001"
    junk["body"] = '{"borrower_id": "B-EV-1", "lines": []}'
    event["Records"].insert(1, junk)
    with time_machine.travel(EVENT_TIME, tick=False):
        invoke(local_stack, "PlanRemindersFunction", load_event("scheduled_plan.json"))
        response = invoke(local_stack, "SendRemindersFunction", event)
    assert response == {"batchItemFailures": [{"itemIdentifier": "junk-0001"}]}
    assert len(sms_sent(local_stack)) == 2  # the good records around it went on


def test_a_scheduled_event_without_time_is_rejected_and_enqueues_nothing(
    local_stack: LocalStack, seed_loans: Callable[..., None]
) -> None:
    seed_loans(*EVENT_BOOK)
    event = load_event("scheduled_plan.json")
    del event["time"]
    response = invoke(local_stack, "PlanRemindersFunction", event)
    assert response["status"] == "rejected"
    assert "time" in response["error"] and "Field required" in response["error"]
    attributes = boto3.client("sqs", region_name=local_stack.region).get_queue_attributes(
        QueueUrl=local_stack.queue_url("ReminderQueue"), AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert deliveries(local_stack) == []


def test_a_scheduled_event_with_a_naive_time_is_rejected(local_stack: LocalStack) -> None:
    event = load_event("scheduled_plan.json")
    event["time"] = "2026-11-28T02:00:00"
    response = invoke(local_stack, "PlanRemindersFunction", event)
    assert response["status"] == "rejected" and "time" in response["error"]


def test_every_contract_breach_is_recorded_and_the_rest_of_the_run_goes_on(
    local_stack: LocalStack, seed_loans: Callable[..., None], run_hours: RunHours
) -> None:
    seed_loans(*MALFORMED_ITEMS, *EVENT_BOOK)
    first, second = run_hours(local_stack, EVENT_TIME, 1)
    # Recorded when written (LoanChangesFunction, below); never in the ladder index the planner reads, but
    # for the three valid but for their phone (M01-M03): in it flagged unreachable (escalation's case), skipped.
    assert first["invalid"] == {} and first["loans_read"] == len(EVENT_BOOK) + 3
    assert first["waiting"]["unreachable"] == 3
    # The second fire of the hour finds the agenda: nothing it read can have changed yet.
    assert (second["loans_read"], second["invalid"]) == (0, {}) and second["asleep_until"]
    for loan_id, reason in MALFORMED.items():
        (record,) = records_of(local_stack, loan_id)
        assert (record["outcome"], record["reason"], record["cycle"]) == ("SUPPRESSED", reason, "2026-11-24")
        assert "phone" not in record and "body" not in record
    assert sorted(phone for phone, _ in sms_sent(local_stack).values()) == ["+8613900139011", "+8613900139012"]
