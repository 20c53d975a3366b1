"""`dunning replay`: what the functions quarantined, and a second try once the cause is fixed.

Reads QuarantineQueue and shows each message's function, kind, reason and age (never its body:
it may hold a phone number). With `apply=True` it invokes the function that rejected the message
with the original event, marked as a replay (ClientContext `custom` {"dunning-replay": ...}, so
a second rejection is not quarantined twice), and deletes the message only when the function now
accepts it. Everything else stays, visible again when the run ends.

Targets: a deployed stack (physical names from CloudFormation, Lambda `Invoke` RequestResponse)
or the local moto stack (`dunning_tools.local.invoke`, in-process).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from botocore.config import Config
from botocore.exceptions import ClientError

from dunning.dal.aws import client
from dunning.handlers import REPLAY_MARKER
from dunning_tools.commands.common import QUARANTINING_FUNCTIONS
from dunning_tools.local.invoke import _release, invoke
from dunning_tools.local.stack import LocalStack

# Received messages stay hidden this long while the run decides on them (a replay may take a
# function's whole timeout); whatever is left is made visible again at the end.
HOLD_SECONDS = 900
# One attempt, and long enough for the slowest function (300 s): a timed-out replay is reported, not retried.
INVOKE_CONFIG = Config(retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=330)

Outcome = Literal["listed", "applied", "still_rejected", "failed", "unknown_function", "unreadable"]


class ReplayError(RuntimeError):
    """The replay cannot start: no such stack, or a stack without a quarantine."""


@dataclass(frozen=True)
class QuarantinedMessage:
    message_id: str
    receipt_handle: str
    function: str
    kind: str
    reason: str
    received_at: dt.datetime | None
    body: str

    @classmethod
    def from_sqs(cls, message: Mapping[str, Any]) -> QuarantinedMessage:
        attributes = {
            name: str(value.get("StringValue", "")) for name, value in message.get("MessageAttributes", {}).items()
        }
        try:
            received_at: dt.datetime | None = dt.datetime.fromisoformat(attributes.get("received_at", ""))
        except ValueError:
            sent = message.get("Attributes", {}).get("SentTimestamp")
            received_at = dt.datetime.fromtimestamp(int(sent) / 1000, dt.UTC) if sent else None
        return cls(
            message_id=str(message["MessageId"]),
            receipt_handle=str(message["ReceiptHandle"]),
            function=attributes.get("function", ""),
            kind=attributes.get("kind", ""),
            reason=attributes.get("reason", ""),
            received_at=received_at,
            body=str(message.get("Body", "")),
        )


@dataclass(frozen=True)
class Invocation:
    reply: Any
    error: str = ""  # set when the function failed (raised), naming the error type


@dataclass(frozen=True)
class ReplayResult:
    message: QuarantinedMessage
    outcome: Outcome
    detail: str = ""

    @property
    def left(self) -> bool:
        """Still in the quarantine after the run."""
        return self.outcome != "applied"

    def as_dict(self, now: dt.datetime) -> dict[str, Any]:
        received = self.message.received_at
        age = None if received is None else str(dt.timedelta(seconds=int((now - received).total_seconds())))
        row: dict[str, Any] = {
            "message_id": self.message.message_id,
            "function": self.message.function,
            "kind": self.message.kind,
            "reason": self.message.reason,
            "received_at": None if received is None else received.isoformat(),
            "age": age,
            "outcome": self.outcome,
        }
        if self.detail:
            row["detail"] = self.detail
        return row


class Target(Protocol):
    """Where the quarantine is and how its functions are invoked."""

    quarantine_url: str
    wait_seconds: int  # SQS long poll per receive: 0 reads only some servers of a real queue

    def has_function(self, function: str) -> bool: ...

    def invoke(self, function: str, event: Mapping[str, Any]) -> Invocation: ...


def accepted(invocation: Invocation) -> bool:
    """The function took the input: it did not fail, and its reply reports no rejection.

    A whole event refused replies `status: rejected`; a function that rejects records of an
    event one by one (InboundSmsFunction, RecordDeliveryFunction) replies `rejected: n`.
    """
    reply = invocation.reply
    if invocation.error or not isinstance(reply, Mapping):
        return False
    return reply.get("status") != "rejected" and not reply.get("rejected")


def replay(
    target: Target,
    *,
    apply: bool,
    functions: Collection[str] = (),
    limit: int = 1000,
    now: dt.datetime | None = None,
) -> list[ReplayResult]:
    """List (and with `apply`, replay) up to `limit` quarantined messages, of `functions` only if given."""
    now = now or dt.datetime.now(dt.UTC)
    sqs = client("sqs")
    results: list[ReplayResult] = []
    held: list[dict[str, Any]] = []  # received and not deleted: visible again at the end
    seen: set[str] = set()
    try:
        while len(results) < limit:
            response = sqs.receive_message(
                QueueUrl=target.quarantine_url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=HOLD_SECONDS,
                WaitTimeSeconds=target.wait_seconds,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["SentTimestamp"],
            )
            messages = [m for m in response.get("Messages", []) if m["MessageId"] not in seen]
            if not messages:
                break
            for raw in messages:
                seen.add(raw["MessageId"])
                message = QuarantinedMessage.from_sqs(raw)
                if (functions and message.function not in functions) or len(results) >= limit:
                    held.append(raw)
                    continue
                result = _decide(target, message, apply)
                results.append(result)
                if result.left:
                    held.append(raw)
                else:
                    sqs.delete_message(QueueUrl=target.quarantine_url, ReceiptHandle=message.receipt_handle)
    finally:
        # Not fatal if refused: what was held comes back by itself after HOLD_SECONDS.
        with contextlib.suppress(ClientError):
            _release(sqs, target.quarantine_url, held)
    return results


def _decide(target: Target, message: QuarantinedMessage, apply: bool) -> ReplayResult:
    if not target.has_function(message.function):
        return ReplayResult(message, "unknown_function", f"no function {message.function!r} in the stack")
    try:
        event = json.loads(message.body)
    except ValueError:
        return ReplayResult(message, "unreadable", "the body is not a JSON event")
    if not isinstance(event, dict):
        return ReplayResult(message, "unreadable", "the body is not a JSON object")
    if not apply:
        return ReplayResult(message, "listed")
    invocation = target.invoke(message.function, event)
    if invocation.error:
        return ReplayResult(message, "failed", invocation.error)
    if not accepted(invocation):
        reply = invocation.reply if isinstance(invocation.reply, Mapping) else {}
        return ReplayResult(message, "still_rejected", str(reply.get("error", "")))
    return ReplayResult(message, "applied")


# ---------------------------------------------------------------- targets


class DeployedStack:
    """A stack deployed with `sam deploy`: names from CloudFormation, functions through Lambda `Invoke`."""

    wait_seconds = 2

    def __init__(self, stack_name: str) -> None:
        self.stack_name = stack_name
        self.functions: dict[str, str] = {}
        queue = ""
        try:
            pages = client("cloudformation").get_paginator("list_stack_resources").paginate(StackName=stack_name)
            for page in pages:
                for resource in page.get("StackResourceSummaries", []):
                    logical_id, physical_id = (
                        str(resource["LogicalResourceId"]),
                        str(resource.get("PhysicalResourceId", "")),
                    )
                    if resource.get("ResourceType") == "AWS::Lambda::Function":
                        self.functions[logical_id] = physical_id
                    elif logical_id == "QuarantineQueue":
                        queue = physical_id
        except ClientError as exc:
            raise ReplayError(
                f"cannot read stack {stack_name}: {exc.response.get('Error', {}).get('Message', exc)}"
            ) from None
        if not queue:
            raise ReplayError(f"stack {stack_name} has no QuarantineQueue (deployed before the quarantine existed?)")
        self.quarantine_url = queue

    def has_function(self, function: str) -> bool:
        return function in QUARANTINING_FUNCTIONS and function in self.functions

    def invoke(self, function: str, event: Mapping[str, Any]) -> Invocation:
        marker = json.dumps({"custom": {REPLAY_MARKER: "dunning replay"}}).encode()
        response = client("lambda", INVOKE_CONFIG).invoke(
            FunctionName=self.functions[function],
            InvocationType="RequestResponse",
            Payload=json.dumps(event, ensure_ascii=False).encode("utf-8"),
            ClientContext=base64.b64encode(marker).decode("ascii"),
        )
        payload = response["Payload"].read()
        reply = json.loads(payload) if payload else None
        error = str(response.get("FunctionError", ""))
        if error:
            kind = reply.get("errorType", "") if isinstance(reply, Mapping) else ""
            return Invocation(reply, f"{error}: {kind}" if kind else error)
        return Invocation(reply)


class LocalStackTarget:
    """The moto stack of the local runner: functions run in-process."""

    wait_seconds = 0  # moto answers from one place; a long poll would wait on a frozen test clock

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.quarantine_url = stack.queue_url("QuarantineQueue")

    def has_function(self, function: str) -> bool:
        return function in QUARANTINING_FUNCTIONS and function in self.stack.logical_ids("AWS::Lambda::Function")

    def invoke(self, function: str, event: Mapping[str, Any]) -> Invocation:
        try:
            reply = invoke(self.stack, function, event, client_custom={REPLAY_MARKER: "dunning replay"})
        except Exception as exc:  # what Lambda reports as FunctionError: Unhandled
            return Invocation(None, f"Unhandled: {type(exc).__name__}")
        return Invocation(reply)
