"""The one Logger, Metrics and Tracer of the service, plus the PII masks every log line uses."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger(service="dunning")
metrics = Metrics(namespace="Dunning", service="dunning")

__all__ = ["MetricUnit", "logger", "mask_phone", "metrics"]


def mask_phone(phone: str | None) -> str:
    """Only the last four digits of a phone number ever reach a log line."""
    if not phone:
        return "<none>"
    digits = "".join(ch for ch in phone if ch.isdigit())
    return f"***{digits[-4:]}" if len(digits) >= 4 else "***"
