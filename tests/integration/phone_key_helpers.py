"""The stack's own phone hashing, for tests that look for items about a number in StateTable."""

from __future__ import annotations

import boto3

from dunning.dal.phone_keys import PhoneKeys
from dunning.dal.state import StateRepository
from dunning_tools.local import LocalStack


def phone_partition(stack: LocalStack, phone: str) -> str:
    """`PHONEHASH#h`: the StateTable partition the functions key this number's items by."""
    key = stack.function_environment("LoanEventsFunction")["PHONE_HASH_KEY"]
    return PhoneKeys(stack.physical_id("StateTable"), key).partition(phone)


def opted_out(stack: LocalStack, phone: str) -> bool:
    """The number's opt-out item exists, under its hashed key."""
    key = {"pk": {"S": phone_partition(stack, phone)}, "sk": {"S": "OPTOUT"}}
    return "Item" in boto3.client("dynamodb").get_item(TableName=stack.physical_id("StateTable"), Key=key)


def state_repository(stack: LocalStack) -> StateRepository:
    """StateTable as the functions build it: phone numbers keyed by the stack's hash key."""
    key = stack.function_environment("LoanEventsFunction")["PHONE_HASH_KEY"]
    table = stack.physical_id("StateTable")
    return StateRepository(table, PhoneKeys(table, key))
