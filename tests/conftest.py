"""Shared fixtures: fake AWS credentials, moto (in-process or over HTTP), the local stack, a Lambda context.

- `aws_credentials`: fake credentials and region in the environment, no endpoint override.
- `moto_aws`: moto in-process (`mock_aws`) for the test; nothing can reach AWS.
- `local_stack`: template.yaml deployed into `moto_aws` (a fresh stack per test).
- `moto_server`: moto over HTTP; `AWS_ENDPOINT_URL` points at it and it starts empty.
- `lambda_context`: a `FakeLambdaContext` (Powertools `LambdaContext` subclass).
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest
from moto import mock_aws
from moto.server import ThreadedMotoServer

from dunning.local import FakeLambdaContext, LocalStack, deploy_stack

REGION = "us-east-1"


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
    """moto in-process for the test's duration, starting empty."""
    with mock_aws():
        yield


@pytest.fixture
def local_stack(moto_aws: None) -> LocalStack:
    """template.yaml deployed as stack `dunning-local` in moto (~0.3 s once warm)."""
    return deploy_stack()


@pytest.fixture(scope="session")
def _moto_server_url() -> Iterator[str]:
    # One server per session: starting is cheap, but stopping waits for its poll loop.
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
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
