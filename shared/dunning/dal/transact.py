"""Many independent all-or-nothing writes in as few TransactWriteItems calls as DynamoDB allows.

A `Unit` is a list of TransactWriteItems entries that must take effect together (the claims of
one SMS and its borrower's cap, say). Units are independent of each other, so they share calls:
`write_units` sends as many units as fit in one transaction (100 entries), and when DynamoDB
cancels it because a condition failed, it learns from `CancellationReasons` which units failed,
reports them with the items found (`ReturnValuesOnConditionCheckFailure: ALL_OLD`, no extra read)
and writes the others again. Anything else (throttling, a conflict with another transaction that
persists, a validation error) raises: nothing of that call was written.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from dunning.dal.aws import cancellation_reasons, dynamodb, from_item

if TYPE_CHECKING:
    from dunning.dal.aws import CancellationReason, Write

MAX_ITEMS = 100  # TransactWriteItems' limit on actions per call
CONFLICT_ATTEMPTS = 3  # TransactionConflict (another transaction on an item): tried again, then raised


@dataclass
class Unit:
    """Writes that must succeed or fail together; `owner` tells the caller what they were for."""

    owner: Any  # the caller's own, handed back untouched
    items: list[Write]


@dataclass
class Refused:
    """A unit not written because conditions failed: entry index -> the item found (None if absent)."""

    unit: Unit
    found: dict[int, dict[str, Any] | None] = field(default_factory=dict)


def item_key(entry: Write) -> tuple[str, str]:
    """(table, key) of one TransactWriteItems entry: one transaction may name an item only once."""
    key: Mapping[str, object]
    if "Put" in entry:
        table, item = entry["Put"]["TableName"], entry["Put"]["Item"]
        key = {k: v for k, v in item.items() if k in ("pk", "sk", "loan_id", "record_id")}
    else:
        (request,) = (entry[op] for op in ("Update", "Delete", "ConditionCheck") if op in entry)
        table, key = request["TableName"], request["Key"]
    return table, repr(sorted((k, repr(v)) for k, v in key.items()))


def write_units(units: Sequence[Unit], sleep: Callable[[float], None] = time.sleep) -> list[Refused]:
    """Write every unit whose conditions hold; return the others with what their conditions found."""
    refused: list[Refused] = []
    pending = [u for u in units if u.items]
    while pending:
        chunk: list[Unit] = []
        size = 0
        for unit in pending:
            if len(unit.items) > MAX_ITEMS:
                raise ValueError(f"a unit of {len(unit.items)} writes cannot be one transaction (max {MAX_ITEMS})")
            if size + len(unit.items) > MAX_ITEMS:
                break
            chunk.append(unit)
            size += len(unit.items)
        rest = pending[len(chunk) :]
        failed = _transact(chunk, sleep)
        refused += failed
        # A cancelled call wrote nothing: the units whose conditions held go again, without the refused ones.
        bad = {id(r.unit) for r in failed}
        pending = [u for u in chunk if failed and id(u) not in bad] + rest
    return refused


def _transact(chunk: list[Unit], sleep: Callable[[float], None]) -> list[Refused]:
    entries = [entry for unit in chunk for entry in unit.items]
    delay = 0.05
    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        try:
            dynamodb().transact_write_items(TransactItems=entries)
            return []
        except ClientError as exc:
            reasons = cancellation_reasons(exc)
            if not reasons:
                raise
            codes = {str(r.get("Code") or "None") for r in reasons}
            if len(reasons) != len(entries) or not codes <= {"None", "ConditionalCheckFailed", "TransactionConflict"}:
                raise
            if "ConditionalCheckFailed" not in codes:
                if attempt == CONFLICT_ATTEMPTS:
                    raise
                sleep(delay)
                delay *= 2
                continue
            return _refused(chunk, reasons)
    raise AssertionError("unreachable")


def _refused(chunk: list[Unit], reasons: list[CancellationReason]) -> list[Refused]:
    refused: list[Refused] = []
    position = 0
    for unit in chunk:
        found: dict[int, dict[str, Any] | None] = {}
        for index in range(len(unit.items)):
            reason = reasons[position + index]
            if reason.get("Code") == "ConditionalCheckFailed":
                item = reason.get("Item")
                found[index] = from_item(item) if item else None
        position += len(unit.items)
        if found:
            refused.append(Refused(unit, found))
    return refused
