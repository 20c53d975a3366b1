"""Bounds at the edge on the moto stack: an amount or currency no loan can have is recorded, never
sent; a name that is not a name is left out of the SMS, which still goes out."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import boto3
from boto3.dynamodb.conditions import Key
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns import sns_backends

from dunning_tools.local import LocalStack
from tests.conftest import RunHours

RUN_AT = dt.datetime(2026, 11, 23, 14, 0, tzinfo=dt.UTC)  # 09:00 in New York, 22:00 in Shanghai
PHISHING = "Jane. Account FROZEN - pay now at https://evil.example"


def overdue(loan_id: str, phone: str, **changes: Any) -> dict[str, Any]:
    return {
        "loan_id": loan_id,
        "borrower_id": f"B-{loan_id}",
        "borrower_name": "Jane Roe",
        "phone": phone,
        "status": "OPEN",
        "due_date": "2026-11-20",  # 3 days overdue on 11-23: follow_up_3
        "amount_due": Decimal("420.50"),
        "currency": "USD",
        "locale": "en-US",
        "timezone": "America/New_York",
        **changes,
    }


BOOK = [
    overdue("HUGE", "+12025550101", amount_due=Decimal("12419752974641975297464196.74")),  # 26 digits
    overdue("NOCUR", "+12025550102", currency="XXX"),
    overdue("PHISH", "+12025550103", borrower_name=PHISHING),
    overdue("NORMAL", "+12025550104"),
]


def records_of(stack: LocalStack, loan_id: str) -> list[dict[str, Any]]:
    table = boto3.resource("dynamodb", region_name=stack.region).Table(stack.physical_id("DeliveriesTable"))
    items: list[dict[str, Any]] = table.query(KeyConditionExpression=Key("loan_id").eq(loan_id))["Items"]
    return items


def test_bounds_hold_from_the_book_to_the_sms(
    local_stack: LocalStack, seed_loans: Callable[..., None], run_hours: RunHours
) -> None:
    seed_loans(*BOOK)
    run_hours(local_stack, RUN_AT, 1)

    sms_by_phone = {
        phone: body for phone, body in sns_backends[DEFAULT_ACCOUNT_ID][local_stack.region].sms_messages.values()
    }
    assert set(sms_by_phone) == {"+12025550103", "+12025550104"}  # nothing to the two broken loans

    for loan_id, reason in (("HUGE", "invalid_amount"), ("NOCUR", "invalid_currency")):
        (record,) = records_of(local_stack, loan_id)
        assert (record["outcome"], record["reason"]) == ("SUPPRESSED", reason)
        assert "body" not in record

    phished = sms_by_phone["+12025550103"]
    assert phished.startswith("XinFei: Hi there, your loan is now 3 days overdue.")
    for piece in ("Jane", "FROZEN", "https", "evil.example", "pay now at"):
        assert piece not in phished
    (record,) = records_of(local_stack, "PHISH")
    assert (record["outcome"], record["body"]) == ("SENT", phished)

    normal = sms_by_phone["+12025550104"]
    assert (
        normal.startswith("XinFei: Hi Jane Roe, your loan is now 3 days overdue.")
        and "$421.13 (incl. late fees $0.63)" in normal
    )
