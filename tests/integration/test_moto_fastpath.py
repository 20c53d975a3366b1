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
        ("Transaction writes", lambda: client.transact_write_items(TransactItems=_transaction(client, "OPEN"))),
        ("Table after the transaction", lambda: _table(client)),
        (
            "Transaction cancelled",
            lambda: _refused(lambda: client.transact_write_items(TransactItems=_transaction(client, "PAID"))),
        ),
        ("Table after the cancelled transaction", lambda: _table(client)),
        (
            "Transaction refused by moto half-way",
            lambda: _refused(lambda: client.transact_write_items(TransactItems=_half_way())),
        ),
        ("Table after the refused transaction", lambda: _table(client)),
        (
            "Transaction twice on one item",
            lambda: _refused(
                lambda: client.transact_write_items(
                    TransactItems=[
                        {"Put": {"TableName": TABLE, "Item": ITEMS[5]}},
                        {"Delete": {"TableName": TABLE, "Key": _key(5)}},
                    ]
                )
            ),
        ),
    ]


def _key(n: int) -> dict[str, Any]:
    return {"pk": ITEMS[n]["pk"], "sk": ITEMS[n]["sk"]}


def _transaction(client: Any, status: str) -> list[dict[str, Any]]:
    """Put, Update, Delete and ConditionCheck; the checks hold only while L006 and L007 are `status`."""
    check = {"ConditionExpression": "#s = :s", "ExpressionAttributeNames": {"#s": "status"}}
    return [
        {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "NEW"}, "sk": {"S": "2026-12-31"}, "status": {"S": "OPEN"}}}},
        {
            "Update": {
                "TableName": TABLE,
                "Key": _key(7),
                "UpdateExpression": "SET amount = amount + :one",
                **check,
                "ExpressionAttributeValues": {":one": {"N": "1"}, ":s": {"S": status}},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        },
        {"Delete": {"TableName": TABLE, "Key": _key(8)}},
        {
            "ConditionCheck": {
                "TableName": TABLE,
                "Key": _key(6),
                **check,
                "ExpressionAttributeValues": {":s": {"S": "PAID"}},
            }
        },
    ]


def _half_way() -> list[dict[str, Any]]:
    """Conditions that hold, then a write moto refuses (a number added to a string): nothing may stay written."""
    return [
        {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "HALF"}, "sk": {"S": "2026-12-31"}}}},
        {"Delete": {"TableName": TABLE, "Key": _key(9)}},
        {
            "Update": {
                "TableName": TABLE,
                "Key": _key(10),
                "UpdateExpression": "SET #n = #n + :one",
                "ExpressionAttributeNames": {"#n": "name"},
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            }
        },
    ]


def _refused(call: Callable[[], Any]) -> dict[str, Any]:
    from botocore.exceptions import ClientError

    try:
        call()
    except ClientError as error:
        return {"Error": error.response["Error"], "CancellationReasons": error.response.get("CancellationReasons")}
    return {"Error": None}


def _table(client: Any) -> dict[str, Any]:
    items = [i for page in client.get_paginator("scan").paginate(TableName=TABLE) for i in page["Items"]]
    return {"Items": sorted(items, key=lambda i: (i["pk"]["S"], i["sk"]["S"]))}


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
                response.pop("ResponseMetadata", None)
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
    # Transactions: written, cancelled with a reason per item, undone when moto refuses half-way.
    after = {(i["pk"]["S"], i["sk"]["S"]) for i in answers["Table after the transaction"]["Items"]}
    assert ("NEW", "2026-12-31") in after and ITEMS[8]["pk"]["S"] not in {pk for pk, _ in after}
    cancelled = answers["Transaction cancelled"]
    assert cancelled["Error"]["Code"] == "TransactionCanceledException"
    assert [r["Code"] for r in cancelled["CancellationReasons"]] == ["None", "ConditionalCheckFailed", "None", "None"]
    assert cancelled["CancellationReasons"][1]["Item"]["pk"] == ITEMS[7]["pk"]  # ALL_OLD
    assert answers["Table after the cancelled transaction"] == answers["Table after the transaction"]
    assert answers["Transaction refused by moto half-way"]["Error"]["Code"] == "ValidationException"
    assert answers["Table after the refused transaction"] == answers["Table after the transaction"]
    assert answers["Transaction twice on one item"]["Error"]["Code"] == "ValidationException"


def test_install_is_idempotent_and_uninstall_restores_moto() -> None:
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoResult

    original, original_query = DynamoResult.execute_result, Table.query
    original_transact = DynamoDBBackend.transact_write_items
    try:
        assert moto_fastpath.install()
        patched = DynamoResult.execute_result
        assert patched is not original and Table.query is not original_query
        assert DynamoDBBackend.transact_write_items is not original_transact
        assert moto_fastpath.install()
        assert DynamoResult.execute_result is patched
    finally:
        moto_fastpath.uninstall()
    assert (DynamoResult.execute_result, Table.query) == (original, original_query)
    assert DynamoDBBackend.transact_write_items is original_transact
