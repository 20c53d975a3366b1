"""What the service's Tracer helpers let into a trace: counts, not data; exceptions without their messages."""

from __future__ import annotations

import traceback
from collections import Counter
from typing import Any

from aws_xray_sdk.core.models.segment import Segment
from aws_xray_sdk.core.models.subsegment import Subsegment
from botocore.exceptions import ClientError

from dunning.observability import WithoutExceptionMessages, counts_only

PHONE = "+8613912345678"


class _Captured:
    """An emitter that keeps what it is given (the daemon's side of the UDP emitter)."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send_entity(self, entity: Any) -> None:
        self.sent.append(entity.serialize())

    def set_daemon_address(self, address: str | None) -> None:
        self.address = address


def _refused_publish() -> tuple[ClientError, list[Any]]:
    """The error SNS returns for a number it will not publish to, as botocore raises it."""
    error = ClientError(
        {
            "Error": {
                "Code": "InvalidParameter",
                "Message": f"Invalid parameter: PhoneNumber Reason: {PHONE} is not valid to publish to",
            },
            "ResponseMetadata": {"HTTPStatusCode": 400, "RequestId": "r-1"},
        },
        "Publish",
    )
    try:
        raise error
    except ClientError:
        return error, traceback.extract_stack()


def test_an_aws_error_quoting_the_number_reaches_the_daemon_without_its_message() -> None:
    captured = _Captured()
    emitter = WithoutExceptionMessages(captured)
    segment = Segment("SendRemindersFunction", traceid="1-6741a2c0-5e0f3d2b8c9a1f4e7d6b5a49")
    handler = Subsegment("## lambda_handler", "local", segment)
    publish = Subsegment("sns", "aws", segment)
    handler.add_subsegment(publish)
    error, stack = _refused_publish()
    publish.add_exception(error, stack, remote=True)
    assert PHONE in segment.serialize() or PHONE in publish.serialize()  # what X-Ray's SDK records by itself
    handler.close()
    publish.close()

    emitter.send_entity(handler)  # a batch: the subsegment with its child

    (sent,) = captured.sent
    assert PHONE not in sent and "13912345678" not in sent
    assert '"type": "ClientError"' in sent  # the type and stack still say what failed
    assert '"remote": true' in sent


def test_the_wrapped_emitter_still_takes_the_daemon_address() -> None:
    captured = _Captured()

    WithoutExceptionMessages(captured).set_daemon_address("169.254.79.129:2000")

    assert captured.address == "169.254.79.129:2000"


def test_figures_keep_counts_and_drop_everything_else() -> None:
    report = {
        "loans_read": 12,
        "suppressed": Counter({"opted_out": 2, "invalid_phone": 1}),
        "complete": True,  # a flag: annotated explicitly where it is wanted, not a count
        "cursor": "eyJwIjogM30=",
        "now": "2026-11-23T02:00:00+00:00",
        "file": "bureau/2026-11-23/delinquencies.jsonl",
        "fees": {"LN1": "12.50"},  # a map of anything but counts
        "phones": [PHONE],
        "mixed": {"sent": 1, "to": PHONE},
    }

    assert counts_only(report) == {"loans_read": 12, "suppressed": {"opted_out": 2, "invalid_phone": 1}}
