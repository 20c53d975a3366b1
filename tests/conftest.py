"""Shared fixtures: fake AWS credentials, moto (in-process or over HTTP), the local stack, a Lambda context.

- `aws_credentials`: fake credentials and region in the environment, no endpoint override.
- `moto_aws`: moto in-process (`mock_aws`, executing state machines) for the test; nothing can reach AWS.
- `local_stack`: template.yaml deployed into `moto_aws` (a fresh stack per test).
- `moto_server`: moto over HTTP (executing state machines); `AWS_ENDPOINT_URL` points at it and it starts empty.
- `lambda_context`: a `FakeLambdaContext` (Powertools `LambdaContext` subclass).
- `seed_loans`: writes LoansTable items (upstream's side of the contract) into `local_stack`, then
  drains LoansTable's stream into LoanChangesFunction (which keeps the ladder index the planner reads).
- `run_hours`: the hourly schedule driven by hand: the stream drained, SNS's opt-out list synced, the planner
  fired, the queue drained.
- `opt_out_at_sns(stack, *phones)`: numbers on SNS's own opt-out list (the sync copies them).
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest
import time_machine
from moto import mock_aws
from moto.server import ThreadedMotoServer

from dunning_tools.local import (
    EXECUTE_STATE_MACHINES,
    FakeLambdaContext,
    LocalStack,
    deploy_stack,
    drain_queue,
    drain_stream,
    enable_execution_over_http,
    invoke,
)

REGION = "us-east-1"
EVENTS_DIR = Path(__file__).resolve().parents[1] / "events"


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials, a fixed region, and no profile or endpoint that could reach real AWS."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


@pytest.fixture
def moto_aws(aws_credentials: None) -> Iterator[None]:
    """moto in-process for the test's duration, starting empty; it executes state machines (run_schedule)."""
    with mock_aws(config=EXECUTE_STATE_MACHINES):
        yield


@pytest.fixture
def local_stack(moto_aws: None) -> LocalStack:
    """template.yaml deployed as stack `dunning-local` in moto (~0.5 s CPU once warm, ~4 s for the first)."""
    return deploy_stack()


@pytest.fixture(scope="session")
def _moto_server_url() -> Iterator[str]:
    # One server per session: starting is cheap, but stopping waits for its poll loop.
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    enable_execution_over_http(f"http://{host}:{port}")
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def moto_server(aws_credentials: None, _moto_server_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """moto over HTTP, emptied for this test; every boto3 client in the process talks to it."""
    with urllib.request.urlopen(urllib.request.Request(f"{_moto_server_url}/moto-api/reset", method="POST")):
        pass
    monkeypatch.setenv("AWS_ENDPOINT_URL", _moto_server_url)
    return _moto_server_url


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    """The context a 60-second, 512 MB function would get."""
    return FakeLambdaContext("dunning-test-function", memory_limit_in_mb=512, timeout_seconds=60)


def scheduled_event(at: dt.datetime) -> dict[str, Any]:
    """events/scheduled_plan.json with `time` set to `at`, as the Scheduler fills `<aws.scheduler.scheduled-time>`."""
    event: dict[str, Any] = json.loads((EVENTS_DIR / "scheduled_plan.json").read_text(encoding="utf-8"))
    event["time"] = at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return event


@pytest.fixture
def seed_loans(local_stack: LocalStack) -> Callable[..., None]:
    """`seed_loans(item, ...)`: put LoansTable items as given (Decimals, strings: whatever upstream writes),
    then hand the stream to LoanChangesFunction as Lambda's poller would (the ladder index follows)."""
    table = boto3.resource("dynamodb", region_name=local_stack.region).Table(local_stack.physical_id("LoansTable"))

    def seed(*items: Mapping[str, Any], drain: bool = True) -> None:
        with table.batch_writer() as batch:
            for item in items:
                batch.put_item(Item=dict(item))
        if drain:  # off for tests of the stream itself
            drain_stream(local_stack)

    return seed


RunHours = Callable[..., list[Any]]


def opt_out_at_sns(stack: LocalStack, *phones: str) -> None:
    """Put numbers on SNS's own opt-out list (what ListPhoneNumbersOptedOut reports: STOP replied to SNS)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sns import sns_backends

    listed = sns_backends[DEFAULT_ACCOUNT_ID][stack.region].opt_out_numbers
    listed.extend(phone for phone in phones if phone not in listed)


@pytest.fixture
def run_hours() -> RunHours:
    """`run_hours(stack, start, hours, fires=2)`: for each hour from `start`, drain LoansTable's stream (what
    upstream wrote since reaches the ladder index), sync SNS's opt-out list, fire the planner `fires` times
    with that hour's scheduled event, then drain the queue into SendRemindersFunction, all under a clock frozen
    at the scheduled hour (the sender's "now"). Returns the planner's reports in order.

    A drain leaves the queue empty (failures are retried until the DLQ takes them), so an hour whose
    runs enqueued nothing has nothing to drain and skips it: moto calls are what make this slow."""

    def run(stack: LocalStack, start: dt.datetime, hours: int, fires: int = 2) -> list[Any]:
        reports: list[Any] = []
        for n in range(hours):
            at = start + dt.timedelta(hours=n)
            with time_machine.travel(at, tick=False):
                drain_stream(stack)
                if "SyncOptOutsFunction" in stack.logical_ids("AWS::Lambda::Function"):
                    invoke(stack, "SyncOptOutsFunction", scheduled_event(at))  # SNS's opt-out list, hourly
                fired = [invoke(stack, "PlanRemindersFunction", scheduled_event(at)) for _ in range(fires)]
                reports.extend(fired)
                if any(report.get("jobs_enqueued", 0) for report in fired):
                    drain_queue(stack)
        return reports

    return run
