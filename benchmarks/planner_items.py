"""DynamoDB items one planning run reads, per overdue loan (issue 11: the planner's share of the 1.5 budget).

A 3,000-loan book with 150 loans overdue (due 1 to 29 days ago) and the rest due over the next 60
days, deployed into moto from template.yaml, its stream drained into the ladder index; then one
unsharded planning run at 10:00 in Shanghai, every item DynamoDB returns to it counted through a
botocore `after-call` hook on the functions' own client (Query Items, BatchGetItem Responses,
GetItem Item). Run: `PYTHONPATH=.:shared:tools .venv/bin/python benchmarks/planner_items.py`.
"""

from __future__ import annotations

import datetime as dt
import os
import random
from collections import Counter
from decimal import Decimal
from typing import Any

NOW = dt.datetime(2026, 11, 20, 2, 0, tzinfo=dt.UTC)
TODAY = dt.date(2026, 11, 20)


def book(size: int = 3000, overdue: int = 150, seed: int = 11) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    items = []
    for n in range(size):
        days = -rng.randrange(1, 30) if n < overdue else rng.randrange(0, 60)
        chinese = n % 3 != 0
        items.append(
            {
                "loan_id": f"LN{n:06d}",
                "borrower_id": f"BR{n // 2 if n % 7 == 0 else n:06d}",
                "borrower_name": "王小明" if chinese else "Jane Roe",
                "phone": f"+86138{n:08d}" if chinese else f"+1212555{n % 10000:04d}",
                "status": "OPEN",
                "due_date": (TODAY + dt.timedelta(days=days)).isoformat(),
                "amount_due": Decimal("1234.50"),
                "currency": "CNY" if chinese else "USD",
                "timezone": "Asia/Shanghai" if chinese else "America/New_York",
            }
        )
    return items


def main() -> None:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    import boto3
    import time_machine
    from moto import mock_aws

    from dunning import ladder
    from dunning.dal import aws
    from dunning.models.policy import load_policy_file
    from dunning_tools.local import deploy_stack, drain_stream, invoke
    from tests.conftest import scheduled_event

    loans = book()
    earliest, latest = ladder.due_date_window(TODAY, load_policy_file())
    window = sum(1 for item in loans if earliest.isoformat() <= item["due_date"] <= latest.isoformat())
    overdue = sum(1 for item in loans if item["due_date"] < TODAY.isoformat())
    with mock_aws():
        stack = deploy_stack(parameters={"MaxPartsPerSecond": "1000"})
        table = boto3.resource("dynamodb").Table(stack.physical_id("LoansTable"))
        with table.batch_writer() as batch:
            for item in loans:
                batch.put_item(Item=item)
        drain_stream(stack)
        items: Counter[str] = Counter()
        calls: Counter[str] = Counter()

        def count(parsed: dict[str, Any], model: Any, **_: Any) -> None:
            calls[model.name] += 1
            items[model.name] += len(parsed.get("Items", []))
            items[model.name] += sum(len(v) for v in parsed.get("Responses", {}).values())
            items[model.name] += 1 if "Item" in parsed else 0

        def count_sqs(model: Any, **_: Any) -> None:
            calls[f"sqs.{model.name}"] += 1

        events, sqs_events = aws.client("dynamodb").meta.events, aws.client("sqs").meta.events
        events.register("after-call.dynamodb", count, unique_id="count-items")
        sqs_events.register("after-call.sqs", count_sqs, unique_id="count-sqs")
        with time_machine.travel(NOW, tick=False):
            report = invoke(stack, "PlanRemindersFunction", scheduled_event(NOW))
        events.unregister("after-call.dynamodb", unique_id="count-items")
        sqs_events.unregister("after-call.sqs", unique_id="count-sqs")
    total = sum(items.values())
    print(f"book {len(loans)} loans, {overdue} overdue, {window} in the ladder window (due {earliest}..{latest})")
    print(f"planning run: {report['loans_read']} index items read, {report['lines_enqueued']} stages planned")
    print(f"DynamoDB items read: {dict(items)} = {total}; calls: {dict(calls)}")
    print(f"items read per overdue loan: {total / overdue:.2f}; per window loan: {total / window:.2f}")
    print(f"planner AWS calls per stage planned: {sum(calls.values()) / max(report['lines_enqueued'], 1):.2f}")


if __name__ == "__main__":
    main()
