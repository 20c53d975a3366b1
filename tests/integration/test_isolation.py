"""One loan never stops a run: planner, escalation and the bureau report on the moto stack (issue 10).

A loan whose handling raises on its own data gets a SUPPRESSED record of the run's stage (`planning`,
`escalation`, `bureau`) with its reason; an item that breaks the contract gets one at `intake` when
upstream writes it and never reaches the ladder index the runs read (issue 11); every other loan is
handled as if it were not there. The issue's own examples (30 digits, `9E+125` on a disputed loan) are checked
for that outcome only: they may be rejected at parse (`invalid_amount`) or set aside (`unprocessable`).
Failures that pass parsing are injected as real dirty data: corrupt items in StateTable, and a
valid-but-large amount under a tight decimal context (as arithmetic on a bigger book would break).
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest
import time_machine
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns import sns_backends

from dunning.dal.aws import from_item, to_item
from dunning.models.delivery import Outcome
from dunning.records import UNPROCESSABLE
from dunning_tools.local import LocalStack, drain_queue, invoke
from tests.conftest import scheduled_event
from tests.integration.after_sms_helpers import put_loan, records, scheduled, state_item

SET_ASIDE = {"invalid_amount", UNPROCESSABLE}
PLAN_AT = dt.datetime(2026, 11, 20, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai
PLAN_DAY = dt.date(2026, 11, 20)
DAILY_AT = dt.datetime(2026, 12, 12, 6, 30, tzinfo=dt.UTC)
DAILY_DAY = dt.date(2026, 12, 12)
# 12 integer digits: a valid amount whatever bounds parsing applies; prec 12 cannot hold it in cents.
LARGE = Decimal("999999999999.00")


@pytest.fixture
def tight_decimals() -> Iterator[None]:
    with decimal.localcontext() as context:
        context.prec = 12
        yield


def put_state(stack: LocalStack, **item: Any) -> None:
    boto3.client("dynamodb").put_item(TableName=stack.physical_id("StateTable"), Item=to_item(item))


def set_aside(stack: LocalStack, loan_id: str, stage: str) -> set[str]:
    """The reasons of the loan's SUPPRESSED records of that stage."""
    return {
        str(r["reason"])
        for r in records(stack, loan_id)
        if r["outcome"] == Outcome.SUPPRESSED.value and r["stage"] == stage
    }


def sms_to(phone: str) -> list[str]:
    messages = sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sms_messages.values()
    return [body for to, body in messages if to == phone]


def loan_item(stack: LocalStack, loan_id: str) -> dict[str, Any]:
    item = boto3.client("dynamodb").get_item(TableName=stack.physical_id("LoansTable"), Key={"loan_id": {"S": loan_id}})
    return {key: value for key, value in from_item(item["Item"]).items()}


def phone(n: int) -> str:
    return f"+86138001380{n:02d}"


# ---------------------------------------------------------------- planner


def test_the_planner_sets_aside_absurd_and_corrupt_loans_and_plans_everyone_else(local_stack: LocalStack) -> None:
    due = PLAN_DAY - dt.timedelta(days=1)  # overdue_notice today
    put_loan(local_stack, "L-OK-1", due, borrower_id="B-1", phone=phone(11))
    put_loan(local_stack, "L-OK-2", due, borrower_id="B-2", phone=phone(12))
    put_loan(local_stack, "L-30", due, borrower_id="B-3", phone=phone(13), amount_due="1" * 30)
    put_state(local_stack, pk="LOAN#L-9E", sk="CONTROL", loan_id="L-9E", dispute_hold=True)
    put_loan(local_stack, "L-9E", due, borrower_id="B-4", phone=phone(14), amount_due="9E+125")
    # Real dirty data in our own table: a CONTROL item no model can read, in the same page as the others
    # (written before the loan: the index item is that CONTROL item, upstream's values added to it).
    put_state(local_stack, pk="LOAN#L-CORRUPT", sk="CONTROL", loan_id="L-CORRUPT", paused_until="banana")
    put_loan(local_stack, "L-CORRUPT", due, borrower_id="B-5", phone=phone(15))

    with time_machine.travel(PLAN_AT, tick=False):
        report = invoke(local_stack, "PlanRemindersFunction", scheduled_event(PLAN_AT))
        drain_queue(local_stack)

    assert report["complete"] is True
    assert set_aside(local_stack, "L-30", "intake") | set_aside(local_stack, "L-30", "planning") & SET_ASIDE
    assert set_aside(local_stack, "L-9E", "intake") | set_aside(local_stack, "L-9E", "planning") & SET_ASIDE
    assert set_aside(local_stack, "L-CORRUPT", "planning") == {UNPROCESSABLE}
    at_intake = sum(1 for loan_id in ("L-30", "L-9E") if set_aside(local_stack, loan_id, "intake"))
    assert report["invalid"].get(UNPROCESSABLE, 0) + report["invalid"].get("invalid_amount", 0) + at_intake == 3
    for loan_id, number in (("L-OK-1", phone(11)), ("L-OK-2", phone(12))):
        assert [r["outcome"] for r in records(local_stack, loan_id)] == [Outcome.SENT.value]
        assert len(sms_to(number)) == 1
    for number in (phone(13), phone(14), phone(15)):
        assert sms_to(number) == []
    # One record per loan and day, however often the hour is fired.
    with time_machine.travel(PLAN_AT, tick=False):
        invoke(local_stack, "PlanRemindersFunction", scheduled_event(PLAN_AT + dt.timedelta(minutes=1)))
    assert len([r for r in records(local_stack, "L-CORRUPT") if r["stage"] == "planning"]) == 1


# ---------------------------------------------------------------- escalation


def test_escalation_sets_aside_what_it_cannot_handle_and_opens_every_other_case(
    local_stack: LocalStack, tight_decimals: None
) -> None:
    past_ladder = DAILY_DAY - dt.timedelta(days=35)
    with decimal.localcontext(decimal.DefaultContext):  # the stream indexes them with the usual precision
        put_loan(local_stack, "L-OK", past_ladder)
        put_loan(local_stack, "L-30", past_ladder, amount_due="1" * 30)
        put_loan(local_stack, "L-LARGE", past_ladder, amount_due=LARGE)  # fees overflow the tight context
        put_state(local_stack, pk="LOAN#L-CONTROL", sk="CONTROL", loan_id="L-CONTROL", plan="not a plan")
        put_loan(local_stack, "L-CONTROL", past_ladder)
        put_loan(local_stack, "L-CASE", past_ladder)
    cycle = past_ladder.isoformat()
    put_state(local_stack, pk="LOAN#L-CASE", sk=f"CASE#{cycle}", loan_id="L-CASE", detail="{not json", published=False)

    report = invoke(local_stack, "EscalateFunction", scheduled("scheduled_escalate.json", DAILY_AT))

    assert report["opened"] == {"ladder_exhausted": 1}
    assert state_item(local_stack, "LOAN#L-OK", f"CASE#{cycle}") is not None
    assert set_aside(local_stack, "L-30", "intake") & SET_ASIDE  # never in the ladder index
    for loan_id in ("L-LARGE", "L-CONTROL", "L-CASE"):
        assert set_aside(local_stack, loan_id, "escalation") == {UNPROCESSABLE}, loan_id
    assert state_item(local_stack, "LOAN#L-LARGE", f"CASE#{cycle}") is None  # nothing half-written


def test_an_invalid_item_is_recorded_when_written_and_escalation_never_reads_it(local_stack: LocalStack) -> None:
    # A bad phone alone makes a loan unreachable (it stays in the index for its case,
    # tests/integration/test_collection_cases.py); with a bad currency too, the item is broken data.
    put_loan(local_stack, "L-NOPHONE", DAILY_DAY - dt.timedelta(days=35), phone="12345", currency="ZZZ")

    report = invoke(local_stack, "EscalateFunction", scheduled("scheduled_escalate.json", DAILY_AT))

    assert report["invalid"] == {} and report["loans_read"] == 0 and report["opened"] == {}
    (record,) = records(local_stack, "L-NOPHONE")
    assert (record["stage"], record["reason"], record["outcome"]) == ("intake", "invalid_phone", "SUPPRESSED")
    assert "phone" not in record and "amount_due" not in record  # ids and cycle only, never the item's values


# ---------------------------------------------------------------- bureau report


def bureau(stack: LocalStack, day: int = 0) -> dict[str, Any]:
    result: dict[str, Any] = invoke(
        stack, "BureauReportFunction", scheduled("scheduled_bureau.json", DAILY_AT + dt.timedelta(days=day))
    )
    return result


def file_lines(stack: LocalStack, day: dt.date) -> list[str]:
    body = boto3.client("s3").get_object(
        Bucket=stack.physical_id("ReportsBucket"), Key=f"bureau/{day}/delinquencies.jsonl"
    )["Body"]
    return [line for line in body.read().decode("utf-8").splitlines() if line]


def test_the_bureau_file_is_written_for_everyone_else(local_stack: LocalStack, tight_decimals: None) -> None:
    past = DAILY_DAY - dt.timedelta(days=40)
    with decimal.localcontext(decimal.DefaultContext):  # the stream indexes them with the usual precision
        put_loan(local_stack, "L-OK", past)
        put_loan(local_stack, "L-30", past, amount_due="1" * 30)
        put_loan(local_stack, "L-LARGE", past, amount_due=LARGE)  # its line cannot be written in the tight context

    manifest = bureau(local_stack)

    assert [line.split(",")[0] for line in file_lines(local_stack, DAILY_DAY)] == ['{"loan_id":"L-OK"']
    assert manifest["delinquent"] == 1
    assert set_aside(local_stack, "L-30", "intake") & SET_ASIDE  # never in the ladder index
    assert set_aside(local_stack, "L-LARGE", "bureau") == {UNPROCESSABLE}
    assert state_item(local_stack, "BUREAU#REPORTED", "LOAN#L-LARGE") is None  # not reported: not in the set


@pytest.mark.parametrize(
    "broken", [{"due_date": "2026/11/16"}, {"status": "open"}, {"amount_due": Decimal("1" * 30)}], ids=repr
)
def test_a_reported_loan_that_turns_invalid_stays_reported_without_a_settled_correction(
    local_stack: LocalStack, broken: dict[str, Any]
) -> None:
    past = DAILY_DAY - dt.timedelta(days=40)
    put_loan(local_stack, "L-R", past)
    put_loan(local_stack, "L-OK", past)
    bureau(local_stack)
    reported = state_item(local_stack, "BUREAU#REPORTED", "LOAN#L-R")
    assert reported is not None

    boto3.client("dynamodb").put_item(  # upstream overwrites the item with a broken one
        TableName=local_stack.physical_id("LoansTable"),
        Item={**to_item(loan_item(local_stack, "L-R")), **to_item(broken)},
    )
    manifest = bureau(local_stack, day=1)

    next_day = DAILY_DAY + dt.timedelta(days=1)
    assert [line.split(",")[0] for line in file_lines(local_stack, next_day)] == ['{"loan_id":"L-OK"']
    assert manifest["settled"] == 0 and manifest["left_without_line"] == {"kept_invalid_item": 1}
    assert state_item(local_stack, "BUREAU#REPORTED", "LOAN#L-R") == reported  # kept as it was
    assert set_aside(local_stack, "L-R", "bureau")  # and visible: a SUPPRESSED record with its reason

    put_loan(local_stack, "L-R", past)  # fixed upstream: reported again, first delinquency kept
    bureau(local_stack, day=2)
    assert state_item(local_stack, "BUREAU#REPORTED", "LOAN#L-R") == reported
    assert len(file_lines(local_stack, DAILY_DAY + dt.timedelta(days=2))) == 2
