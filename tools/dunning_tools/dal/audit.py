"""Operator reads for `dunning uncertain`, `reconcile` and `cases`: paginated scans, never on a Lambda path.

Scanning DeliveriesTable and StateTable is acceptable for these occasional operator tools (they read
every item once, filtered server-side); the functions themselves only ever use keys and indexes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dunning.dal.aws import cloudformation, dynamodb, from_item
from dunning.dal.cases import CASE_PREFIX

CLAIM_PREFIX = "SEND#"


def stack_tables(stack_name: str) -> dict[str, str]:
    """Physical names of the stack's tables by logical ID (`DeliveriesTable`, `StateTable`, ...)."""
    tables: dict[str, str] = {}
    pages = cloudformation().get_paginator("list_stack_resources").paginate(StackName=stack_name)
    for page in pages:
        for resource in page.get("StackResourceSummaries", []):
            if resource.get("ResourceType") == "AWS::DynamoDB::Table":
                tables[str(resource["LogicalResourceId"])] = str(resource.get("PhysicalResourceId", ""))
    return tables


def stack_outputs(stack_name: str) -> dict[str, str]:
    """The stack's outputs by key (`LoansTableName`, ...)."""
    stacks = cloudformation().describe_stacks(StackName=stack_name).get("Stacks", [])
    outputs = stacks[0].get("Outputs", []) if stacks else []
    return {str(o["OutputKey"]): str(o.get("OutputValue", "")) for o in outputs}


def _scan(table: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    for page in dynamodb().get_paginator("scan").paginate(TableName=table, **kwargs):
        for item in page.get("Items", []):
            yield from_item(item)


def scan_cases(state_table: str) -> Iterator[dict[str, Any]]:
    """Every case item of StateTable (`LOAN#id / CASE#cycle`), for `dunning cases`."""
    return _scan(
        state_table,
        FilterExpression="begins_with(sk, :case)",
        ExpressionAttributeValues={":case": {"S": CASE_PREFIX}},
    )


def records_with_outcome(deliveries_table: str, outcome: str, since: str = "") -> Iterator[dict[str, Any]]:
    """DeliveriesTable records with this outcome created at or after `since` (an ISO prefix; "" for all)."""
    return _scan(
        deliveries_table,
        FilterExpression="#o = :o AND created_at >= :since",
        ExpressionAttributeNames={"#o": "outcome"},
        ExpressionAttributeValues={":o": {"S": outcome}, ":since": {"S": since}},
    )


def send_claims(state_table: str, updated_from: str, updated_to: str) -> Iterator[dict[str, Any]]:
    """Send claims (`LOAN#id / SEND#cycle#stage`) last updated in [updated_from, updated_to) (ISO UTC)."""
    return _scan(
        state_table,
        FilterExpression="begins_with(sk, :send) AND updated_at BETWEEN :start AND :end",
        ExpressionAttributeValues={
            ":send": {"S": CLAIM_PREFIX},
            ":start": {"S": updated_from},
            ":end": {"S": updated_to},
        },
    )
