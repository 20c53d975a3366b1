"""Amazon SNS SMS: publish with a known or explicitly unknown outcome, and the opt-out check."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from dunning.dal.aws import NO_RETRY, client

THROTTLING_CODES = frozenset({"Throttling", "ThrottlingException", "ThrottledException", "TooManyRequestsException"})


class PublishRejected(Exception):
    """SNS answered no: nothing was sent, so the job may be retried."""

    def __init__(self, code: str, retryable: bool) -> None:
        super().__init__(code)
        self.code = code
        self.retryable = retryable


class PublishUncertain(Exception):
    """The request went out and no answer came back: it may have been sent. Never resend blindly."""


@dataclass(frozen=True)
class SmsSettings:
    sms_type: str
    sender_id: str = ""
    origination_number: str = ""


class SmsGateway:
    def __init__(self, settings: SmsSettings) -> None:
        self.settings = settings

    def publish(self, phone: str, body: str) -> str:
        """The SNS message id; PublishRejected when SNS refused, PublishUncertain when unknown."""
        attributes: dict[str, Any] = {
            "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": self.settings.sms_type}
        }
        if self.settings.sender_id:
            attributes["AWS.SNS.SMS.SenderID"] = {"DataType": "String", "StringValue": self.settings.sender_id}
        if self.settings.origination_number:
            attributes["AWS.MM.SMS.OriginationNumber"] = {
                "DataType": "String",
                "StringValue": self.settings.origination_number,
            }
        try:
            response = client("sns", NO_RETRY).publish(PhoneNumber=phone, Message=body, MessageAttributes=attributes)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "Unknown"))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400))
            raise PublishRejected(code, retryable=code in THROTTLING_CODES or status >= 500) from None
        except (ConnectTimeoutError, EndpointConnectionError) as exc:
            # The connection never opened: nothing reached SNS.
            raise PublishRejected(type(exc).__name__, retryable=True) from None
        except (ReadTimeoutError, ConnectionClosedError) as exc:
            raise PublishUncertain(type(exc).__name__) from None
        return str(response["MessageId"])

    def is_opted_out(self, phone: str) -> bool:
        response = client("sns").check_if_phone_number_is_opted_out(phoneNumber=phone)
        return bool(response.get("isOptedOut"))


class Pacer:
    """Keeps one invocation at or under a parts-per-second budget (the origination identity's MPS)."""

    def __init__(self, parts_per_second: int, clock: Any = time.monotonic, sleep: Any = time.sleep) -> None:
        self.interval = 1.0 / parts_per_second
        self.clock = clock
        self.sleep = sleep
        self.next_at = 0.0

    def wait(self, parts: int) -> None:
        now = self.clock()
        if self.next_at > now:
            self.sleep(self.next_at - now)
            now = self.next_at
        self.next_at = now + parts * self.interval
