"""LoanEventsFunction: applies loan and borrower events from LoanEventsBus (docs/contract.md#events-in)."""

from __future__ import annotations

import dunning.coldstart

import datetime as dt
from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from dunning import service
from dunning.borrower_events import EventRejected
from dunning.handlers import rejected
from dunning.models.events import LoanEventEnvelope
from dunning.observability import logger, metrics, trace_run, tracer
from dunning.settings import get_settings

FUNCTION = "LoanEventsFunction"  # template.yaml logical ID, named on what it quarantines


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        loan_event = parse(event=event, model=LoanEventEnvelope).root
    except ValidationError as exc:
        # Quarantined and returned, not raised: a retry cannot fix the event, and raising would retry it.
        return rejected(FUNCTION, "loan_event", exc, event, context)
    logger.append_keys(event_id=loan_event.id, event_type=loan_event.detail_type)
    trace_run("loan_event")
    try:
        result = service.borrower_events(get_settings()).apply(loan_event, dt.datetime.now(dt.UTC))
    except EventRejected as refused:  # well-formed, but the policy refuses it (a pause too far ahead)
        return rejected(FUNCTION, "loan_event", refused.reason, event, context)
    return {"status": "applied", **result}


dunning.coldstart.loaded()  # the last statement: the function is loaded
