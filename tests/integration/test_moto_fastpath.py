"""The demo's faster moto DynamoDB serialisation answers exactly what stock moto answers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from dunning_tools.local import moto_fastpath

TABLE = "fastpath"
ITEMS = [
    {
        "pk": {"S": f"L{n:03d}"},
        "sk": {"S": f"2026-12-{n % 28 + 1:02d}"},
        "status": {"S": "OPEN" if n % 3 else "PAID"},
        "amount": {"N": f"{n}.05"},
        "tags": {"SS": ["a", "b"]},
        "sizes": {"NS": ["1", "2.5"]},
        "nested": {"M": {"list": {"L": [{"S": "x"}, {"N": "1"}, {"NULL": True}]}, "flag": {"BOOL": n % 2 == 0}}},
        "name": {"S": "王伟 ☎"},
        "rank": {"N": str(n % 3)},
    }
    for n in range(12)
] + [
    {"pk": {"S": "L003"}, "sk": {"S": f"2026-12-2{d}"}, "status": {"S": "OPEN"}} for d in range(3)
]  # one partition, 4 items
BINARY_ITEM = {"pk": {"S": "BIN"}, "sk": {"S": "2026-12-01"}, "blob": {"B": b"\x00\xff"}, "set": {"BS": [b"\x01"]}}


def _calls(client: Any) -> list[tuple[str, Callable[[], Any]]]:
    key = {"pk": {"S": "L004"}, "sk": {"S": "2026-12-05"}}
    return [
        ("GetItem", lambda: client.get_item(TableName=TABLE, Key=key)),
        ("GetItem missing", lambda: client.get_item(TableName=TABLE, Key={"pk": {"S": "none"}, "sk": {"S": "x"}})),
        (
            "GetItem binary",
            lambda: client.get_item(TableName=TABLE, Key={"pk": {"S": "BIN"}, "sk": {"S": "2026-12-01"}}),
        ),
        (
            "BatchGetItem",
            lambda: client.batch_get_item(
                RequestItems={TABLE: {"Keys": [key, {"pk": {"S": "none"}, "sk": {"S": "x"}}], "ConsistentRead": True}}
            ),
        ),
        (
            "Query index with page",
            lambda: client.query(
                TableName=TABLE,
                IndexName="ByStatus",
                KeyConditionExpression="#s = :s AND sk BETWEEN :a AND :b",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":s": {"S": "OPEN"}, ":a": {"S": "2026-12-02"}, ":b": {"S": "2026-12-10"}},
                Limit=3,
            ),
        ),
        (
            "Query projection",
            lambda: client.query(
                TableName=TABLE,
                KeyConditionExpression="pk = :p",
                ExpressionAttributeValues={":p": {"S": "L007"}},
                ProjectionExpression="amount, nested.flag",
            ),
        ),
        (
            "Query table range and page",
            lambda: client.query(
                TableName=TABLE,
                KeyConditionExpression="pk = :p AND sk > :s",
                ExpressionAttributeValues={":p": {"S": "L003"}, ":s": {"S": "2026-12-01"}},
                Limit=1,
                ScanIndexForward=False,
            ),
        ),
        (
            "Query missing partition",
            lambda: client.query(
                TableName=TABLE, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "none"}}
            ),
        ),
        (
            "Query index second page",
            lambda: client.query(
                TableName=TABLE,
                IndexName="ByStatus",
                KeyConditionExpression="#s = :s",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":s": {"S": "OPEN"}},
                Limit=4,
                ExclusiveStartKey={"pk": {"S": "L004"}, "sk": {"S": "2026-12-05"}, "status": {"S": "OPEN"}},
            ),
        ),
        (
            "Query index with filter",
            lambda: client.query(
                TableName=TABLE,
                IndexName="ByStatus",
                KeyConditionExpression="#s = :s",
                FilterExpression="amount > :a",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":s": {"S": "OPEN"}, ":a": {"N": "7"}},
            ),
        ),
        (
            "Query numeric index key (moto's own path)",
            lambda: client.query(
                TableName=TABLE,
                IndexName="ByRank",
                KeyConditionExpression="#r = :r",
                ExpressionAttributeNames={"#r": "rank"},
                ExpressionAttributeValues={":r": {"N": "1.0"}},
            ),
        ),
        (
            "Query count",
            lambda: client.query(
                TableName=TABLE,
                IndexName="ByStatus",
                Select="COUNT",
                KeyConditionExpression="#s = :s",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":s": {"S": "PAID"}},
            ),
        ),
        ("Scan", lambda: client.scan(TableName=TABLE, Limit=5)),
        (
            "PutItem old",
            lambda: client.put_item(TableName=TABLE, Item={**ITEMS[1], "amount": {"N": "9"}}, ReturnValues="ALL_OLD"),
        ),
        (
            "UpdateItem new",
            lambda: client.update_item(
                TableName=TABLE,
                Key=key,
                UpdateExpression="SET amount = amount + :one",
                ExpressionAttributeValues={":one": {"N": "1"}},
                ReturnValues="ALL_NEW",
            ),
        ),
        (
            "BatchWriteItem",
            lambda: client.batch_write_item(RequestItems={TABLE: [{"PutRequest": {"Item": ITEMS[2]}}]}),
        ),
        ("DeleteItem old", lambda: client.delete_item(TableName=TABLE, Key=key, ReturnValues="ALL_OLD")),
    ]


def _responses(fast: bool) -> list[tuple[str, Any]]:
    from moto import mock_aws

    if fast:
        assert moto_fastpath.install()
    try:
        with mock_aws():
            client = boto3.client("dynamodb")
            client.create_table(
                TableName=TABLE,
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                AttributeDefinitions=[
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                    {"AttributeName": "status", "AttributeType": "S"},
                    {"AttributeName": "rank", "AttributeType": "N"},
                ],
                GlobalSecondaryIndexes=[
                    {
                        "IndexName": "ByStatus",
                        "KeySchema": [
                            {"AttributeName": "status", "KeyType": "HASH"},
                            {"AttributeName": "sk", "KeyType": "RANGE"},
                        ],
                        "Projection": {"ProjectionType": "ALL"},
                    },
                    {
                        "IndexName": "ByRank",
                        "KeySchema": [{"AttributeName": "rank", "KeyType": "HASH"}],
                        "Projection": {"ProjectionType": "KEYS_ONLY"},
                    },
                ],
                BillingMode="PAY_PER_REQUEST",
            )
            for item in [*ITEMS, BINARY_ITEM]:
                client.put_item(TableName=TABLE, Item=item)
            answers = []
            for name, call in _calls(client):
                response = call()
                response.pop("ResponseMetadata")
                answers.append((name, response))
            return answers
    finally:
        moto_fastpath.uninstall()


@pytest.fixture
def credentials(aws_credentials: None) -> Iterator[None]:
    yield


def test_fast_and_stock_serialisation_give_the_same_responses(credentials: None) -> None:
    stock = _responses(fast=False)
    fast = _responses(fast=True)
    assert [name for name, _ in fast] == [name for name, _ in stock]
    for (name, expected), (_, got) in zip(stock, fast, strict=True):
        assert got == expected, name
    # The calls are not vacuous: they carry items, pages, old and new images, and a binary value.
    answers = dict(stock)
    assert answers["Query index with page"]["Count"] == 3 and "LastEvaluatedKey" in answers["Query index with page"]
    assert answers["GetItem binary"]["Item"]["blob"] == {"B": b"\x00\xff"}
    assert answers["UpdateItem new"]["Attributes"]["amount"] == {"N": "5.05"}
    table_page = answers["Query table range and page"]
    assert table_page["Count"] == 1 and "LastEvaluatedKey" in table_page
    assert answers["Query index second page"]["Count"] == 4
    assert answers["Query numeric index key (moto's own path)"]["Count"] == 4  # "1.0" equals 1 in 4 of the 12
    assert answers["Query missing partition"]["Count"] == 0


def test_install_is_idempotent_and_uninstall_restores_moto() -> None:
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoResult

    original, original_query = DynamoResult.execute_result, Table.query
    try:
        assert moto_fastpath.install()
        patched = DynamoResult.execute_result
        assert patched is not original and Table.query is not original_query
        assert moto_fastpath.install()
        assert DynamoResult.execute_result is patched
    finally:
        moto_fastpath.uninstall()
    assert (DynamoResult.execute_result, Table.query) == (original, original_query)
