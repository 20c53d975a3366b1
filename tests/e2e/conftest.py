"""The e2e tier: tests against a deployed stack (`make deploy`), named by AWS_SAM_STACK_NAME.

Without AWS_SAM_STACK_NAME every test here is skipped, saying so: the default `pytest` run and
`make test` never reach AWS (the Makefile's `pytest` target also unsets it). With it, `deployed_stack`
resolves the stack's physical names, outputs and parameters from CloudFormation, with the caller's
credentials and region (AWS_PROFILE, AWS_REGION, as for the AWS CLI). Point it at a staging stack:
the tests write loans into its LoansTable and start its state machines.
"""

from __future__ import annotations

import os
from pathlib import Path

import boto3
import pytest

from tests.e2e.stack import USABLE_STATUSES, DeployedStack, describe_stack

STACK_ENV = "AWS_SAM_STACK_NAME"
SKIP_REASON = f"set {STACK_ENV} to a deployed stack"
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test under tests/e2e is marked `e2e`, and skipped with the reason when no stack is named."""
    skip = None if os.environ.get(STACK_ENV) else pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.e2e)
            if skip is not None:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def deployed_stack() -> DeployedStack:
    name = os.environ[STACK_ENV]  # the collection hook skipped every test when it is unset
    region = boto3.session.Session().region_name
    if not region:
        pytest.fail(f"no AWS region for stack {name}: set AWS_REGION (or a profile's region)")
    status, stack = describe_stack(name, region)
    if status not in USABLE_STATUSES:
        pytest.fail(f"stack {name} is {status}, not deployed")
    return stack
