"""SNS SMS delivery-status log records and the rule that applies them (first final outcome wins)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest
from aws_lambda_powertools.utilities.parser.models import CloudWatchLogsModel
from pydantic import ValidationError

from dunning.delivery_status import SmsDeliveryLog, Transition, transition
from dunning.models.delivery import Outcome
from dunning_tools.local.sample_events import (
    FAILURE_GROUP,
    SAMPLE_FAILURE_MESSAGE_ID,
    SAMPLE_FAILURE_RESPONSE,
    SAMPLE_SUCCESS_MESSAGE_ID,
    SUCCESS_GROUP,
    sms_delivery_log,
)

EVENTS = Path(__file__).resolve().parents[2] / "events"

# The record AWS documents for the success log group (numbers and all).
AWS_SUCCESS_EXAMPLE = """{"notification":{"messageId":"34d9b400-c6dd-5444-820d-fbeb0f1f54cf",
"timestamp":"2016-06-28 00:40:34.558"},"delivery":{"phoneCarrier":"My Phone Carrier","mnc":270,
"destination":"+1XXX5550100","priceInUSD":0.00645,"smsType":"Transactional","mcc":310,
"providerResponse":"Message has been accepted by phone carrier","dwellTimeMs":599,
"dwellTimeMsUntilDeviceAck":1344},"status":"SUCCESS"}"""


def test_parses_the_documented_success_record_with_an_exact_price() -> None:
    log = SmsDeliveryLog.model_validate_json(AWS_SUCCESS_EXAMPLE)
    assert log.notification.message_id == "34d9b400-c6dd-5444-820d-fbeb0f1f54cf"
    assert log.notification.timestamp == dt.datetime(2016, 6, 28, 0, 40, 34, 558000, tzinfo=dt.UTC)
    assert log.delivery.price_in_usd == Decimal("0.00645")
    assert str(log.delivery.price_in_usd) == "0.00645"  # never went through a float
    assert log.delivery.provider_response == "Message has been accepted by phone carrier"
    assert log.outcome is Outcome.DELIVERED


def test_failure_record_maps_to_failed_with_the_provider_response() -> None:
    log = SmsDeliveryLog.model_validate_json(sms_delivery_log("m-1", success=False))
    assert log.outcome is Outcome.FAILED
    assert log.delivery.provider_response == SAMPLE_FAILURE_RESPONSE


@pytest.mark.parametrize(
    ("broken", "field"),
    [
        ({"status": "MAYBE"}, "status"),
        ({"notification": {"timestamp": "2016-06-28 00:40:34.558"}}, "notification.messageId"),
        ({"delivery": {"priceInUSD": "lots"}}, "delivery.priceInUSD"),
    ],
)
def test_malformed_records_name_the_broken_field(broken: dict[str, object], field: str) -> None:
    record = json.loads(AWS_SUCCESS_EXAMPLE)
    record.update(broken)
    with pytest.raises(ValidationError) as caught:
        SmsDeliveryLog.model_validate_json(json.dumps(record))
    assert field in {".".join(map(str, e["loc"])) for e in caught.value.errors()}


@pytest.mark.parametrize(
    ("current", "incoming", "expected"),
    [
        (Outcome.SENT, Outcome.DELIVERED, Transition.APPLIED),
        (Outcome.SENT, Outcome.FAILED, Transition.APPLIED),
        (Outcome.DELIVERED, Outcome.DELIVERED, Transition.REPLAY),
        (Outcome.FAILED, Outcome.FAILED, Transition.REPLAY),
        (Outcome.DELIVERED, Outcome.FAILED, Transition.CONFLICT),
        (Outcome.FAILED, Outcome.DELIVERED, Transition.CONFLICT),
        (Outcome.SUPPRESSED, Outcome.DELIVERED, Transition.NOT_SENT),
        (Outcome.UNCERTAIN, Outcome.FAILED, Transition.NOT_SENT),
    ],
)
def test_only_a_sent_record_takes_an_outcome(current: Outcome, incoming: Outcome, expected: Transition) -> None:
    assert transition(current, incoming) is expected


@pytest.mark.parametrize(
    ("name", "group", "message_id", "status"),
    [
        ("cloudwatch_logs_sms_success.json", SUCCESS_GROUP, SAMPLE_SUCCESS_MESSAGE_ID, "SUCCESS"),
        ("cloudwatch_logs_sms_failure.json", FAILURE_GROUP, SAMPLE_FAILURE_MESSAGE_ID, "FAILURE"),
    ],
)
def test_sample_events_are_real_subscription_payloads(name: str, group: str, message_id: str, status: str) -> None:
    event = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    decoded = CloudWatchLogsModel.model_validate(event).awslogs.decoded_data
    assert decoded.messageType == "DATA_MESSAGE"
    assert decoded.logGroup == group
    logs = [SmsDeliveryLog.model_validate_json(str(e.message)) for e in decoded.logEvents]
    assert [(log.notification.message_id, log.status) for log in logs] == [(message_id, status)]
