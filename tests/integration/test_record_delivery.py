"""RecordDeliveryFunction on the moto stack: SNS SMS delivery-status logs onto delivery records."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import pytest
import time_machine

from dunning.models.delivery import Outcome
from dunning_tools.local import LocalStack, invoke
from dunning_tools.local.sample_events import (
    FAILURE_GROUP,
    SAMPLE_FAILURE_MESSAGE_ID,
    SAMPLE_FAILURE_RESPONSE,
    SAMPLE_SUCCESS_MESSAGE_ID,
    SUCCESS_GROUP,
    cloudwatch_logs_event,
    sms_delivery_log,
)
from tests.integration.after_sms_helpers import event_file, put_record, records, state_item

SENT_AT = dt.datetime(2026, 12, 12, 2, 0, 30, tzinfo=dt.UTC)
SUCCESS = "cloudwatch_logs_sms_success.json"
FAILURE = "cloudwatch_logs_sms_failure.json"


@pytest.fixture
def sent(local_stack: LocalStack) -> LocalStack:
    """One consolidated SMS covering two loans (success sample) and one SMS to a third loan (failure sample)."""
    for loan_id in ("L-A", "L-B"):
        put_record(
            local_stack,
            loan_id,
            SENT_AT,
            cycle="2026-11-30",
            stage="follow_up_12",
            message_id=SAMPLE_SUCCESS_MESSAGE_ID,
        )
    put_record(
        local_stack, "L-C", SENT_AT, cycle="2026-12-01", stage="follow_up_9", message_id=SAMPLE_FAILURE_MESSAGE_ID
    )
    return local_stack


def only_record(stack: LocalStack, loan_id: str) -> dict[str, object]:
    (record,) = records(stack, loan_id)
    return record


def test_success_log_marks_every_loan_of_the_message_delivered(sent: LocalStack) -> None:
    with time_machine.travel(SENT_AT + dt.timedelta(minutes=5), tick=False):
        report = invoke(sent, "RecordDeliveryFunction", event_file(SUCCESS))

    assert report == {"logs": 1, "malformed": 0, "unknown_message": 0, "records": {"applied": 2}, "rejected": 0}
    for loan_id in ("L-A", "L-B"):
        record = only_record(sent, loan_id)
        assert record["outcome"] == "DELIVERED"
        assert record["price_usd"] == Decimal("0.00645")
        assert record["provider_response"] == "Message has been accepted by phone carrier"
        assert record["updated_at"] == "2026-12-12T02:05:30.000Z"
    assert only_record(sent, "L-C")["outcome"] == "SENT"


def test_failure_log_marks_failed_with_the_provider_response(sent: LocalStack) -> None:
    invoke(sent, "RecordDeliveryFunction", event_file(FAILURE))

    record = only_record(sent, "L-C")
    assert record["outcome"] == "FAILED"
    assert record["reason"] == "delivery_failed"
    assert record["provider_response"] == SAMPLE_FAILURE_RESPONSE
    assert record["price_usd"] == Decimal("0.00645")
    # The hint escalation reads before it looks at a loan's history (and only a failure sets it).
    control = state_item(sent, "LOAN#L-C", "CONTROL")
    assert control is not None and control["last_failed_delivery_at"]


def test_a_delivered_sms_leaves_no_failure_hint(sent: LocalStack) -> None:
    invoke(sent, "RecordDeliveryFunction", event_file(SUCCESS))

    assert state_item(sent, "LOAN#L-A", "CONTROL") is None


def test_a_replayed_log_changes_nothing(sent: LocalStack) -> None:
    invoke(sent, "RecordDeliveryFunction", event_file(SUCCESS))
    before = only_record(sent, "L-A")

    report = invoke(sent, "RecordDeliveryFunction", event_file(SUCCESS))

    assert report["records"] == {"replay": 2}
    assert only_record(sent, "L-A") == before


@pytest.mark.parametrize("order", list(itertools.permutations(["success", "failure", "success_replay"])))
def test_final_outcomes_never_regress_whatever_order_logs_arrive_in(sent: LocalStack, order: tuple[str, ...]) -> None:
    """SUCCESS and FAILURE logs for one message in any order: the first final outcome stays, never SENT again."""
    logs = {
        "success": cloudwatch_logs_event(SUCCESS_GROUP, [sms_delivery_log(SAMPLE_FAILURE_MESSAGE_ID, success=True)]),
        "failure": event_file(FAILURE),
        "success_replay": cloudwatch_logs_event(
            SUCCESS_GROUP, [sms_delivery_log(SAMPLE_FAILURE_MESSAGE_ID, success=True)]
        ),
    }
    first_outcome = "DELIVERED" if order[0].startswith("success") else "FAILED"
    for name in order:
        invoke(sent, "RecordDeliveryFunction", logs[name])
        assert only_record(sent, "L-C")["outcome"] == first_outcome


def test_conflicting_late_log_is_counted_not_applied(sent: LocalStack) -> None:
    invoke(sent, "RecordDeliveryFunction", event_file(FAILURE))
    late_success = cloudwatch_logs_event(SUCCESS_GROUP, [sms_delivery_log(SAMPLE_FAILURE_MESSAGE_ID, success=True)])

    report = invoke(sent, "RecordDeliveryFunction", late_success)

    assert report["records"] == {"conflict": 1}
    assert only_record(sent, "L-C")["provider_response"] == SAMPLE_FAILURE_RESPONSE


def test_log_for_a_suppressed_record_is_not_applied(local_stack: LocalStack) -> None:
    put_record(
        local_stack,
        "L-S",
        SENT_AT,
        cycle="2026-12-01",
        stage="follow_up_9",
        outcome=Outcome.UNCERTAIN,
        message_id=SAMPLE_SUCCESS_MESSAGE_ID,
    )

    report = invoke(local_stack, "RecordDeliveryFunction", event_file(SUCCESS))

    assert report["records"] == {"not_sent": 1}
    assert only_record(local_stack, "L-S")["outcome"] == "UNCERTAIN"


def test_unknown_message_id_is_skipped_and_counted(sent: LocalStack, capsys: pytest.CaptureFixture[str]) -> None:
    stranger = cloudwatch_logs_event(FAILURE_GROUP, [sms_delivery_log("not-one-of-ours", success=False)])

    report = invoke(sent, "RecordDeliveryFunction", stranger)

    assert report == {"logs": 1, "malformed": 0, "unknown_message": 1, "records": {}, "rejected": 0}
    assert '"DeliveryLogsUnknownMessage":[1.0]' in capsys.readouterr().out
    assert {only_record(sent, loan_id)["outcome"] for loan_id in ("L-A", "L-B", "L-C")} == {"SENT"}


def test_a_malformed_log_record_does_not_stop_the_batch(sent: LocalStack, caplog: pytest.LogCaptureFixture) -> None:
    batch = cloudwatch_logs_event(
        SUCCESS_GROUP,
        ['{"notification": {}, "status": "SUCCESS"}', sms_delivery_log(SAMPLE_SUCCESS_MESSAGE_ID, success=True)],
    )

    report = invoke(sent, "RecordDeliveryFunction", batch)

    assert report["malformed"] == 1 and report["records"] == {"applied": 2}
    (error,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "notification.messageId: Field required" in error.__dict__["validation_error"]
    assert not any("+86138" in str(value) for r in caplog.records for value in r.__dict__.values())


def test_an_undecodable_envelope_is_rejected_with_a_clear_error(sent: LocalStack) -> None:
    response = invoke(sent, "RecordDeliveryFunction", {"awslogs": {"data": "bm90IGd6aXA="}})

    assert response["status"] == "rejected"
    assert "awslogs.data" in response["error"]
    assert only_record(sent, "L-A")["outcome"] == "SENT"
