"""A faster way for moto to answer the DynamoDB item calls, for long local simulations.

moto 5.2 serialises every response by walking the botocore output shape value by value; for
DynamoDB's item-carrying calls that walk costs about 1.6 ms per item returned (a Query of 300
loans: 480 ms). Yet for those calls moto's result is already the DynamoDB JSON wire form
(`{"S": ...}`, `{"N": "..."}`, ...), so `json.dumps` of it is the same body. `install()` makes
moto's DynamoDB result do that for the operations below, and falls back to moto's own
serialiser for anything plain JSON cannot carry (binary attributes, timestamps).

Only the demo installs it (`with installed():`); tests run on stock moto, and
`tests/integration/test_moto_fastpath.py` checks both give the same responses.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

FAST_OPERATIONS = frozenset(
    {"GetItem", "BatchGetItem", "Query", "Scan", "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"}
)
_CONTENT_TYPE = "application/x-amz-json-1.0"  # DynamoDB's JSON protocol version
_ORIGINAL = "_dunning_original_execute_result"


def install() -> bool:
    """Patch moto's DynamoDB result serialisation; False (and nothing changed) when moto has no such hook."""
    try:
        from moto.dynamodb.responses import DynamoResult
    except ImportError:
        return False
    if hasattr(DynamoResult, _ORIGINAL):
        return True
    original = getattr(DynamoResult, "execute_result", None)
    if original is None:
        return False

    def execute_result(self: Any, context: Any) -> Any:
        if context.operation_model.name in FAST_OPERATIONS:
            try:
                body = json.dumps(self.result)
            except (TypeError, ValueError):
                pass  # bytes or datetimes: moto's serialiser knows how to encode them
            else:
                return 200, {"Content-Type": _CONTENT_TYPE}, body
        return original(self, context)

    setattr(DynamoResult, _ORIGINAL, original)
    setattr(DynamoResult, "execute_result", execute_result)  # noqa: B010 (a patch, on purpose)
    return True


def uninstall() -> None:
    """Put moto's own serialisation back."""
    from moto.dynamodb.responses import DynamoResult

    original = getattr(DynamoResult, _ORIGINAL, None)
    if original is not None:
        setattr(DynamoResult, "execute_result", original)  # noqa: B010
        delattr(DynamoResult, _ORIGINAL)


@contextlib.contextmanager
def installed() -> Iterator[bool]:
    """The fast path for the `with` block only (it was not there before; it is not left behind)."""
    already = _is_installed()
    active = install()
    try:
        yield active
    finally:
        if active and not already:
            uninstall()


def _is_installed() -> bool:
    try:
        from moto.dynamodb.responses import DynamoResult
    except ImportError:
        return False
    return hasattr(DynamoResult, _ORIGINAL)

