"""Events in the shapes AWS sends, for `events/*.json`, tests and the demo.

`python -m dunning_tools.local.sample_events [FOLDER]` rewrites the CloudWatch Logs samples in
`events/` (their `awslogs.data` is base64 of gzip, which nobody should edit by hand).
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"
SUCCESS_GROUP = f"sns/{REGION}/{ACCOUNT}/DirectPublishToPhoneNumber"
FAILURE_GROUP = f"{SUCCESS_GROUP}/Failure"

# The message ids of the sample files; tests seed delivery records carrying them.
SAMPLE_SUCCESS_MESSAGE_ID = "34d9b400-c6dd-5444-820d-fbeb0f1f54cf"
SAMPLE_FAILURE_MESSAGE_ID = "1077257a-92f3-5ca3-bc97-6a915b310625"
SAMPLE_TIME = dt.datetime(2026, 12, 12, 2, 0, 34, 558000, tzinfo=dt.UTC)
SAMPLE_FAILURE_RESPONSE = "Unknown error attempting to reach phone"


def sms_delivery_log(
    message_id: str,
    *,
    success: bool,
    at: dt.datetime = SAMPLE_TIME,
    destination: str = "+8613800000001",
    provider_response: str | None = None,
    price_usd: Decimal = Decimal("0.00645"),
) -> str:
    """One SNS SMS delivery-status log record, as SNS writes it (JSON text)."""
    delivery: dict[str, Any] = {"phoneCarrier": "China Mobile"} if success else {}
    delivery.update(
        {
            "mnc": 0,
            "destination": destination,
            "priceInUSD": "__PRICE__",
            "smsType": "Transactional",
            "mcc": 460,
            "providerResponse": provider_response
            or ("Message has been accepted by phone carrier" if success else SAMPLE_FAILURE_RESPONSE),
            "dwellTimeMs": 599,
            "dwellTimeMsUntilDeviceAck": 1344,
        }
    )
    stamp = at.astimezone(dt.UTC)
    record = {
        "notification": {
            "messageId": message_id,
            "timestamp": stamp.strftime("%Y-%m-%d %H:%M:%S.") + f"{stamp.microsecond // 1000:03d}",
        },
        "delivery": delivery,
        "status": "SUCCESS" if success else "FAILURE",
    }
    # SNS writes the price as a JSON number; keep its exact digits (never through a float).
    return json.dumps(record).replace('"__PRICE__"', str(price_usd))


def cloudwatch_logs_event(
    log_group: str, messages: Sequence[str], *, at: dt.datetime = SAMPLE_TIME, log_stream: str | None = None
) -> dict[str, Any]:
    """The event a CloudWatch Logs subscription gives Lambda: `awslogs.data` = base64(gzip(JSON))."""
    millis = int(at.timestamp() * 1000)
    payload = {
        "messageType": "DATA_MESSAGE",
        "owner": ACCOUNT,
        "logGroup": log_group,
        "logStream": log_stream or f"{log_group.rsplit('/', 1)[-1]}-{at:%Y%m%d}",
        "subscriptionFilters": ["dunning-record-delivery"],
        "logEvents": [
            {"id": f"{millis + i}{i:04d}", "timestamp": millis + i, "message": message}
            for i, message in enumerate(messages)
        ],
    }
    data = gzip.compress(json.dumps(payload).encode("utf-8"), mtime=0)
    return {"awslogs": {"data": base64.b64encode(data).decode("ascii")}}


def sample_files() -> dict[str, dict[str, Any]]:
    return {
        "cloudwatch_logs_sms_success.json": cloudwatch_logs_event(
            SUCCESS_GROUP, [sms_delivery_log(SAMPLE_SUCCESS_MESSAGE_ID, success=True)]
        ),
        "cloudwatch_logs_sms_failure.json": cloudwatch_logs_event(
            FAILURE_GROUP, [sms_delivery_log(SAMPLE_FAILURE_MESSAGE_ID, success=False)]
        ),
    }


def main(argv: Sequence[str] = ()) -> int:
    folder = Path(argv[0]) if argv else Path(__file__).resolve().parents[3] / "events"
    for name, event in sample_files().items():
        (folder / name).write_text(json.dumps(event, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {folder / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
