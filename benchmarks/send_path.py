"""`make bench`: what the send path costs in AWS calls and DynamoDB items read (issue 11, deliverable 3).

Deploys template.yaml into in-process moto, seeds a seeded 3,000-loan book (150 overdue loans,
the rest due later than the ladder's courtesy window), runs one planning run, drains the queue
through SendRemindersFunction and feeds SNS delivery-status logs (as `make demo` does) to
RecordDeliveryFunction. Every call the functions make goes through the cached boto3 clients of
`dunning.dal.aws`; a botocore `before-call` handler counts `service.Operation` per function and an
`after-call` handler counts the DynamoDB items each read returned (GetItem, BatchGetItem, Query,
Scan). Prints calls per SMS and items read per overdue loan, split by function.

What the send path reads: the planner its ladder index items (one per loan in the ladder window);
the sender nothing in the usual case (the planner's job carries the loan, contact details included,
re-checked by ConditionChecks inside its claim transaction: those are not reads); delivery status
nothing (the UpdateItem that notes a message's outcome on its `MSG#` pointer returns the pointer:
a write's answer, billed as a write, one call per SMS). Not metered: LoansTable's stream
(LoanChangesFunction follows upstream's writes, not the SMS sent).

    PYTHONPATH=.:shared:tools .venv/bin/python benchmarks/send_path.py [--loans 3000] [--overdue 150] [--seed 11]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import os
import random
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "shared"), str(ROOT / "tools")]

# 12:00 in Shanghai, 10:00 in Urumqi: every borrower of the book is inside the send window.
PLAN_AT = dt.datetime(2026, 11, 28, 4, 0, tzinfo=dt.UTC)
# The book was written this long before planning, when none of it was due (its oldest due date is 29 days back).
BOOKED_BEFORE = dt.timedelta(days=60)
PARAMETERS = {"MaxPartsPerSecond": "1000", "LogLevel": "ERROR"}
READS = ("GetItem", "BatchGetItem", "Query", "Scan")
FUNCTIONS = ("PlanRemindersFunction", "SendRemindersFunction", "RecordDeliveryFunction")
SERVICES = ("dynamodb", "sns", "sqs", "kms", "ssm", "events", "s3")
_ZH = "王李张刘陈杨黄赵吴周"
_EN = ["James Smith", "Mary Jones", "Wei Chen", "Linda Brown", "David Garcia"]


def generate_book(loans: int, overdue: int, seed: int, today: dt.date) -> list[dict[str, Any]]:
    """`loans` open loans, `overdue` of them 1..29 days past due; ~15 % of borrowers hold two loans.

    A borrower's loans are all overdue or all not yet due. One overdue borrower in 25 has a number
    SNS reports opted out (moto: numbers ending in 99), so some reminders end SUPPRESSED.
    """
    rng = random.Random(seed)  # benchmark data, not security
    items: list[dict[str, Any]] = []
    borrower = 0
    while len(items) < loans:
        borrower += 1
        late = sum(1 for i in items if i["due_date"] < today.isoformat()) < overdue
        count = 2 if rng.random() < 0.15 else 1
        if late:
            count = min(count, overdue - sum(1 for i in items if i["due_date"] < today.isoformat()))
        count = min(count, loans - len(items))
        chinese = rng.random() < 0.7
        suffix = 99 if late and borrower % 25 == 0 else rng.randrange(99)
        phone = f"+86139{borrower:06d}{suffix:02d}"
        for _ in range(count):
            due = (
                today - dt.timedelta(days=rng.randrange(1, 30))
                if late
                else today + dt.timedelta(days=rng.randrange(4, 90))
            )
            item: dict[str, Any] = {
                "loan_id": f"LN{len(items) + 1:06d}",
                "borrower_id": f"BR{borrower:06d}",
                "borrower_name": rng.choice(_ZH) + "先生" if chinese else rng.choice(_EN),
                "phone": phone,
                "status": "OPEN",
                "due_date": due.isoformat(),
                "amount_due": Decimal(rng.randrange(50_000, 5_000_000)) / 100,
                "currency": "CNY",
                "locale": "zh-CN" if chinese else "en-US",
                "timezone": rng.choice(["Asia/Shanghai", "Asia/Shanghai", "Asia/Urumqi"]),
            }
            if rng.random() < 0.2:
                item["late_fees"] = (item["amount_due"] * Decimal("0.01")).quantize(Decimal("0.01"))
            items.append(item)
    return items


@dataclass
class Meter:
    """Calls per (function, service.Operation) and DynamoDB items read per function."""

    names: dict[str, str]  # physical function name -> logical id
    calls: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    items_read: Counter[str] = field(default_factory=Counter)

    def _function(self) -> str:
        return self.names.get(os.environ.get("AWS_LAMBDA_FUNCTION_NAME", ""), "outside a function")

    def before_call(self, model: Any, **_: Any) -> None:
        self.calls[self._function()][f"{model.service_model.service_name}.{model.name}"] += 1

    def after_call(self, parsed: Any, model: Any, **_: Any) -> None:
        if model.service_model.service_name != "dynamodb" or model.name not in READS:
            return
        if model.name == "GetItem":
            count = 1 if "Item" in parsed else 0
        elif model.name == "BatchGetItem":
            count = sum(len(items) for items in parsed.get("Responses", {}).values())
        else:
            count = len(parsed.get("Items", []))
        self.items_read[self._function()] += count


@contextlib.contextmanager
def metered(meter: Meter) -> Iterator[None]:
    """The hooks on every client `dunning.dal.aws.client` builds (checked: none is left unmetered)."""
    from dunning.dal import aws

    clients = [aws.client(service) for service in SERVICES] + [aws.client("sns", aws.NO_RETRY)]
    for client in clients:
        client.meta.events.register("before-call", meter.before_call, unique_id="bench-before")
        client.meta.events.register("after-call", meter.after_call, unique_id="bench-after")
    try:
        yield
    finally:
        for client in clients:
            client.meta.events.unregister("before-call", unique_id="bench-before")
            client.meta.events.unregister("after-call", unique_id="bench-after")
        built = aws._client.cache_info().currsize
        if built != len(clients):
            raise RuntimeError(f"{built - len(clients)} boto3 client(s) were built outside the meter: extend SERVICES")


def run(loans: int, overdue: int, seed: int) -> dict[str, Any]:
    # moto's fake credentials: nothing here reaches AWS.
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")  # noqa: S106
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    import boto3
    import moto
    import time_machine
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sns import sns_backends

    from dunning.dal.aws import reset_clients, to_item
    from dunning_tools.local import deploy_stack, drain_queue, drain_stream, invoke, moto_fastpath
    from dunning_tools.local.demo import _deliver
    from dunning_tools.local.schedule import scheduler_event

    def scheduled_event(at: dt.datetime) -> dict[str, Any]:
        return scheduler_event(stack, "PlanningStateMachine", at)  # what the hourly schedule sends

    os.chdir(ROOT)
    # The fast path changes how long moto takes to answer, never which calls are made or what they
    # return (tests/integration/test_moto_fastpath.py): on stock moto this book takes over 10 minutes.
    with moto.mock_aws(), moto_fastpath.installed():
        reset_clients()
        stack = deploy_stack("template.yaml", PARAMETERS, stack_name="dunning-bench")
        book = generate_book(loans, overdue, seed, PLAN_AT.date())
        table = stack.physical_id("LoansTable")
        dynamodb = boto3.client("dynamodb")
        # Written as upstream books loans, before any of them is due (the stream stamps each write with the clock):
        # a book in its steady state. Inserted already overdue (a migration), each of the 64 planner shards
        # with such a loan would be poked, and the planning run would read one more item per woken shard.
        with time_machine.travel(PLAN_AT - BOOKED_BEFORE, tick=False):
            for start in range(0, len(book), 25):
                dynamodb.batch_write_item(
                    RequestItems={table: [{"PutRequest": {"Item": to_item(i)}} for i in book[start : start + 25]]}
                )
        # Upstream's writes reach the ladder index through LoansTable's stream (not metered: not per SMS).
        with (
            time_machine.travel(PLAN_AT - dt.timedelta(hours=1), tick=False),
            contextlib.redirect_stdout(io.StringIO()),
        ):
            drain_stream(stack, "LoanChangesFunction")
        # SNS's own opt-out list, as ListPhoneNumbersOptedOut reports it (moto starts with a few numbers).
        sms = sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
        sms.opt_out_numbers.extend(sorted({str(i["phone"]) for i in book if str(i["phone"]).endswith("99")}))
        meter = Meter({stack.physical_id(f): f for f in FUNCTIONS if f in stack.logical_ids("AWS::Lambda::Function")})
        for function in ("SyncOptOutsFunction",):
            if function in stack.logical_ids("AWS::Lambda::Function"):
                meter.names[stack.physical_id(function)] = function
        before = len(sms.sms_messages)
        with (
            time_machine.travel(PLAN_AT, tick=False),
            contextlib.redirect_stdout(io.StringIO()),
            metered(meter),
        ):
            if "SyncOptOutsFunction" in meter.names.values():
                invoke(stack, "SyncOptOutsFunction", scheduled_event(PLAN_AT - dt.timedelta(minutes=30)))
            plan = invoke(stack, "PlanRemindersFunction", scheduled_event(PLAN_AT))
            drain_queue(stack)
            sent = list(sms.sms_messages)[before:]
            _deliver(stack, invoke, sent, PLAN_AT, random.Random(seed))
        records = Counter(
            str(item["outcome"]["S"])
            for page in dynamodb.get_paginator("scan").paginate(TableName=stack.physical_id("DeliveriesTable"))
            for item in page["Items"]
        )
    return {"plan": plan, "sms": len(sent), "overdue": overdue, "meter": meter, "records": records}


def table(result: dict[str, Any]) -> str:
    meter: Meter = result["meter"]
    sms, overdue = result["sms"], result["overdue"]
    rows = [("function", "AWS calls", "calls/SMS", "items read", "items/overdue loan")]

    def row(name: str, calls: int, items: int) -> tuple[str, str, str, str, str]:
        return (name, str(calls), f"{calls / sms:.2f}", str(items), f"{items / overdue:.2f}")

    total_calls = total_items = 0
    for function in FUNCTIONS:
        calls, items = sum(meter.calls[function].values()), meter.items_read[function]
        total_calls += calls
        total_items += items
        rows.append(row(function, calls, items))
    rows.append(row("send path (planner + sender + delivery status)", total_calls, total_items))
    sync = "SyncOptOutsFunction"
    if sync in meter.calls:
        # Hourly, whatever the volume: its cost follows the size of SNS's list, not the SMS sent.
        rows.append(row(f"{sync} (one hourly run)", sum(meter.calls[sync].values()), meter.items_read[sync]))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [
        "| "
        + " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        + " |"
        for r in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 1) + ("-" if i == 0 else ":") for i, w in enumerate(widths)) + "|")
    detail = []
    for function in meter.calls:
        ops = ", ".join(f"{op} {n}" for op, n in meter.calls[function].most_common())
        detail.append(f"  {function}: {ops}")
    head = (
        f"send path on a {result['loans']:,}-loan book, {overdue} overdue: one planning run, the queue drained, "
        f"delivery logs applied; {sms} SMS published; records {dict(sorted(result['records'].items()))}"
    )
    return "\n".join([head, *lines, "calls by operation:", *detail])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loans", type=int, default=3000)
    parser.add_argument("--overdue", type=int, default=150)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    result = run(args.loans, args.overdue, args.seed)
    result["loans"] = args.loans
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
