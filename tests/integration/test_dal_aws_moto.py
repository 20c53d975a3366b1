"""`batch_get` and `conditional_write` against moto's real DynamoDB (one table, no stack): paging over
BatchGetItem's 100-key limit, duplicate and missing keys, several tables in one read, projections; conditions
that hold and fail, with the item as found. The retry on UnprocessedKeys: tests/unit/test_dal_aws.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from dunning.dal import aws


def _table(name: str) -> None:
    boto3.client("dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def key(n: int) -> dict[str, Any]:
    return {"pk": {"S": f"LOAN#{n}"}, "sk": {"S": "CONTROL"}}


@pytest.fixture
def tables(moto_aws: None) -> Iterator[None]:
    aws.reset_clients()
    for name in ("State", "Other"):
        _table(name)
    db = boto3.client("dynamodb")
    for n in range(250):
        db.put_item(TableName="State", Item={**key(n), "n": {"N": str(n)}, "secret": {"S": "x"}})
    db.put_item(TableName="Other", Item={**key(7), "n": {"N": "-7"}})
    yield
    aws.reset_clients()


def test_batch_get_reads_every_existing_key_once_over_several_calls(tables: None) -> None:
    calls: list[int] = []
    db = aws.dynamodb()
    count = lambda params, **_: calls.append(len(params["RequestItems"]["State"]["Keys"]))  # noqa: E731
    db.meta.events.register("provide-client-params.dynamodb.BatchGetItem", count)
    try:
        keys = [key(n) for n in range(260)] + [key(3), key(3)]  # 10 absent, one asked three times
        found = aws.batch_get("State", keys)
    finally:
        db.meta.events.unregister("provide-client-params.dynamodb.BatchGetItem", count)

    assert sorted(int(i["n"]["N"]) for i in found) == list(range(250))
    assert calls == [100, 100, 60]  # each key once, 100 a call


def test_batch_get_tables_shares_calls_and_sorts_items_by_table(tables: None) -> None:
    found = aws.batch_get_tables({"State": [key(7), key(8)], "Other": [key(7), key(8)]})
    assert sorted(i["n"]["N"] for i in found["State"]) == ["7", "8"]
    assert [i["n"]["N"] for i in found["Other"]] == ["-7"]


def test_batch_get_projects_only_what_is_asked(tables: None) -> None:
    (item,) = aws.batch_get("State", [key(1)], projection="pk, #n", names={"#n": "n"})
    assert item == {"pk": {"S": "LOAN#1"}, "n": {"N": "1"}}


def test_batch_get_of_nothing_makes_no_call(tables: None) -> None:
    assert aws.batch_get("State", []) == []


def test_conditional_write_answers_with_the_item_as_found(tables: None) -> None:
    put: aws.Write = {
        "Put": {
            "TableName": "State",
            "Item": {**key(900), "v": {"S": "first"}},
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }
    assert aws.conditional_write(put) == aws.Written(True)
    second: aws.Write = {
        "Put": {
            "TableName": "State",
            "Item": {**key(900), "v": {"S": "second"}},
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }
    assert aws.conditional_write(second) == aws.Written(False, {"pk": "LOAN#900", "sk": "CONTROL", "v": "first"})

    update: aws.Write = {
        "Update": {
            "TableName": "State",
            "Key": key(900),
            "UpdateExpression": "SET v = :new",
            "ConditionExpression": "v = :old",
            "ExpressionAttributeValues": {":new": {"S": "third"}, ":old": {"S": "first"}},
        }
    }
    assert aws.conditional_write(update, return_new=True) == aws.Written(
        True, {"pk": "LOAN#900", "sk": "CONTROL", "v": "third"}
    )
    assert aws.conditional_write(update).ok is False  # v is no longer "first"
