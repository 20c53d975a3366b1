"""Property on the moto stack: one hostile LoansTable item changes no other loan's records or SMS.

A small valid book is planned and sent (planner, then the queue drained through the sender) on a
fresh stack, with and without one hostile item of a borrower of its own; the other loans' delivery
records and the SMS their phones got must be the same. Kept cheap: a few examples, each one stack.
"""

from __future__ import annotations

from decimal import Decimal
from functools import cache
from typing import Any

import boto3
import time_machine
from hypothesis import HealthCheck, assume, given, settings
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns import sns_backends

from dunning.dal.aws import to_item
from dunning_tools.local import deploy_stack, drain_queue, drain_stream, invoke
from tests.conftest import scheduled_event
from tests.integration.after_sms_helpers import records
from tests.strategies import NOW, hostile_items, valid_item

BOOK = [
    valid_item("L-0", 0, 1, Decimal("500.00")),  # overdue notice
    valid_item("L-1", 1, 3, Decimal("1200.50"), late_fees=Decimal("3.10")),  # follow-up: consolidated
    valid_item("L-2", 1, 1, Decimal("80.00"), locale="en-US"),  # with L-1
    valid_item("L-3", 2, -3, Decimal("99.99")),  # courtesy reminder
]
Observed = tuple[tuple[Any, ...], tuple[tuple[str, str], ...]]


def storable(item: dict[str, Any]) -> dict[str, Any] | None:
    """The item as DynamoDB can hold it (floats become N), or None where upstream could not write it."""
    values = {k: Decimal(str(v)) if isinstance(v, float) else v for k, v in item.items()}
    try:
        return to_item(values)
    except (TypeError, ValueError, ArithmeticError):
        return None  # NaN, Infinity, numbers outside DynamoDB's range


def plan_and_send(items: list[dict[str, Any]]) -> Observed:
    """The book's records (without ids and times) and SMS, after one planning hour, on a fresh stack."""
    with mock_aws():
        stack = deploy_stack(parameters={"MaxPartsPerSecond": "1000"})
        table = stack.physical_id("LoansTable")
        for item in items:
            boto3.client("dynamodb").put_item(TableName=table, Item=storable(item))
        drain_stream(stack)  # LoanChangesFunction keeps the ladder index from the stream
        with time_machine.travel(NOW, tick=False):
            report = invoke(stack, "PlanRemindersFunction", scheduled_event(NOW))
            drain_queue(stack)
        assert report["complete"] is True
        seen = tuple(
            sorted(
                (
                    r["loan_id"],
                    r["cycle"],
                    r["stage"],
                    r["outcome"],
                    r.get("reason"),
                    r.get("body"),
                    r.get("amount_due"),
                )
                for loan in BOOK
                for r in records(stack, loan["loan_id"])
            )
        )
        book_phones = {loan["phone"] for loan in BOOK}
        messages = sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sms_messages.values()
        sms = tuple(sorted((to, body) for to, body in messages if to in book_phones))
        return seen, sms


@cache
def without_hostile() -> Observed:
    return plan_and_send(BOOK)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(hostile=hostile_items())
def test_one_hostile_item_changes_no_other_loans_records_or_sms(aws_credentials: None, hostile: dict[str, Any]) -> None:
    assume(storable(hostile) is not None)
    baseline = without_hostile()
    assert len(baseline[1]) == 3  # one SMS per borrower: the book itself is planned and sent

    assert plan_and_send([BOOK[0], hostile, *BOOK[1:]]) == baseline
