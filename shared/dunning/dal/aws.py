"""boto3 clients, built lazily and once per container (and per endpoint, for the local runner)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import cache
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

# Publish must never be retried by the SDK: a retry after a lost response is a second SMS.
NO_RETRY = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=3, read_timeout=10)
STANDARD = Config(retries={"max_attempts": 4, "mode": "standard"})


def client(service: str, config: Config | None = None) -> Any:
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return _client(service, region, os.environ.get("AWS_ENDPOINT_URL", ""), config or STANDARD)


@cache
def _client(service: str, region: str, endpoint: str, config: Config) -> Any:
    session: Any = boto3.session.Session()  # endpoint is part of the cache key; botocore reads it from env
    return session.client(service, region_name=region, config=config)


def reset_clients() -> None:
    _client.cache_clear()


def query_items(**request: Any) -> Iterator[dict[str, Any]]:
    """Every item of a DynamoDB Query, page after page, as Python values."""
    for page in client("dynamodb").get_paginator("query").paginate(**request):
        for item in page.get("Items", []):
            yield from_item(item)


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    """Python values (Decimal for numbers) to a DynamoDB item; None values are left out."""
    return {key: _serializer.serialize(value) for key, value in values.items() if value is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {key: _deserializer.deserialize(value) for key, value in item.items()}
