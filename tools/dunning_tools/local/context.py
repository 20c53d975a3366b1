"""A stand-in for the Lambda runtime's context object."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from aws_lambda_powertools.utilities.typing.lambda_client_context import LambdaClientContext

DEFAULT_ACCOUNT_ID = "123456789012"  # moto's default account


class FakeLambdaContext(LambdaContext):
    """What the Lambda runtime passes as `context`, with a real deadline.

    Subclasses Powertools' `LambdaContext` so handlers typed against it accept this object.
    The deadline runs on `time.monotonic`, which clock-freezing test tools leave alone,
    so `get_remaining_time_in_millis()` keeps making sense under a frozen clock.
    """

    def __init__(
        self,
        function_name: str = "dunning-local-function",
        *,
        memory_limit_in_mb: int = 512,
        timeout_seconds: float = 60,
        invoked_function_arn: str | None = None,
        region: str = "us-east-1",
        function_version: str = "$LATEST",
        client_custom: Mapping[str, Any] | None = None,
    ) -> None:
        self._function_name = function_name
        self._function_version = function_version
        self._invoked_function_arn = invoked_function_arn or (
            f"arn:aws:lambda:{region}:{DEFAULT_ACCOUNT_ID}:function:{function_name}"
        )
        self._memory_limit_in_mb = memory_limit_in_mb
        self._aws_request_id = str(uuid.uuid4())
        self._log_group_name = f"/aws/lambda/{function_name}"
        self._log_stream_name = f"{time.strftime('%Y/%m/%d')}/[{function_version}]{uuid.uuid4().hex}"
        self.timeout_seconds = timeout_seconds
        self._deadline = time.monotonic() + timeout_seconds
        # Lambda gives None without an Invoke `ClientContext`; with one, its `custom` values.
        self._client_context = _client_context(client_custom)  # type: ignore[assignment]

    def get_remaining_time_in_millis(self) -> int:  # type: ignore[override]  # the base is a static stub
        """Milliseconds left before this invocation's timeout, never negative."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _client_context(custom: Mapping[str, Any] | None) -> LambdaClientContext | None:
    if custom is None:
        return None
    context = LambdaClientContext()
    context._custom = dict(custom)
    context._env = {}
    return context
