"""A stand-in DynamoDB stream consumer for `drain_stream`'s own tests: each item's `command` says what to do.

`ok` (or none) succeeds, `fail` is reported in `batchItemFailures` (by its SequenceNumber),
`raise` makes the invocation raise, `bad_identifier` reports an empty identifier.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

# What each invocation saw, for the tests to inspect (a warm container keeps module state).
CALLS: list[dict[str, Any]] = []


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    CALLS.append(event)
    failures: list[dict[str, str]] = []
    for record in event["Records"]:
        command = record["dynamodb"].get("NewImage", {}).get("command", {}).get("S", "ok")
        if command == "raise":
            raise RuntimeError("asked to raise")
        if command == "fail":
            failures.append({"itemIdentifier": record["dynamodb"]["SequenceNumber"]})
        if command == "bad_identifier":
            failures.append({"itemIdentifier": ""})
    return {"batchItemFailures": failures}
