"""`make demo`: the real template in moto, a generated loan book, simulated days of schedules.

Every hour the hourly schedule fires: the planning state machine of template.yaml runs in moto
(`dunning_tools.local.schedule.run_schedule`: a Map over the shards, PlanRemindersFunction per shard,
in-process) with that hour as its scheduled time, and the queue is drained through the sender
(under a clock frozen at that hour); once a day the daily state machine runs escalation and the
bureau file the same way.
LoansTable's stream goes to LoanChangesFunction after seeding and each simulated day (the
upstream writes of that day). At the end: a per-day table, two sample messages, totals.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

DEMO_START = dt.datetime(2026, 12, 1, 0, 0, tzinfo=dt.UTC)
# What `make demo` runs: about a minute on 2 cores. Each simulated hour executes the hourly state
# machine, the opt-out sync and a queue drain in moto, so a day costs ~7 s of CPU before the book's
# own work (~0.03 s per loan and day); `--loans 500 --days 40` takes several minutes (README).
DEFAULT_LOANS = 200
DEFAULT_DAYS = 5
# Two shards: the fan-out shows, and a 500-loan book needs no more.
PARAMETERS = {"MaxPartsPerSecond": "1000", "LogLevel": "ERROR", "PlanningShards": "2"}

_ZH_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_ZH_GIVEN = ["伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛"]
_EN_FIRST = ["James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth"]
_EN_LAST = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez"]
_CN_ZONES = ["Asia/Shanghai", "Asia/Shanghai", "Asia/Urumqi"]
_US_ZONES = [("America/New_York", "212"), ("America/Chicago", "312"), ("America/Los_Angeles", "415")]


@dataclass
class Book:
    items: list[dict[str, Any]]
    payments: dict[int, list[str]]  # simulated day -> loan ids paid that day
    malformed: int


def generate_book(size: int, seed: int, start: dt.date) -> Book:
    """Both locales, several zones, ~15 % of borrowers with two loans, some paid mid-run, a few broken."""
    rng = random.Random(seed)  # demo data, not security
    items: list[dict[str, Any]] = []
    payments: dict[int, list[str]] = defaultdict(list)
    borrower_no = 0
    while len(items) < size:
        borrower_no += 1
        chinese = rng.random() < 0.6
        if chinese:
            name = rng.choice(_ZH_SURNAMES) + rng.choice(_ZH_GIVEN)
            phone = f"+86138{rng.randrange(10**8):08d}"
            zone, currency, locale = rng.choice(_CN_ZONES), "CNY", "zh-CN"
            amount = Decimal(rng.randrange(50_000, 5_000_000)) / 100
        else:
            name = f"{rng.choice(_EN_FIRST)} {rng.choice(_EN_LAST)}"
            zone, area = rng.choice(_US_ZONES)
            phone = f"+1{area}{rng.randrange(2, 10)}{rng.randrange(10**6):06d}"
            currency, locale = "USD", "en-US"
            amount = Decimal(rng.randrange(10_000, 500_000)) / 100
        for _ in range(2 if rng.random() < 0.15 else 1):
            loan_id = f"LN{len(items) + 1:06d}"
            due = start + dt.timedelta(days=rng.randrange(-26, 30))
            item: dict[str, Any] = {
                "loan_id": loan_id,
                "borrower_id": f"BR{borrower_no:06d}",
                "borrower_name": name,
                "phone": phone,
                "status": "OPEN",
                "due_date": due.isoformat(),
                "amount_due": amount,
                "currency": currency,
                "locale": locale,
                "timezone": zone,
            }
            if rng.random() < 0.2:
                item["late_fees"] = (amount * Decimal("0.01")).quantize(Decimal("0.01"))
            items.append(item)
            if rng.random() < 0.15:
                payments[rng.randrange(1, 40)].append(loan_id)
    broken: list[dict[str, Any]] = [
        {"phone": "12345"},
        {"phone": "8613800138000"},
        {"amount_due": "abc"},
        {"currency": "XYZ"},
        {"timezone": "Mars/Olympus_Mons"},
        {"phone": None},
    ]
    for n, change in enumerate(broken):
        broken_item: dict[str, Any] = dict(items[n])
        broken_item["loan_id"] = f"BAD{n + 1:03d}"
        broken_item["due_date"] = (start - dt.timedelta(days=2)).isoformat()
        broken_item.update(change)
        items.append({k: v for k, v in broken_item.items() if v is not None})
    return Book(items, dict(payments), len(broken))


def run_demo(loans: int = DEFAULT_LOANS, days: int = DEFAULT_DAYS, seed: int = 7) -> int:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "demo")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "demo")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    import boto3
    import moto
    import time_machine
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from dunning.dal.aws import from_item, reset_clients, to_item
    from dunning_tools.local import (
        EXECUTE_STATE_MACHINES,
        deploy_stack,
        drain_queue,
        drain_stream,
        invoke,
        moto_fastpath,
    )
    from dunning_tools.local.schedule import run_schedule

    console = Console(width=max(Console().width, 150))
    started = time.monotonic()
    # Some 40,000 DynamoDB calls: moto's generic serialiser would be most of the run time.
    with moto.mock_aws(config=EXECUTE_STATE_MACHINES), moto_fastpath.installed():
        reset_clients()
        stack = deploy_stack("template.yaml", PARAMETERS, stack_name="dunning-demo")
        dynamodb = boto3.client("dynamodb")
        book = generate_book(loans, seed, DEMO_START.date())
        loans_table = stack.outputs["LoansTableName"]
        with time_machine.travel(DEMO_START, tick=False), contextlib.redirect_stdout(io.StringIO()):
            for item in book.items:
                dynamodb.put_item(TableName=loans_table, Item=to_item(item))
            # Upstream's writes reach LoanChangesFunction through the table's stream: broken items are recorded now.
            _drain_changes(stack, drain_stream)
        console.print(
            f"[bold]dunning demo[/]: stack deployed into moto from template.yaml; "
            f"{len(book.items)} loans seeded ({book.malformed} malformed); simulating {days} days hourly"
        )
        cases_queue = _capture_cases(stack)
        rng = random.Random(seed + 1)  # which SMS the "carrier" fails to deliver
        delivered = len(_sms_messages())
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("simulating", total=days * 24)
            for hour in range(days * 24):
                now = DEMO_START + dt.timedelta(hours=hour)
                # The functions' EMF metrics go to stdout in Lambda; here the demo prints tables instead.
                with time_machine.travel(now, tick=False), contextlib.redirect_stdout(io.StringIO()):
                    if hour % 24 == 0:
                        for loan_id in book.payments.get(hour // 24, []):
                            dynamodb.update_item(
                                TableName=loans_table,
                                Key={"loan_id": {"S": loan_id}},
                                UpdateExpression="SET #s = :paid",
                                ExpressionAttributeNames={"#s": "status"},
                                ExpressionAttributeValues={":paid": {"S": "PAID"}},
                            )
                        _drain_changes(stack, drain_stream)
                    if "SyncOptOutsFunction" in stack.logical_ids("AWS::Lambda::Function"):
                        # Its own hourly schedule: SNS's opt-out list copied for the senders' checks.
                        invoke(stack, "SyncOptOutsFunction", _opt_out_sync_event(stack.region, now))
                    # The hourly schedule: template.yaml's PlanningStateMachine, executed by moto.
                    run_schedule(stack, "plan", now)
                    drain_queue(stack)
                    sent = list(_sms_messages())[delivered:]
                    delivered += len(sent)
                    if sent and "RecordDeliveryFunction" in stack.logical_ids("AWS::Lambda::Function"):
                        _deliver(stack, invoke, sent, now, rng)
                    if hour % 24 == 6:
                        run_schedule(stack, "daily", now)
                progress.update(task, advance=1, description=f"{now:%Y-%m-%d %H}:00Z, {delivered} SMS sent")
        records = [
            from_item(raw)
            for page in dynamodb.get_paginator("scan").paginate(TableName=stack.outputs["DeliveriesTableName"])
            for raw in page["Items"]
        ]
        sms_count = len(_sms_messages())
        cases = _drain_cases(cases_queue)
        bureau = _bureau_files(stack)
    elapsed = time.monotonic() - started
    _print_report(console, Table, records, sms_count, days, elapsed)
    intake = Counter(str(r.get("reason")) for r in records if r.get("stage") == "intake")
    console.print(
        f"Invalid loan items recorded at intake (LoanChangesFunction, from LoansTable's stream): {sum(intake.values())}"
        + (f", by reason: {dict(intake)}" if intake else "")
    )
    console.print(
        f"Collection cases opened (CollectionCaseOpened events on LoanEventsBus): {len(cases)}"
        + (f", by reason: {dict(Counter(c['reason'] for c in cases))}" if cases else "")
    )
    if bureau:
        last_key, last_lines = bureau[-1]
        console.print(
            f"Credit-bureau files written: {len(bureau)} (bureau/<date>/delinquencies.jsonl); "
            f"the last, {last_key}, lists {last_lines} loan(s)"
        )
    return 0


def _opt_out_sync_event(region: str, at: dt.datetime) -> dict[str, Any]:
    """The Scheduler's event for SyncOptOutsFunction's hourly schedule at `at`."""
    return {
        "version": "0",
        "id": f"demo-opt-out-sync-{at:%Y%m%d%H}",
        "detail-type": "Scheduled Event",
        "source": "aws.scheduler",
        "account": "123456789012",
        "time": at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:scheduler:{region}:123456789012:schedule/default/SyncOptOutsFunctionHourly"],
        "detail": {},
    }


def _drain_changes(stack: Any, drain_stream: Any) -> None:
    """LoansTable's new stream records through LoanChangesFunction, when the template maps one."""
    if any(m.function_logical_id == "LoanChangesFunction" for m in stack.stream_mappings.values()):
        drain_stream(stack, "LoanChangesFunction")


def _deliver(stack: Any, invoke: Any, message_ids: list[str], now: dt.datetime, rng: random.Random) -> None:
    """SNS delivery-status logs for the SMS just sent: most delivered, ~4 % failed by the carrier."""
    from dunning_tools.local.sample_events import FAILURE_GROUP, SUCCESS_GROUP, cloudwatch_logs_event, sms_delivery_log

    outcomes: dict[bool, list[str]] = {True: [], False: []}
    for message_id in message_ids:
        success = rng.random() >= 0.04
        outcomes[success].append(sms_delivery_log(message_id, success=success, at=now + dt.timedelta(seconds=5)))
    for success, logs in outcomes.items():
        if logs:
            group = SUCCESS_GROUP if success else FAILURE_GROUP
            invoke(stack, "RecordDeliveryFunction", cloudwatch_logs_event(group, logs, at=now))


def _capture_cases(stack: Any) -> str:
    """An EventBridge rule on LoanEventsBus -> SQS, as a collections team's system would subscribe."""
    import boto3

    events, sqs = boto3.client("events"), boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="demo-collection-cases")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = stack.outputs["LoanEventsBusName"]
    events.put_rule(
        Name="demo-cases", EventBusName=bus, EventPattern=json.dumps({"detail-type": ["CollectionCaseOpened"]})
    )
    events.put_targets(Rule="demo-cases", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
    return str(queue_url)


def _drain_cases(queue_url: str) -> list[dict[str, Any]]:
    import boto3

    sqs = boto3.client("sqs")
    cases: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return cases
        for message in messages:
            cases.append(json.loads(message["Body"])["detail"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def _bureau_files(stack: Any) -> list[tuple[str, int]]:
    import boto3

    s3 = boto3.client("s3")
    bucket = stack.outputs["ReportsBucketName"]
    keys = sorted(
        obj["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="bureau/")
        for obj in page.get("Contents", [])
        if obj["Key"].endswith("delinquencies.jsonl")
    )
    files = []
    for key in keys:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
        files.append((key, len([line for line in body.splitlines() if line.strip()])))
    return files


def _sms_messages() -> dict[str, Any]:
    from moto.core import DEFAULT_ACCOUNT_ID  # type: ignore[attr-defined]
    from moto.sns import sns_backends  # type: ignore[attr-defined]

    return dict(sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sms_messages)


def _print_report(
    console: Any, table_cls: Any, records: list[dict[str, Any]], sms: int, days: int, elapsed: float
) -> None:
    by_day: dict[dt.date, Counter[str]] = defaultdict(Counter)
    suppressed_by_day: dict[dt.date, Counter[str]] = defaultdict(Counter)
    outcomes: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for record in records:
        day = (
            dt.datetime.fromisoformat(str(record["created_at"]).replace("Z", "+00:00"))
            .astimezone(ZoneInfo("Asia/Shanghai"))
            .date()
        )
        outcome = str(record["outcome"])
        outcomes[outcome] += 1
        if outcome in ("SENT", "DELIVERED", "FAILED", "UNCERTAIN"):
            stage = str(record["stage"])
            by_day[day]["follow_up" if stage.startswith("follow_up") else stage] += 1
        elif outcome == "SUPPRESSED":
            suppressed_by_day[day][str(record.get("reason"))] += 1
            reasons[str(record.get("reason"))] += 1

    columns = ["courtesy", "due_today", "overdue_notice", "follow_up"]
    table = table_cls(title="SMS per day (Asia/Shanghai calendar) by stage, and suppressions by reason")
    table.add_column("day")
    for column in columns:
        table.add_column(column, justify="right")
    table.add_column("suppressed (reason: count)")
    for day in sorted(set(by_day) | set(suppressed_by_day)):
        row = [day.isoformat()] + [str(by_day[day][c] or "") for c in columns]
        row.append(", ".join(f"{r}: {n}" for r, n in suppressed_by_day[day].most_common()))
        table.add_row(*row)
    console.print(table)

    for locale in ("zh-CN", "en-US"):
        sample = next(
            (r for r in records if r.get("locale") == locale and r.get("body") and r["outcome"] != "SUPPRESSED"), None
        )
        if sample:
            heading = f"{sample['stage']}, {sample['encoding']}, {sample['segments']} segment(s)"
            console.print(f"\n[bold]Sample {locale}[/] ({heading}):")
            console.print(f"  {sample['body']}", markup=False)
    console.print(
        f"\n[bold]Totals[/] over {days} days: {sms} SMS published; records by outcome: "
        + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
        + "\nSuppressed by reason: "
        + ", ".join(f"{k} {v}" for k, v in reasons.most_common())
        + f"\nRun time {elapsed:.1f} s"
    )
