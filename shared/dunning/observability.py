"""The one Logger, Metrics and Tracer of the service, plus the PII masks every log line and trace uses."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeGuard, TypeVar, cast, overload

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.shared import constants
from aws_lambda_powertools.shared.functions import strtobool

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

_F = TypeVar("_F", bound=Callable[..., Any])

logger = Logger(service="dunning")
metrics = Metrics(namespace="Dunning", service="dunning")


def tracing_enabled(environment: Mapping[str, str] = os.environ) -> bool:
    """Whether this process traces, by Powertools' own rule (its Tracer is off with POWERTOOLS_TRACE_DISABLED,
    outside Lambda: no LAMBDA_TASK_ROOT, or under `sam local` or chalice). template.yaml's `Tracing` parameter
    sets POWERTOOLS_TRACE_DISABLED with the functions' X-Ray mode; the local runner sets it too."""
    if strtobool(environment.get(constants.TRACER_DISABLED_ENV, "false")):
        return False
    inside_lambda = bool(environment.get(constants.LAMBDA_TASK_ROOT_ENV))
    emulated = environment.get(constants.SAM_LOCAL_ENV) or environment.get(constants.CHALICE_LOCAL_ENV)
    return inside_lambda and not emulated


class Untraced:
    """The tracer of a process that does not trace: the Tracer's decorators and helpers, doing nothing.

    Powertools' Tracer imports the X-Ray SDK and builds its recorder even when it is disabled; without
    tracing, a cold start does neither (issue 11: cold init; `benchmarks/scale.py` measures it).
    """

    disabled = True

    def capture_lambda_handler(
        self,
        lambda_handler: Callable[..., Any] | None = None,
        capture_response: bool | None = None,
        capture_error: bool | None = None,
    ) -> Callable[..., Any]:
        return lambda_handler if lambda_handler is not None else _unchanged

    @overload
    def capture_method(self, method: _F) -> _F: ...

    @overload
    def capture_method(
        self, method: None = None, capture_response: bool | None = None, capture_error: bool | None = None
    ) -> Callable[[_F], _F]: ...

    def capture_method(
        self, method: _F | None = None, capture_response: bool | None = None, capture_error: bool | None = None
    ) -> _F | Callable[[_F], _F]:
        return method if method is not None else _unchanged

    def put_annotation(self, key: str, value: Any) -> None:
        return None

    def put_metadata(self, key: str, value: Any, namespace: str | None = None) -> None:
        return None


def _unchanged(function: _F) -> _F:
    return function


def _tracer() -> Tracer | Untraced:
    if not tracing_enabled():
        return Untraced()
    from aws_lambda_powertools import Tracer

    # X-Ray (template.yaml: `Tracing`, Active by default). Only botocore is patched: each AWS call is a
    # subsegment naming its operation and table, queue, topic or bucket (and S3 object key: ours hold dates
    # only), never an item, a number or a body; exception messages are dropped below.
    traced = Tracer(service="dunning", patch_modules=("botocore",))
    recorder: Any = traced.provider
    if not isinstance(recorder.emitter, WithoutExceptionMessages):
        recorder.emitter = WithoutExceptionMessages(recorder.emitter)
    return traced


class WithoutExceptionMessages:
    """The X-Ray recorder's emitter, sending every trace entity less its exceptions' messages.

    An AWS error may quote a parameter (SNS answers a refused Publish with "Invalid parameter: PhoneNumber
    Reason: +86... is not valid to publish to"), and X-Ray's botocore patch records it. The exception's type,
    the AWS operation and status stay in the trace; what failed and why is in the function's log line.
    """

    def __init__(self, emitter: Any) -> None:
        self.emitter = emitter

    def send_entity(self, entity: Any) -> None:
        _drop_exception_messages(entity)
        self.emitter.send_entity(entity)

    def __getattr__(self, name: str) -> Any:  # set_daemon_address, ip, port: the wrapped emitter's
        return getattr(self.emitter, name)


def _drop_exception_messages(entity: Any) -> None:
    cause = getattr(entity, "cause", None)
    for throwable in cause.get("exceptions", []) if isinstance(cause, dict) else []:
        vars(throwable).pop("message", None)
    for child in getattr(entity, "subsegments", None) or []:
        _drop_exception_messages(child)


# Decided once, at import, as Powertools' Tracer decides: the handlers' and services' decorators are applied then.
tracer = _tracer()

__all__ = [
    "MetricUnit",
    "Untraced",
    "WithoutExceptionMessages",
    "counts_only",
    "logger",
    "mask_phone",
    "metrics",
    "trace_outcome",
    "trace_run",
    "tracer",
    "tracing_enabled",
]


def mask_phone(phone: str | None) -> str:
    """Only the last four digits of a phone number ever reach a log line."""
    if not phone:
        return "<none>"
    digits = "".join(ch for ch in phone if ch.isdigit())
    return f"***{digits[-4:]}" if len(digits) >= 4 else "***"


def trace_run(function_stage: str, **annotations: int | bool | None) -> None:
    """Annotate this invocation's trace, searchable in X-Ray (`annotation.function_stage = "plan" AND
    annotation.shard = 3`, `annotation.complete = false`). Values are numbers and flags only (None is
    left out); the one string is the stage's name, so no loan's or borrower's data can become an annotation."""
    tracer.put_annotation(key="function_stage", value=function_stage)
    _annotate(annotations)


def trace_outcome(report: Mapping[str, object], **annotations: int | bool | None) -> None:
    """The run's result on its trace: `annotations` (numbers and flags, as `trace_run`) and the report's
    counts (`counts_only`) as metadata, namespace `dunning`, key `figures`."""
    _annotate(annotations)
    tracer.put_metadata(key="figures", value=counts_only(report))


def counts_only(report: Mapping[str, object]) -> dict[str, int | dict[str, int]]:
    """The whole numbers and {reason: count} maps of a report; every string (cursors, dates, file keys,
    ids), flag and anything else is dropped, so a report that one day carries personal data still cannot
    put it in a trace."""
    figures: dict[str, int | dict[str, int]] = {}
    for name, figure in report.items():
        if _is_count(figure):
            figures[name] = figure
        elif isinstance(figure, Mapping) and all(isinstance(k, str) and _is_count(v) for k, v in figure.items()):
            figures[name] = dict(figure)
    return figures


def _annotate(annotations: Mapping[str, int | bool | None]) -> None:
    for key, value in annotations.items():
        if value is not None:
            # Powertools types the value as numbers.Number, which mypy cannot match an int against.
            tracer.put_annotation(key=key, value=cast(Any, value))


def _is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
