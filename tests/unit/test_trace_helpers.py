"""What the service's Tracer helpers let into a trace: counts, not data; exceptions without their messages."""

from __future__ import annotations

import subprocess
import sys
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools import Tracer
from aws_xray_sdk.core.models.segment import Segment
from aws_xray_sdk.core.models.subsegment import Subsegment
from botocore.exceptions import ClientError

from dunning.observability import Untraced, WithoutExceptionMessages, counts_only, tracing_enabled

PHONE = "+8613912345678"


class _Captured:
    """An emitter that keeps what it is given (the daemon's side of the UDP emitter)."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send_entity(self, entity: Any) -> None:
        self.sent.append(entity.serialize())

    def set_daemon_address(self, address: str | None) -> None:
        self.address = address


def _refused_publish() -> tuple[ClientError, list[Any]]:
    """The error SNS returns for a number it will not publish to, as botocore raises it."""
    error = ClientError(
        {
            "Error": {
                "Code": "InvalidParameter",
                "Message": f"Invalid parameter: PhoneNumber Reason: {PHONE} is not valid to publish to",
            },
            "ResponseMetadata": {"HTTPStatusCode": 400, "RequestId": "r-1"},
        },
        "Publish",
    )
    try:
        raise error
    except ClientError:
        return error, traceback.extract_stack()


def test_an_aws_error_quoting_the_number_reaches_the_daemon_without_its_message() -> None:
    captured = _Captured()
    emitter = WithoutExceptionMessages(captured)
    segment = Segment("SendRemindersFunction", traceid="1-6741a2c0-5e0f3d2b8c9a1f4e7d6b5a49")
    handler = Subsegment("## lambda_handler", "local", segment)
    publish = Subsegment("sns", "aws", segment)
    handler.add_subsegment(publish)
    error, stack = _refused_publish()
    publish.add_exception(error, stack, remote=True)
    assert PHONE in segment.serialize() or PHONE in publish.serialize()  # what X-Ray's SDK records by itself
    handler.close()
    publish.close()

    emitter.send_entity(handler)  # a batch: the subsegment with its child

    (sent,) = captured.sent
    assert PHONE not in sent and "13912345678" not in sent
    assert '"type": "ClientError"' in sent  # the type and stack still say what failed
    assert '"remote": true' in sent


def test_the_wrapped_emitter_still_takes_the_daemon_address() -> None:
    captured = _Captured()

    WithoutExceptionMessages(captured).set_daemon_address("169.254.79.129:2000")

    assert captured.address == "169.254.79.129:2000"


def test_figures_keep_counts_and_drop_everything_else() -> None:
    report = {
        "loans_read": 12,
        "suppressed": Counter({"opted_out": 2, "invalid_phone": 1}),
        "complete": True,  # a flag: annotated explicitly where it is wanted, not a count
        "cursor": "eyJwIjogM30=",
        "now": "2026-11-23T02:00:00+00:00",
        "file": "bureau/2026-11-23/delinquencies.jsonl",
        "fees": {"LN1": "12.50"},  # a map of anything but counts
        "phones": [PHONE],
        "mixed": {"sent": 1, "to": PHONE},
    }

    assert counts_only(report) == {"loans_read": 12, "suppressed": {"opted_out": 2, "invalid_phone": 1}}


# ---------------------------------------------------------------- tracing off: no X-Ray SDK at all
TRACING_ENVIRONMENTS = [
    ({}, False),  # outside Lambda
    ({"LAMBDA_TASK_ROOT": "/var/task"}, True),  # Lambda
    ({"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "false"}, True),  # template.yaml `Tracing: Active`
    ({"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "true"}, False),  # `Tracing: PassThrough`
    ({"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "1"}, False),
    ({"LAMBDA_TASK_ROOT": "/var/task", "AWS_SAM_LOCAL": "true"}, False),  # sam local invoke
    ({"LAMBDA_TASK_ROOT": "/var/task", "AWS_CHALICE_CLI_MODE": "true"}, False),
    ({"POWERTOOLS_TRACE_DISABLED": "false"}, False),  # not disabled, but outside Lambda
]


@pytest.mark.parametrize(("environment", "traced"), TRACING_ENVIRONMENTS)
def test_tracing_is_on_exactly_where_powertools_would_trace(
    environment: dict[str, str], traced: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("LAMBDA_TASK_ROOT", "POWERTOOLS_TRACE_DISABLED", "AWS_SAM_LOCAL", "AWS_CHALICE_CLI_MODE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    assert tracing_enabled(environment) is traced
    assert bool(Tracer._is_tracer_disabled()) is not traced  # Powertools' own rule agrees (a private helper)


def test_untraced_decorators_give_back_the_function_itself() -> None:
    untraced = Untraced()

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"seen": event}

    assert untraced.capture_lambda_handler(capture_response=False, capture_error=False)(handler) is handler
    assert untraced.capture_lambda_handler(handler) is handler
    assert untraced.capture_method(capture_response=False, capture_error=False)(handler) is handler
    assert untraced.capture_method(handler) is handler
    assert untraced.disabled is True
    untraced.put_annotation(key="function_stage", value="plan")  # accepted, kept nowhere
    untraced.put_metadata(key="figures", value={"loans_read": 1})


def test_a_function_without_tracing_never_imports_the_xray_sdk() -> None:
    """Every handler imported in Lambda's environment with POWERTOOLS_TRACE_DISABLED (template.yaml's `Tracing:
    PassThrough`), and each service built: no aws_xray_sdk module is loaded, and the tracer is the do-nothing one."""
    root = Path(__file__).resolve().parents[2]
    handlers = sorted(p.parent.name for p in (root / "functions").glob("*/app.py"))
    code = (
        "import sys\n"
        + "".join(f"import functions.{name}.app\n" for name in handlers)
        + "from dunning import service\nfrom dunning.settings import get_settings\n"
        + "".join(f"service.{name}(get_settings())\n" for name in ("planner", "sender", "bureau_reporter"))
        + "from dunning.observability import tracer\n"
        + "print(type(tracer).__name__, sorted(m for m in sys.modules if m.startswith('aws_xray_sdk')))\n"
    )
    environment = {
        "PYTHONPATH": f"{root}:{root / 'shared'}",
        "PATH": "/usr/bin:/bin",
        "LAMBDA_TASK_ROOT": str(root),
        "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
        "LOANS_TABLE": "LoansTable",
        "DELIVERIES_TABLE": "DeliveriesTable",
        "STATE_TABLE": "StateTable",
        "REMINDER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/ReminderQueue",
        "QUARANTINE_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/QuarantineQueue",
        "REPORTS_BUCKET": "reports-bucket",
        "PHONE_HASH_KEY": "arn:aws:kms:us-east-1:123456789012:key/placeholder",
    }
    found = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=environment, capture_output=True, text=True, check=True
    )

    assert found.stdout.split() == ["Untraced", "[]"]
