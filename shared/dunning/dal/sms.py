"""Amazon SNS SMS: publish with a known or explicitly unknown outcome, SNS's opt-out list, and pacing."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from dunning.dal.aws import NO_RETRY, sns
from dunning.observability import tracer

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

    @tracer.capture_method(capture_response=False, capture_error=False)  # never the number, the body or the error
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
            response = sns(NO_RETRY).publish(PhoneNumber=phone, Message=body, MessageAttributes=attributes)
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

    def opted_out_pages(self, next_token: str | None = None) -> Iterator[tuple[list[str], str | None]]:
        """SNS's own opt-out list, page by page from `next_token` (ListPhoneNumbersOptedOut: up to 100 a page),
        each with the token of the page after it (None after the last)."""
        request: dict[str, Any] = {"nextToken": next_token} if next_token else {}
        while True:
            response = sns().list_phone_numbers_opted_out(**request)
            token = response.get("nextToken") or None
            yield [str(number) for number in response.get("phoneNumbers", [])], token
            if token is None:
                return
            request = {"nextToken": token}


class Pacer:
    """Keeps one invocation at or under a parts-per-second budget (the origination identity's MPS)."""

    def __init__(
        self,
        parts_per_second: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if parts_per_second <= 0:
            raise ValueError(f"parts_per_second must be positive, got {parts_per_second}")
        self.parts_per_second = parts_per_second
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
