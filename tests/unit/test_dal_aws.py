"""The DAL's two shared DynamoDB patterns, against botocore's Stubber (the SDK's own test tool, no network):
`batch_get` finishing UnprocessedKeys with capped exponential backoff and full jitter, and
`conditional_write` turning a failed condition into an answer; and `to_item`, TypeSerializer's values made faster.

The same helpers against moto's real BatchGetItem and conditions: tests/integration/test_dal_aws_moto.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from dunning.dal import aws

TABLE = "State"


def key(n: int) -> dict[str, Any]:
    return {"pk": {"S": f"LOAN#{n}"}, "sk": {"S": "CONTROL"}}


def item(n: int) -> dict[str, Any]:
    return {**key(n), "loan_id": {"S": str(n)}}


@pytest.fixture
def stub(aws_credentials: None) -> Iterator[Stubber]:
    """A Stubber on the cached client the DAL itself uses; every queued answer must be consumed."""
    aws.reset_clients()
    with Stubber(aws.dynamodb()) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()
    aws.reset_clients()


def request(keys: list[dict[str, Any]]) -> dict[str, Any]:
    return {"RequestItems": {TABLE: {"Keys": keys, "ConsistentRead": True}}}


def test_unprocessed_keys_are_asked_again_after_a_jittered_exponential_backoff(
    stub: Stubber, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = [key(n) for n in range(3)]
    stub.add_response(
        "batch_get_item",
        {"Responses": {TABLE: [item(0)]}, "UnprocessedKeys": {TABLE: {"Keys": keys[1:], "ConsistentRead": True}}},
        request(keys),
    )
    stub.add_response(
        "batch_get_item",
        {"Responses": {TABLE: [item(1)]}, "UnprocessedKeys": {TABLE: {"Keys": keys[2:], "ConsistentRead": True}}},
        request(keys[1:]),
    )
    stub.add_response("batch_get_item", {"Responses": {TABLE: [item(2)]}}, request(keys[2:]))
    bounds: list[tuple[float, float]] = []
    monkeypatch.setattr(aws.random, "uniform", lambda low, high: bounds.append((low, high)) or high / 2)
    slept: list[float] = []

    found = aws.batch_get(TABLE, keys, sleep=slept.append)

    assert sorted(i["pk"]["S"] for i in found) == ["LOAN#0", "LOAN#1", "LOAN#2"]
    # Full jitter: uniform(0, base * 2**attempt), the window doubling each retry; no sleep before the first call.
    assert bounds == [(0, aws.BACKOFF_BASE_SECONDS * 2), (0, aws.BACKOFF_BASE_SECONDS * 4)]
    assert slept == [high / 2 for _, high in bounds]


def test_the_backoff_window_stops_growing_at_its_cap(stub: Stubber, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = [key(0)]
    unprocessed = {"Responses": {TABLE: []}, "UnprocessedKeys": {TABLE: {"Keys": keys, "ConsistentRead": True}}}
    for _ in range(aws.BATCH_GET_ATTEMPTS - 1):
        stub.add_response("batch_get_item", unprocessed, request(keys))
    stub.add_response("batch_get_item", {"Responses": {TABLE: [item(0)]}}, request(keys))
    monkeypatch.setattr(aws, "BACKOFF_CAP_SECONDS", 0.3)
    slept: list[float] = []
    monkeypatch.setattr(aws.random, "uniform", lambda low, high: high)  # the top of each window

    assert aws.batch_get(TABLE, keys, sleep=slept.append) == [item(0)]
    assert slept == [0.1, 0.2, 0.3, 0.3, 0.3]


def test_keys_still_unprocessed_after_the_last_attempt_are_a_clear_error(stub: Stubber) -> None:
    keys = [key(0), key(1)]
    stub.add_response(
        "batch_get_item",
        {"Responses": {TABLE: [item(0)]}, "UnprocessedKeys": {TABLE: {"Keys": keys[1:], "ConsistentRead": True}}},
        request(keys),
    )
    for _ in range(aws.BATCH_GET_ATTEMPTS - 1):
        stub.add_response(
            "batch_get_item",
            {"Responses": {}, "UnprocessedKeys": {TABLE: {"Keys": keys[1:], "ConsistentRead": True}}},
            request(keys[1:]),
        )
    slept: list[float] = []

    with pytest.raises(aws.BatchGetIncomplete, match=rf"after {aws.BATCH_GET_ATTEMPTS} calls: \{{'State': 1\}}"):
        aws.batch_get(TABLE, keys, sleep=slept.append)
    assert len(slept) == aws.BATCH_GET_ATTEMPTS - 1
    assert all(0 <= s <= aws.BACKOFF_CAP_SECONDS for s in slept)


def test_an_error_of_the_call_itself_is_not_retried_here(stub: Stubber) -> None:
    """Throttling of the whole call is the SDK's standard retry mode's job; it reaches the caller unchanged."""
    stub.add_client_error("batch_get_item", "ValidationException", "Too many items requested", expected_params=None)
    with pytest.raises(ClientError, match="ValidationException"):
        aws.batch_get(TABLE, [key(0)], sleep=lambda _: pytest.fail("no backoff for a refused call"))


# ---------------------------------------------------------------- conditional_write
def put(condition: str = "attribute_not_exists(pk)") -> aws.Write:
    return {"Put": {"TableName": TABLE, "Item": item(1), "ConditionExpression": condition}}


def test_a_write_whose_condition_holds_is_ok(stub: Stubber) -> None:
    stub.add_response(
        "put_item",
        {},
        {**put()["Put"], "ReturnValuesOnConditionCheckFailure": "ALL_OLD"},
    )
    assert aws.conditional_write(put()) == aws.Written(True)


def test_a_failed_condition_is_an_answer_with_the_item_as_found(stub: Stubber) -> None:
    stub.add_client_error(
        "update_item",
        "ConditionalCheckFailedException",
        "The conditional request failed",
        response_meta=None,
        modeled_fields={"Item": {**key(1), "state": {"S": "SENT"}}},
    )
    update: aws.Write = {
        "Update": {"TableName": TABLE, "Key": key(1), "UpdateExpression": "SET #s = :s", "ConditionExpression": "x"}
    }
    assert aws.conditional_write(update) == aws.Written(False, {"pk": "LOAN#1", "sk": "CONTROL", "state": "SENT"})


def test_any_other_error_raises(stub: Stubber) -> None:
    stub.add_client_error("delete_item", "ProvisionedThroughputExceededException", "slow down")
    delete: aws.Write = {"Delete": {"TableName": TABLE, "Key": key(1), "ConditionExpression": "attribute_exists(pk)"}}
    with pytest.raises(ClientError, match="ProvisionedThroughputExceeded"):
        aws.conditional_write(delete)


def test_a_condition_check_is_not_a_write(stub: Stubber) -> None:
    check: aws.Write = {"ConditionCheck": {"TableName": TABLE, "Key": key(1), "ConditionExpression": "x"}}
    with pytest.raises(ValueError, match=r"not a single write .*\['ConditionCheck'\]"):
        aws.conditional_write(check)


VALUES: list[Any] = [
    "text",
    "",
    Decimal("3000.00"),
    Decimal("-0"),
    Decimal("1E+125"),
    Decimal("0.1234567890123456789012345678901234567"),  # 37 digits: DynamoDB's context keeps them
    7,
    True,
    b"\x00",
    ["a", Decimal(1)],
    {"a", "b"},
    {"nested": {"S": Decimal("2.5")}},
]
REFUSED: list[Any] = [
    Decimal("Infinity"),
    Decimal("NaN"),
    Decimal("1.23456789012345678901234567890123456789"),  # 39 digits: rounding would change it
    Decimal("1E+200"),
    1.5,
]


def test_to_item_makes_every_value_what_typeserializer_makes_and_refuses_what_it_refuses() -> None:
    serializer = TypeSerializer()
    values = {f"a{i}": value for i, value in enumerate(VALUES)}
    assert aws.to_item(values) == {name: serializer.serialize(value) for name, value in values.items()}
    assert aws.to_item({**values, "gone": None}, ["a2", "a0", "gone", "absent"]) == {
        "a2": {"N": "3000.00"},
        "a0": {"S": "text"},
    }
    for value in REFUSED:
        with pytest.raises(Exception) as expected:
            serializer.serialize(value)
        with pytest.raises(type(expected.value)):
            aws.to_item({"a": value})
