"""plan -> send -> record on a deployed stack: a loan one day past due gets its SMS and its record.

Needs AWS_SAM_STACK_NAME (see conftest.py) and DUNNING_E2E_PHONE: a mobile number verified in the
account's SNS SMS sandbox (or one the operator may text), which receives one real SMS per run. The
test writes a loan with a unique id into LoansTable, waits for LoanChangesFunction to index it,
wakes its planner shard, starts PlanningStateMachine with a Scheduler event for now, and polls
DeliveriesTable until SendRemindersFunction has recorded the SMS; then it deletes the loan. Every
wait polls the real service with a deadline.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any, TypeVar

import boto3
import pytest
from boto3.dynamodb.conditions import Key

from dunning import decisions, ladder
from dunning.dal.state import StateRepository
from dunning.models.loan import parse_loan
from dunning.observability import mask_phone
from dunning.sharding import bucket_of
from tests.e2e.stack import DeployedStack

PHONE_ENV = "DUNNING_E2E_PHONE"
POLL_SECONDS = 5.0
INDEX_TIMEOUT_SECONDS = 120.0  # the stream to LoanChangesFunction: seconds, normally
PLANNING_TIMEOUT_SECONDS = 600.0  # every shard of the book, with the state machine's retries
RECORD_TIMEOUT_SECONDS = 300.0  # SQS to SendRemindersFunction, paced by MaxPartsPerSecond
SENT = {"SENT", "DELIVERED"}
T = TypeVar("T")


def poll(what: str, check: Callable[[], T | None], timeout: float, seen: Callable[[], object] = str) -> T:
    """`check()` every POLL_SECONDS until it returns something; after `timeout`, fail naming `what`
    and what was `seen` instead. Polling a real service with a deadline, not timing the code."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found is not None:
            return found
        if time.monotonic() >= deadline:
            pytest.fail(f"no {what} after {timeout:.0f} s {seen()}".rstrip())
        time.sleep(POLL_SECONDS)


@pytest.fixture
def sandbox_phone() -> str:
    phone = os.environ.get(PHONE_ENV, "")
    if not phone:
        pytest.skip(f"set {PHONE_ENV} to a mobile number verified in the account's SNS SMS sandbox")
    return phone


@pytest.fixture
def due_loan(deployed_stack: DeployedStack, sandbox_phone: str) -> Iterator[dict[str, Any]]:
    """A loan one business day past due at `planned_at`, written as upstream writes it; deleted afterwards."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)  # the planning run's clock too: the same business day
    policy = deployed_stack.policy()
    token = uuid.uuid4().hex[:16].upper()
    item: dict[str, Any] = {
        "loan_id": f"E2E-{token}",
        "borrower_id": f"E2E-{token}",  # a borrower of its own: no cap from an earlier run
        "borrower_name": "Test Borrower",
        "phone": sandbox_phone,
        "status": "OPEN",
        "due_date": (ladder.business_date(now, policy) - dt.timedelta(days=1)).isoformat(),
        "amount_due": Decimal("10.00"),
        "currency": "USD",
        "locale": "en-US",
    }
    loan = parse_loan(item)  # a DUNNING_E2E_PHONE that is no mobile number is refused here, saying why
    item["phone"] = loan.phone  # E.164, as the record will hold it
    verdict = decisions.evaluate(loan, None, now, policy, opted_out=False)
    if isinstance(verdict, decisions.Wait) and verdict.why == "outside_window":
        pytest.skip(f"{mask_phone(sandbox_phone)} is outside its send window now; it opens at {verdict.until}")
    assert isinstance(verdict, decisions.Due), f"the stack's policy sends nothing 1 day past due: {verdict}"
    table = boto3.resource("dynamodb", region_name=deployed_stack.region).Table(deployed_stack.output("LoansTableName"))
    table.put_item(Item=item)
    try:
        yield {**item, "stage": verdict.stage.id, "planned_at": now}
    finally:
        table.delete_item(Key={"loan_id": item["loan_id"]})


def test_a_due_loan_is_planned_sent_and_recorded(
    deployed_stack: DeployedStack, due_loan: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    loan_id = due_loan["loan_id"]
    dynamodb = boto3.client("dynamodb", region_name=deployed_stack.region)
    state_table = deployed_stack.output("StateTableName")

    def indexed() -> dict[str, Any] | None:
        key = {"pk": {"S": f"LOAN#{loan_id}"}, "sk": {"S": "CONTROL"}}
        item = dynamodb.get_item(TableName=state_table, Key=key, ConsistentRead=True).get("Item")
        return item if item and "ladder_part" in item else None

    poll(f"ladder index item for {loan_id} (LoansTable's stream, LoanChangesFunction)", indexed, INDEX_TIMEOUT_SECONDS)

    # A loan upstream adds wakes no shard (the planner notices it within LONGEST_SLEEP); wake the
    # loan's shard as a borrower event would, so this run reads it.
    monkeypatch.setenv("AWS_REGION", deployed_stack.region)  # dunning's clients read the region from there
    shards = int(deployed_stack.parameters["PlanningShards"])
    StateRepository(state_table, planning_shards=shards).wake_planner(bucket_of(due_loan["borrower_id"]))

    stepfunctions = boto3.client("stepfunctions", region_name=deployed_stack.region)
    now: dt.datetime = due_loan["planned_at"]
    scheduled_event = {  # what the hourly ScheduleV2 gives the state machine (template.yaml, Input)
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.scheduler",
        "account": deployed_stack.output("PlanningStateMachineArn").split(":")[4],
        "region": deployed_stack.region,
        "time": now.isoformat().replace("+00:00", "Z"),
        "resources": [],
        "detail": {},
    }
    execution_arn = stepfunctions.start_execution(
        stateMachineArn=deployed_stack.output("PlanningStateMachineArn"),
        name=f"e2e-{loan_id}",
        input=json.dumps(scheduled_event),
    )["executionArn"]

    def finished() -> dict[str, Any] | None:
        execution = stepfunctions.describe_execution(executionArn=execution_arn)
        return None if execution["status"] == "RUNNING" else dict(execution)

    execution = poll(f"end of PlanningStateMachine execution {execution_arn}", finished, PLANNING_TIMEOUT_SECONDS)
    assert execution["status"] == "SUCCEEDED", {k: execution.get(k) for k in ("status", "error", "cause")}

    deliveries = boto3.resource("dynamodb", region_name=deployed_stack.region).Table(
        deployed_stack.output("DeliveriesTableName")
    )
    seen: list[dict[str, Any]] = []

    def recorded() -> dict[str, Any] | None:
        records = deliveries.query(KeyConditionExpression=Key("loan_id").eq(loan_id), ConsistentRead=True)["Items"]
        seen[:] = [{k: r.get(k) for k in ("stage", "outcome", "reason")} for r in records]  # no phone, no body
        return next((dict(r) for r in records if r.get("outcome") in SENT), None)

    record = poll(
        f"SENT or DELIVERED record for {loan_id}", recorded, RECORD_TIMEOUT_SECONDS, lambda: f"(its records: {seen})"
    )

    assert record["record_id"] >= utc_prefix(now)  # written by this run, after the schedule time
    assert (record["cycle"], record["stage"]) == (due_loan["due_date"], due_loan["stage"])
    assert record["borrower_id"] == due_loan["borrower_id"]
    assert record["message_id"]  # SNS accepted the Publish
    to_the_number = record["phone"] == due_loan["phone"]
    assert to_the_number, f"the record's number is not {PHONE_ENV}"  # never the number itself in the output
    assert (record["amount_due"], record["currency"]) == (Decimal("10.00"), "USD")
    assert record["reference"] and record["reference"] in record["body"]


def utc_prefix(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
