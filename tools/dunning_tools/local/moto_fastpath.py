"""A faster way for moto to answer DynamoDB calls, for long local simulations.

Two costs of moto 5.2 that grow with a simulation, and what `install()` does about them:

- Serialisation. moto walks the botocore output shape value by value; for the item-carrying
  calls that costs about 1.6 ms per item returned (a Query of 300 loans: 480 ms). Yet for
  those calls moto's result is already the DynamoDB JSON wire form (`{"S": ...}`), so
  `json.dumps` of it is the same body. Anything plain JSON cannot carry (binary attributes,
  timestamps) still goes through moto's own serialiser.
- Query candidates. moto's Query sorts the whole table, then compares the key of every item,
  both through its typed comparison (~5 us a comparison): a table of 3,000 delivery records
  makes every Query ~40 ms. The patch hands moto's own Query only the items that can
  match: the partition for a table Query, the items whose index key strings are equal for an
  index Query. moto then does all it did before (conditions, sort, pages, projection, filters).
  Only string keys are narrowed (string equality is exact); other keys take moto's full path.

- Transactions. moto's TransactWriteItems deep-copies every table a transaction touches, once
  per item of the transaction, to roll back on failure: a 50-item transaction on a table of 300
  items cost ~0.6 s, and the cost grows with the table, so a 40-day demo never ends (moto 5.2.5
  and moto's main branch of 2026-08 alike: `DynamoDBBackend.transact_write_items`). The patch
  does what DynamoDB documents instead: it evaluates every condition against the state before
  the transaction, cancels with one reason per item if any fails (nothing written), and applies
  the writes otherwise, restoring only the items it touched if moto refuses a write half-way.

Only the demo and the local server install it (`with installed():`); tests run on stock moto,
and `tests/integration/test_moto_fastpath.py` checks both give the same responses and leave the
same table.
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
_ORIGINAL_QUERY = "_dunning_original_query"
# Table.query(hash_key, range_comparison, range_objs, limit, start_key, forward, projection, index_name, ...)
_INDEX_NAME_POSITION = 7
_ORIGINAL_TRANSACT = "_dunning_original_transact_write_items"
_TRANSACT_OPERATIONS = frozenset({"ConditionCheck", "Put", "Delete", "Update"})


def install() -> bool:
    """Patch moto's DynamoDB serialisation and Query; False (and nothing changed) when moto has no such hooks."""
    try:
        from moto.dynamodb.models import DynamoDBBackend
        from moto.dynamodb.models.table import Table
        from moto.dynamodb.responses import DynamoResult
    except ImportError:
        return False
    if hasattr(DynamoResult, _ORIGINAL):
        return True
    original = getattr(DynamoResult, "execute_result", None)
    original_query = getattr(Table, "query", None)
    original_transact = getattr(DynamoDBBackend, "transact_write_items", None)
    if original is None or original_query is None or original_transact is None or not hasattr(Table, "all_items"):
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

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = args[_INDEX_NAME_POSITION - 1] if len(args) >= _INDEX_NAME_POSITION else kwargs.get("index_name")
        candidates = _candidates(self, hash_key, index_name, kwargs.get("hash_key_conditions"))
        if candidates is None:
            return original_query(self, hash_key, *args, **kwargs)
        self.all_items = lambda: candidates  # moto's Query reads the table through all_items()
        try:
            return original_query(self, hash_key, *args, **kwargs)
        finally:
            del self.all_items

    setattr(DynamoResult, _ORIGINAL, original)
    setattr(DynamoResult, "execute_result", execute_result)  # noqa: B010 (a patch, on purpose)
    setattr(Table, _ORIGINAL_QUERY, original_query)
    setattr(Table, "query", query)  # noqa: B010
    setattr(DynamoDBBackend, _ORIGINAL_TRANSACT, original_transact)
    setattr(DynamoDBBackend, "transact_write_items", _transact_write_items)  # noqa: B010
    return True


def _transact_write_items(backend: Any, transact_items: list[dict[str, Any]]) -> None:
    """TransactWriteItems as DynamoDB documents it, without copying whole tables."""
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    operations: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    targets: set[tuple[str, str]] = set()
    for entry in transact_items:
        if len(entry) > 1:
            raise TransactWriteSingleOpException
        kind, operation = next(iter(entry.items()))
        if kind not in _TRANSACT_OPERATIONS:
            raise ValueError("Unsupported transaction operation")
        key = _key_of(backend.get_table(operation["TableName"]), kind, operation)
        target = (str(operation["TableName"]), str(dict(sorted(key.items()))))
        if target in targets:
            raise MultipleTransactionsException()
        targets.add(target)
        operations.append((kind, operation, key))

    reasons: list[tuple[str | None, str | None, dict[str, Any] | None]] = []
    for _, operation, key in operations:
        current = backend.get_item(operation["TableName"], key)
        condition = operation.get("ConditionExpression")
        if condition is None or get_filter_expression(
            condition, operation.get("ExpressionAttributeNames"), operation.get("ExpressionAttributeValues")
        ).expr(current):
            reasons.append((None, None, None))
            continue
        old = None
        if operation.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
            old = current.to_json()["Attributes"]
        reasons.append(("ConditionalCheckFailed", "The conditional request failed", old))
    if any(code is not None for code, _, _ in reasons):
        raise TransactionCanceledException(reasons)

    before = [
        (operation["TableName"], key, backend.get_item(operation["TableName"], key)) for _, operation, key in operations
    ]
    try:
        for kind, operation, key in operations:
            _apply(backend, kind, operation, key)
    except Exception:
        for table_name, key, item in before:
            _restore(backend.get_table(table_name), key, item)
        raise


def _key_of(table: Any, kind: str, operation: dict[str, Any]) -> dict[str, Any]:
    if kind != "Put":
        return dict(operation["Key"])
    attributes = operation["Item"]
    key = {table.hash_key_attr: attributes[table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = attributes[table.range_key_attr]
    return key


def _apply(backend: Any, kind: str, operation: dict[str, Any], key: dict[str, Any]) -> None:
    table_name = operation["TableName"]
    names, values = operation.get("ExpressionAttributeNames"), operation.get("ExpressionAttributeValues")
    if kind == "Put":
        backend.put_item(
            table_name, operation["Item"], expression_attribute_names=names, expression_attribute_values=values
        )
    elif kind == "Delete":
        backend.delete_item(table_name, key, expression_attribute_names=names, expression_attribute_values=values)
    elif kind == "Update":
        backend.update_item(
            table_name,
            key,
            update_expression=operation["UpdateExpression"],
            expression_attribute_names=names,
            expression_attribute_values=values,
        )


def _restore(table: Any, key: dict[str, Any], item: Any) -> None:
    """Put back the item a half-applied transaction found (None: there was none)."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    hash_value = DynamoType(key[table.hash_key_attr])
    if table.range_key_attr is None:
        if item is None:
            table.items.pop(hash_value, None)
        else:
            table.items[hash_value] = item
        return
    range_value = DynamoType(key[table.range_key_attr])
    if item is None:
        table.items.get(hash_value, {}).pop(range_value, None)
    else:
        table.items[hash_value][range_value] = item


def _candidates(table: Any, hash_key: Any, index_name: str | None, conditions: Any) -> list[Any] | None:
    """The items that can match the Query's key, or None to let moto look at every item."""
    if not index_name:
        if hash_key is None or hash_key.type != "S":
            return None
        partition = table.items.get(hash_key)
        if partition is None:
            return []
        return list(partition.values()) if table.range_key_attr else [partition]
    if not conditions or any(value.type != "S" for _, value in conditions):
        return None
    wanted = [(name, value.value) for name, value in conditions]
    # Not table.all_items(): that sorts the whole table first; moto sorts what matches anyway.
    partitions = table.items.values()
    items = (i for p in partitions for i in p.values()) if table.range_key_attr else partitions
    found = []
    for item in items:
        attrs = item.attrs
        for name, value in wanted:
            key = attrs.get(name)
            if key is None or key.type != "S" or key.value != value:
                break
        else:
            found.append(item)
    return found


def uninstall() -> None:
    """Put moto's own serialisation back."""
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoResult

    original = getattr(DynamoResult, _ORIGINAL, None)
    if original is not None:
        setattr(DynamoResult, "execute_result", original)  # noqa: B010
        delattr(DynamoResult, _ORIGINAL)
    original_query = getattr(Table, _ORIGINAL_QUERY, None)
    if original_query is not None:
        setattr(Table, "query", original_query)  # noqa: B010
        delattr(Table, _ORIGINAL_QUERY)
    from moto.dynamodb.models import DynamoDBBackend

    original_transact = getattr(DynamoDBBackend, _ORIGINAL_TRANSACT, None)
    if original_transact is not None:
        setattr(DynamoDBBackend, "transact_write_items", original_transact)  # noqa: B010
        delattr(DynamoDBBackend, _ORIGINAL_TRANSACT)


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
