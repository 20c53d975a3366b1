"""What every handler shares: turning a validation error into a clear log line and a metric."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from dunning.observability import MetricUnit, logger, metrics


def describe(exc: ValidationError) -> str:
    """Field paths and messages only: never the input values (they may hold phone numbers)."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '(event)'}: {e['msg']}" for e in exc.errors())


def rejected(kind: str, exc: ValidationError) -> dict[str, Any]:
    error = describe(exc)
    logger.error("malformed event rejected", extra={"event_kind": kind, "validation_error": error})
    metrics.add_metric(name="MalformedEvents", unit=MetricUnit.Count, value=1)
    return {"status": "rejected", "error": error}
