"""A stand-in SQS consumer for the local runner's own tests: each message body says what to do.

Bodies are JSON: `{}` succeeds, `{"fail": true}` is reported in `batchItemFailures`,
`{"raise": true}` makes the invocation raise, `{"bad_identifier": true}` reports an empty id,
`{"decimal": true}` puts a Decimal (which Lambda cannot serialise) in the response.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

# What each invocation saw, for the tests to inspect (a warm container keeps module state).
CALLS: list[dict[str, Any]] = []


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    CALLS.append(
        {
            "event": event,
            "context": context,
            "environment": {k: v for k, v in os.environ.items() if k.isupper()},
        }
    )
    failures: list[dict[str, str]] = []
    response: dict[str, Any] = {"batchItemFailures": failures}
    for record in event.get("Records", []):
        command = json.loads(record["body"])
        if command.get("raise"):
            raise RuntimeError("asked to raise")
        if command.get("fail"):
            failures.append({"itemIdentifier": record["messageId"]})
        if command.get("bad_identifier"):
            failures.append({"itemIdentifier": ""})
        if command.get("decimal"):
            response["amount"] = Decimal("1.50")
    return response
