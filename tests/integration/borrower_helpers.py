"""Helpers for the borrower-event tests: loans in the stack's table, events from events/, SMS sent in moto."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import time_machine
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns import sns_backends

from dunning_tools.local import LocalStack, drain_queue, drain_stream, invoke

EVENTS = Path(__file__).resolve().parents[2] / "events"
SHANGHAI = ZoneInfo("Asia/Shanghai")
LOAN_ID = "L-20261101-0001"  # the loan the events/ samples are about
PHONE = "+8613800138000"


def event(name: str, **detail: Any) -> dict[str, Any]:
    """An events/ sample, with detail attributes overridden."""
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    loaded["detail"] = {**loaded.get("detail", {}), **detail}
    return loaded


def sns_event(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return loaded


def local(day: int, hour: int = 10, minute: int = 0) -> dt.datetime:
    """A moment in Shanghai in November 2026 (inside the send window at 10:00)."""
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=SHANGHAI)


def put_loan(stack: LocalStack, **overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "loan_id": LOAN_ID,
        "borrower_id": "B-0001",
        "borrower_name": "王小明",
        "phone": PHONE,
        "status": "OPEN",
        "due_date": "2026-11-16",
        "amount_due": "3000.00",
        "currency": "CNY",
        **overrides,
    }
    serialized = {
        k: {"N": str(v)} if k in ("amount_due", "late_fees") else {"S": str(v)}
        for k, v in item.items()
        if v is not None
    }
    boto3.client("dynamodb").put_item(TableName=stack.physical_id("LoansTable"), Item=serialized)
    drain_stream(stack)  # the ladder index is kept from LoansTable's stream
    return item


def send_event(stack: LocalStack, loan_event: dict[str, Any], at: dt.datetime) -> Any:
    with time_machine.travel(at, tick=False):
        return invoke(stack, "LoanEventsFunction", loan_event)


def send_reply(stack: LocalStack, sns: dict[str, Any], at: dt.datetime) -> Any:
    with time_machine.travel(at, tick=False):
        return invoke(stack, "InboundSmsFunction", sns)


def plan_and_send(stack: LocalStack, at: dt.datetime) -> dict[str, Any]:
    """One planner run at `at` (the scheduled event's time), then the queue drained at the same instant.

    The planner's report, with `suppressed` counting what the hour suppressed, by reason, whoever did:
    the planner (holds, pauses) or the sender (opt-outs: the planner never reads the opt-out lists).
    """
    before = {(r["loan_id"], r["record_id"]) for r in records(stack)}
    report = invoke_planner_only(stack, at)
    with time_machine.travel(at, tick=False):
        drain_queue(stack)
    new = [r for r in records(stack) if (r["loan_id"], r["record_id"]) not in before]
    report["suppressed"] = dict(
        Counter(
            str(r["reason"])
            for r in new
            if r["outcome"] == "SUPPRESSED" and r["stage"] not in ("intake", "planning", "payment_confirmation")
        )
    )
    return report


def sms_sent(phone: str | None = None) -> list[str]:
    """Bodies of every SMS moto accepted, oldest first (optionally to one number)."""
    messages = sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sms_messages.values()
    return [body for to, body in messages if phone is None or to == phone]


def table_items(stack: LocalStack, logical_id: str) -> list[dict[str, Any]]:
    return boto3.client("dynamodb").scan(TableName=stack.physical_id(logical_id))["Items"]


def is_planner_poke(item: dict[str, Any]) -> bool:
    """A `PLANNER / POKE...` item: a loan written already due wakes its shard (LoanChangesFunction), as events do."""
    return item["pk"]["S"] == "PLANNER" and item["sk"]["S"].startswith("POKE")


def product_state(stack: LocalStack) -> list[dict[str, Any]]:
    """StateTable's items but what the ladder index copies from LoansTable: a CONTROL item holding only
    upstream's values and index attributes (loan_changes.index_values) is not the product's state, nor is
    a planner poke (a shard reads again; it decides from the same items)."""
    from dunning.dal.ladder import LEAVING

    index_only = {"pk", "sk", "loan_id", "upstream_seq", *LEAVING}
    return [
        item
        for item in table_items(stack, "StateTable")
        if not (item["sk"]["S"] == "CONTROL" and set(item) <= index_only) and not is_planner_poke(item)
    ]


def records(stack: LocalStack, stage: str | None = None) -> list[dict[str, Any]]:
    items = [{k: next(iter(v.values())) for k, v in i.items()} for i in table_items(stack, "DeliveriesTable")]
    return sorted((i for i in items if stage is None or i["stage"] == stage), key=lambda i: i["record_id"])


def invoke_planner_only(stack: LocalStack, at: dt.datetime) -> dict[str, Any]:
    """The planner run alone: its jobs stay on the queue."""
    scheduled = {
        "version": "0",
        "id": f"plan-{at.isoformat()}",
        "detail-type": "Scheduled Event",
        "source": "aws.scheduler",
        "account": "123456789012",
        "time": at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": [],
        "detail": {},
    }
    with time_machine.travel(at, tick=False):
        report: dict[str, Any] = invoke(stack, "PlanRemindersFunction", scheduled)
    return report
