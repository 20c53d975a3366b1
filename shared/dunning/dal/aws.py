"""boto3 clients, built lazily and once per container (and per endpoint, for the local runner), and the
two DynamoDB patterns every repository shares: a batch read that finishes its `UnprocessedKeys`
(`batch_get`) and a write whose failed condition is an answer, not an error (`conditional_write`).

The clients are typed with the boto3-stubs packages (`mypy_boto3_*`), imported for the type checker
only: the Lambda runtime does not need them.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any, TypeAlias, TypedDict, cast

import boto3
from boto3.dynamodb.types import DYNAMODB_CONTEXT, TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import (
        AttributeValueTypeDef,
        KeysAndAttributesTypeDef,
        TransactWriteItemTypeDef,
        UniversalAttributeValueTypeDef,
    )
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

    # An item as DynamoDB stores it (attribute values) and a key or item as the SDK takes it.
    RawItem: TypeAlias = dict[str, AttributeValueTypeDef]
    Key: TypeAlias = Mapping[str, UniversalAttributeValueTypeDef]
    Write: TypeAlias = TransactWriteItemTypeDef

    class CancellationReason(TypedDict, total=False):
        """One entry's reason in a cancelled TransactWriteItems (`Item`: with ALL_OLD, the item as found)."""

        Code: str
        Message: str
        Item: RawItem


_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

# Publish must never be retried by the SDK: a retry after a lost response is a second SMS.
NO_RETRY = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=3, read_timeout=10)
STANDARD = Config(retries={"max_attempts": 4, "mode": "standard"})

BATCH_GET_KEYS = 100  # BatchGetItem's limit on keys per call, all tables together
BATCH_GET_ATTEMPTS = 6  # calls for one page of keys before its UnprocessedKeys are an error
BACKOFF_BASE_SECONDS = 0.05  # full jitter: sleep uniform(0, min(cap, base * 2**n)) before retry n
BACKOFF_CAP_SECONDS = 1.0


# ---------------------------------------------------------------- clients
def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


@cache
def _session(region: str, endpoint: str) -> boto3.session.Session:
    """One session per region and endpoint (botocore reads the endpoint from env): its loader reads the SDK's
    data (endpoints, service models) once for all clients. A session per client read it per client: some
    80 ms of a cold start each (issue 11: cold init)."""
    return boto3.session.Session(region_name=region)


@cache
def _client(service: str, region: str, endpoint: str, config: Config) -> Any:
    return _session(region, endpoint).client(service, region_name=region, config=config)  # type: ignore[call-overload]


_CLIENTS = threading.Lock()  # a session is not safe to create clients from in two threads at once


def client(service: str, config: Config | None = None) -> Any:
    """Any service's cached client, untyped: for tooling (`dunning_tools`); runtime code uses the typed accessors."""
    with _CLIENTS:
        return _client(service, _region(), os.environ.get("AWS_ENDPOINT_URL", ""), config or STANDARD)


def dynamodb() -> DynamoDBClient:
    return cast("DynamoDBClient", client("dynamodb"))


def sqs() -> SQSClient:
    return cast("SQSClient", client("sqs"))


def sns(config: Config = STANDARD) -> SNSClient:
    """SNS; Publish passes `NO_RETRY`."""
    return cast("SNSClient", client("sns", config))


def events() -> EventBridgeClient:
    return cast("EventBridgeClient", client("events"))


def s3() -> S3Client:
    return cast("S3Client", client("s3"))


def cloudformation() -> CloudFormationClient:
    return cast("CloudFormationClient", client("cloudformation"))


def kms() -> KMSClient:
    return cast("KMSClient", client("kms"))


def reset_clients() -> None:
    with _CLIENTS:
        _client.cache_clear()
        _session.cache_clear()


# ---------------------------------------------------------------- items
def to_item(values: Mapping[str, Any], names: Iterable[str] | None = None) -> RawItem:
    """Python values (Decimal for numbers) to a DynamoDB item; None values are left out; with `names`, only those.

    A str is {"S": value} as TypeSerializer makes it, without its chain of type tests, and a Decimal {"N": ...}
    (`_attribute`): most attributes are strings, and the planner serialises every job line's loan (issue 11:
    planning CPU per loan). The two comprehensions are one: a helper call per attribute would cost what they save."""
    if names is None:
        return {
            key: {"S": value} if type(value) is str else _attribute(value)
            for key, value in values.items()
            if value is not None
        }
    return {
        key: {"S": value} if type(value) is str else _attribute(value)
        for key in names
        if (value := values.get(key)) is not None
    }


def _attribute(value: Any) -> AttributeValueTypeDef:
    """TypeSerializer's attribute value; a Decimal's as its `_serialize_n` makes it (DynamoDB's 38-digit context,
    which raises rather than round; no Infinity or NaN), without the type tests before it."""
    if type(value) is Decimal:
        number = str(DYNAMODB_CONTEXT.create_decimal(value))
        if number in ("Infinity", "NaN"):
            raise TypeError("Infinity and NaN not supported")
        return {"N": number}
    return _serializer.serialize(value)


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB item (attribute values, as read or as carried in a job) to Python values."""
    return {key: _deserializer.deserialize(value) for key, value in item.items()}


def query_items(**request: Any) -> Iterator[dict[str, Any]]:
    """Every item of a DynamoDB Query, page after page, as Python values."""
    for page in dynamodb().get_paginator("query").paginate(**request):
        for item in page.get("Items", []):
            yield from_item(item)


# ---------------------------------------------------------------- one batch read
class BatchGetIncomplete(RuntimeError):
    """DynamoDB still left keys unprocessed after every retry: the caller's read failed as a whole."""


def batch_get(
    table: str,
    keys: Sequence[Key],
    *,
    projection: str | None = None,
    names: Mapping[str, str] | None = None,
    consistent: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> list[RawItem]:
    """The items of `keys` that exist (each key once, in no particular order), as stored.

    BatchGetItem, 100 keys a call; its `UnprocessedKeys` are asked again with exponential backoff
    and full jitter, `BATCH_GET_ATTEMPTS` calls at most, then `BatchGetIncomplete`.
    """
    return batch_get_tables({table: keys}, projection=projection, names=names, consistent=consistent, sleep=sleep)[
        table
    ]


def batch_get_tables(
    reads: Mapping[str, Sequence[Key]],
    *,
    projection: str | None = None,
    names: Mapping[str, str] | None = None,
    consistent: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, list[RawItem]]:
    """`batch_get` over several tables at once (their keys share the calls); items by table."""
    found: dict[str, list[RawItem]] = {table: [] for table in reads}
    pending = [(table, key) for table, keys in reads.items() for key in _unique(keys)]
    for start in range(0, len(pending), BATCH_GET_KEYS):
        request: dict[str, KeysAndAttributesTypeDef] = {}
        for table, key in pending[start : start + BATCH_GET_KEYS]:
            request.setdefault(table, _keys_and_attributes(projection, names, consistent))
            request[table]["Keys"].append(key)  # type: ignore[attr-defined]  # a list built here
        _read_page(request, found, sleep)
    return found


def _keys_and_attributes(
    projection: str | None, names: Mapping[str, str] | None, consistent: bool
) -> KeysAndAttributesTypeDef:
    keys: KeysAndAttributesTypeDef = {"Keys": [], "ConsistentRead": consistent}
    if projection is not None:
        keys["ProjectionExpression"] = projection
    if names:
        keys["ExpressionAttributeNames"] = names
    return keys


def _read_page(
    request: Mapping[str, KeysAndAttributesTypeDef], found: dict[str, list[RawItem]], sleep: Callable[[float], None]
) -> None:
    for attempt in range(BATCH_GET_ATTEMPTS):
        if attempt:
            sleep(random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt)))
        response = dynamodb().batch_get_item(RequestItems=request)
        for table, items in response.get("Responses", {}).items():
            found.setdefault(table, []).extend(items)
        unprocessed = response.get("UnprocessedKeys") or {}
        if not unprocessed:
            return
        request = unprocessed  # type: ignore[assignment]  # the output shape of the same request
    left = {table: len(keys["Keys"]) for table, keys in request.items()}
    raise BatchGetIncomplete(f"BatchGetItem left keys unprocessed after {BATCH_GET_ATTEMPTS} calls: {left}")


def _unique(keys: Sequence[Key]) -> list[Key]:
    """Each key once: BatchGetItem refuses a request that names an item twice."""
    return list({repr(sorted((name, repr(value)) for name, value in key.items())): key for key in keys}.values())


# ---------------------------------------------------------------- one conditional write
@dataclass(frozen=True)
class Written:
    """What a conditional write did: `ok` when written; `item` the item as found when its condition
    failed (None: there was none), or as written when the write asked for it (`return_new`)."""

    ok: bool
    item: dict[str, Any] | None = None


def is_conditional_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def cancellation_reasons(exc: ClientError) -> list[CancellationReason]:
    """The reasons of a cancelled TransactWriteItems, one per entry in order; [] for any other error."""
    if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return []
    return cast("list[CancellationReason]", exc.response.get("CancellationReasons") or [])


def conditional_write(write: Write, *, return_new: bool = False) -> Written:
    """Run one write given in the TransactWriteItems shape (`{"Put"|"Update"|"Delete": request}`) on its own.

    A failed condition is an answer, not an error: `Written(False, item as found)`, read by the same
    call (`ReturnValuesOnConditionCheckFailure: ALL_OLD`). Every other error raises.
    """
    db = dynamodb()
    try:
        if "Put" in write:
            put = write["Put"].copy()
            put["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
            db.put_item(**put)
            return Written(True)
        if "Delete" in write:
            delete = write["Delete"].copy()
            delete["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
            db.delete_item(**delete)
            return Written(True)
        if "Update" in write:
            update = write["Update"].copy()
            update["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
            if not return_new:
                db.update_item(**update)
                return Written(True)
            return Written(True, from_item(db.update_item(**update, ReturnValues="ALL_NEW")["Attributes"]))
    except ClientError as exc:
        if not is_conditional_failure(exc):
            raise
        old: RawItem | None = exc.response.get("Item")  # type: ignore[assignment]  # ALL_OLD: the item as found
        return Written(False, from_item(old) if old else None)
    raise ValueError(f"not a single write (Put, Update or Delete): {sorted(write)}")
