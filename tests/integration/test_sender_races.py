"""The sender under concurrency and bad data (issue 10, deliverables 2 and 6), on the fault suite's stack.

A second sender, a late opt-out or another attempt's resolver runs *inside* the first sender, at the
very call named by a hook of the fault injector (`Injector.hooks`): the interleaving is exact, no
timing involved. Every scenario ends with the fault suite's accounting (0 duplicates, 0 lost).
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest
import time_machine
from aws_lambda_powertools.utilities.batch import EventType

from dunning.sender import SENDING_HELD_FOR
from dunning_tools.local import LocalStack, drain_stream, invoke
from tests.integration.phone_key_helpers import state_repository
from tests.integration.test_faults import (
    AT,
    CLEAN,
    PLANNED,
    REDELIVERY,
    account,
    check,
    dead_letters,
    drain_with_redelivery,
    emf_metrics,
    ends,
    fire_planner,
    fresh_stack,
    injector,
    loan,
    receive_all,
    run_like_production,
    scan,
    sms_sent,
    sqs_event,
    sync_opt_outs,
)

F_1 = ("F-1", "2026-11-25", "follow_up_3")
PHONE_1 = "+8613900139021"
SENT_AT = AT + dt.timedelta(seconds=5)


@pytest.fixture
def stack(module_stack: LocalStack) -> Iterator[LocalStack]:
    yield from fresh_stack(module_stack)


def deliver(stack: LocalStack, message: dict[str, Any]) -> Any:
    """One invocation for one message, then what the SQS poller does: delete it unless reported failed.

    Each invocation gets its own Powertools BatchProcessor, as a second Lambda container would: the
    handler module's global one keeps the batch it is working on, and a second sender invoked
    inside the first (in-process, at a hook) must not report its failures in the first's answer.
    """
    module = importlib.import_module(stack.function_handler_module("SendRemindersFunction"))
    with pytest.MonkeyPatch.context() as container:
        processor = module._Processor(
            event_type=EventType.SQS, model=module.SendJobRecord, raise_on_entire_batch_failure=False
        )
        container.setattr(module, "processor", processor)
        response = invoke(stack, "SendRemindersFunction", sqs_event([message], stack))
    if not response["batchItemFailures"]:
        boto3.client("sqs", region_name=stack.region).delete_message(
            QueueUrl=stack.queue_url("ReminderQueue"), ReceiptHandle=message["ReceiptHandle"]
        )
    return response


def planned_jobs_and_a_duplicate(stack: LocalStack) -> tuple[dict[str, Any], dict[str, Any]]:
    """Plan, then receive B-1's job and a second copy of it (the planner or SQS delivering it twice)."""
    fire_planner(stack, AT)
    sync_opt_outs(stack, AT)  # F-3 opted out at SNS since planning
    with time_machine.travel(SENT_AT, tick=False):
        (job,) = [m for m in receive_all(stack) if json.loads(m["Body"])["borrower_id"] == "B-1"]
        sqs = boto3.client("sqs", region_name=stack.region)
        sqs.send_message(QueueUrl=stack.queue_url("ReminderQueue"), MessageBody=job["Body"])
        (duplicate,) = receive_all(stack)  # the other jobs are in flight: only the copy is visible
    return job, duplicate


def claim_and_records(stack: LocalStack, key: tuple[str, str, str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    (claim,) = [c for c in scan(stack, "StateTable") if (c.get("loan_id"), c.get("cycle"), c.get("stage")) == key]
    records = [r for r in scan(stack, "DeliveriesTable") if (r["loan_id"], r["cycle"], r["stage"]) == key]
    return claim, records


def test_a_duplicate_job_reaching_a_second_sender_mid_publish_is_retried_later_and_sent_once(
    stack: LocalStack, record_property: Callable[[str, object], None], capsys: pytest.CaptureFixture[str]
) -> None:
    job, duplicate = planned_jobs_and_a_duplicate(stack)
    installed = injector(stack)
    second: list[Any] = []
    installed.hooks[r"sns.Publish \*\*\*9021"] = lambda: second.append(deliver(stack, duplicate))
    capsys.readouterr()
    with time_machine.travel(SENT_AT, tick=False):
        first = deliver(stack, job)
    metrics = emf_metrics(capsys.readouterr().out)
    # The second sender found the claim SENDING, written just now: a live sender's, so "retry later".
    assert second == [{"batchItemFailures": [{"itemIdentifier": duplicate["MessageId"]}]}]
    assert first == {"batchItemFailures": []}
    assert metrics["SendClaimHeldElsewhere"] == 1 and metrics["SmsSent"] == 1
    assert "SmsUncertain" not in metrics
    # SQS redelivers the copy after its visibility timeout: the claim is SENT by then, nothing happens.
    drain_with_redelivery(stack, SENT_AT + REDELIVERY + dt.timedelta(seconds=10))
    result = check(stack, record_property, "duplicate job mid-publish", CLEAN)
    assert result.sms_per_phone[PHONE_1] == 1 and result.uncertain_records == 0
    claim, records = claim_and_records(stack, F_1)
    assert claim["state"] == "SENT" and [r["outcome"] for r in records] == ["SENT"]


@pytest.mark.parametrize(
    ("hook", "uncertain_recorded"),
    [
        (r"sns.Publish \*\*\*9021", 1),  # resolver before the SMS leaves: UNCERTAIN, then set back to SENT
        (r"TransactWriteItems DeliveriesTable SENT F-1", 1),  # ... after it left, before its record and claim
    ],
    # The record and the claim SENT are one transaction: no resolver can find one without the other.
    ids=["before publish", "before the record"],
)
def test_a_failed_sending_to_sent_leaves_claim_and_record_agreeing(
    stack: LocalStack,
    record_property: Callable[[str, object], None],
    capsys: pytest.CaptureFixture[str],
    hook: str,
    uncertain_recorded: int,
) -> None:
    """A retry takes the first sender for a dead one (it outlived SENDING_HELD_FOR) and resolves its claim."""
    job, duplicate = planned_jobs_and_a_duplicate(stack)
    installed = injector(stack)
    second: list[Any] = []

    def stalled_then_resolved() -> None:
        with time_machine.travel(SENT_AT + SENDING_HELD_FOR + dt.timedelta(seconds=1), tick=False):
            second.append(deliver(stack, duplicate))

    installed.hooks[hook] = stalled_then_resolved
    capsys.readouterr()
    with time_machine.travel(SENT_AT, tick=False):
        first = deliver(stack, job)
    metrics = emf_metrics(capsys.readouterr().out)
    assert second == [{"batchItemFailures": []}] and first == {"batchItemFailures": []}
    assert metrics["SmsSent"] == 1 and metrics["SmsUncertain"] == uncertain_recorded
    assert metrics["SmsUncertainResolved"] == uncertain_recorded
    drain_with_redelivery(stack, SENT_AT + REDELIVERY + dt.timedelta(seconds=10))
    result = check(stack, record_property, f"resolver at {hook}", CLEAN)
    assert result.sms_per_phone[PHONE_1] == 1
    claim, records = claim_and_records(stack, F_1)
    (record,) = records
    assert record["outcome"] == "SENT" and sms_sent(stack)[record["message_id"]][0] == PHONE_1
    assert (claim["state"], claim["message_id"], claim["record_id"]) == (
        "SENT",
        record["message_id"],
        record["record_id"],
    )


def test_an_opt_out_written_after_the_first_checks_stops_the_sms(
    stack: LocalStack, record_property: Callable[[str, object], None], capsys: pytest.CaptureFixture[str]
) -> None:
    """The borrower's STOP is recorded while the sender takes F-1's claim, after it read the opt-out list."""
    installed = injector(stack)
    state = state_repository(stack)
    hook = r"PLANNED->SENDING F-1"
    installed.hooks[hook] = lambda: state.opt_out(PHONE_1, "inbound_sms", "reply-1", AT)
    capsys.readouterr()
    run_like_production(stack)
    assert not installed.hooks, "the opt-out was never written"
    # F-1's, and F-3's (opted out at SNS after planning, synced before the send).
    assert emf_metrics(capsys.readouterr().out)["OptedOutBeforePublish"] == 2
    result = check(stack, record_property, f"opt-out before {hook}", ends(F_1="SUPPRESSED:opted_out"))
    assert PHONE_1 not in result.sms_per_phone
    assert not [c for c in installed.calls if c == "sns.Publish ***9021"]
    # The borrower's cap was never counted: the check failed in the very transaction that would have taken it.
    assert [i for i in scan(stack, "StateTable") if i["pk"] == "BORROWER#B-1"] == []


def test_a_loan_that_cannot_be_processed_is_suppressed_and_the_rest_of_its_job_is_sent(
    stack: LocalStack,
    record_property: Callable[[str, object], None],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """B-2's third loan: a valid DynamoDB number, no real loan (30 digits: no Decimal context formats it).

    Either the Loan model refuses it when parsed (invalid_amount) or, if it gets through, composing
    its SMS fails (unprocessable); both leave a SUPPRESSED record, and F-2A and F-2B still get their SMS.
    """
    huge = loan("F-2C", "B-2", "+8613900139022", "2026-11-21", "123456789012345678901234567890.00")
    boto3.resource("dynamodb", region_name=stack.region).Table(stack.physical_id("LoansTable")).put_item(Item=huge)
    drain_stream(stack)
    capsys.readouterr()
    run_like_production(stack)
    output = capsys.readouterr().out
    result = check(stack, record_property, "unprocessable loan", CLEAN)
    assert result.sms_per_phone["+8613900139022"] == 1
    bad = [r for r in scan(stack, "DeliveriesTable") if r["loan_id"] == "F-2C"]
    assert bad and {r["outcome"] for r in bad} == {"SUPPRESSED"}, bad
    (reason,) = {r["reason"] for r in bad}
    assert reason in {"unprocessable", "invalid_amount"}
    assert not [r for r in bad if r.get("amount_due") == Decimal(huge["amount_due"])]  # not echoed
    claims = [c for c in scan(stack, "StateTable") if c.get("loan_id") == "F-2C" and str(c["sk"]).startswith("SEND#")]
    assert all(c["state"] == "SUPPRESSED" for c in claims)
    assert dead_letters(stack) == []
    sent = [r for r in scan(stack, "DeliveriesTable") if r["outcome"] == "SENT" and r["loan_id"] in {"F-2A", "F-2B"}]
    assert len(sent) == 2 and "123456789" not in sent[0]["body"]
    if reason == "unprocessable":  # the path of a failure that survives parsing
        assert emf_metrics(output)["Suppressed_unprocessable"] == 1
        (logged,) = [r for r in caplog.records if r.getMessage().startswith("loan cannot be processed")]
        assert (getattr(logged, "loan_id", None), getattr(logged, "error", None)) == ("F-2C", "InvalidOperation")
        assert "+86139" not in output and "李雷" not in output


def test_a_sending_claim_past_the_bound_is_resolved_not_retried(
    stack: LocalStack, record_property: Callable[[str, object], None]
) -> None:
    """The claim's sender died after taking it: past SENDING_HELD_FOR the copy resolves it (UNCERTAIN)."""
    job, duplicate = planned_jobs_and_a_duplicate(stack)
    installed = injector(stack)

    def dies() -> None:
        raise SystemExit("the sender is stopped at its timeout")

    installed.hooks[r"sns.Publish \*\*\*9021"] = dies
    with time_machine.travel(SENT_AT, tick=False), pytest.raises(SystemExit):
        deliver(stack, job)
    with time_machine.travel(SENT_AT + SENDING_HELD_FOR - dt.timedelta(seconds=1), tick=False):
        assert deliver(stack, duplicate)["batchItemFailures"]  # still possibly alive: retry later
    with time_machine.travel(SENT_AT + SENDING_HELD_FOR, tick=False):
        assert deliver(stack, duplicate) == {"batchItemFailures": []}
    drain_with_redelivery(stack, SENT_AT + REDELIVERY + dt.timedelta(seconds=10))
    result = check(stack, record_property, "sender died holding SENDING", ends(F_1="UNCERTAIN"))
    assert PHONE_1 not in result.sms_per_phone
    assert account(stack, PLANNED).ends["F-1"] == "UNCERTAIN"
