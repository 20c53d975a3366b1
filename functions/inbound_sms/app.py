"""InboundSmsFunction: replies to our SMS from the two-way SMS topic (opt-out, HELP, verify, BorrowerReplied)."""

from __future__ import annotations

import dunning.coldstart

import datetime as dt
from collections import Counter
from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import SnsModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from dunning import service
from dunning.handlers import Rejection, describe, note_rejected, quarantine, rejected
from dunning.models.inbound import InboundSms
from dunning.observability import logger, metrics, trace_outcome, trace_run, tracer
from dunning.settings import get_settings

FUNCTION = "InboundSmsFunction"  # template.yaml logical ID, named on what it quarantines


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        notifications = parse(event=event, model=SnsModel)
    except ValidationError as exc:
        return rejected(FUNCTION, "sns_event", exc, event, context)
    trace_run("inbound_sms", records=len(notifications.Records))
    # Each record on its own: one malformed message does not hold back the others.
    messages: list[InboundSms | None] = []
    rejections: list[Rejection] = []
    for raw, record in zip(event["Records"], notifications.Records, strict=True):
        try:
            messages.append(InboundSms.model_validate_json(str(record.Sns.Message)))
        except ValidationError as exc:
            messages.append(None)
            rejections.append(Rejection("inbound_sms", describe(exc), {"Records": [raw]}))
            note_rejected("inbound_sms", rejections[-1].reason, context)
    # Quarantined before any reply is handled: if that fails, the retry repeats nothing.
    quarantine(FUNCTION, rejections, context)
    handler = service.inbound_replies(get_settings())
    now = dt.datetime.now(dt.UTC)
    results = [
        "rejected" if message is None else handler.handle(message, now, record.Sns.Timestamp)
        for message, record in zip(messages, notifications.Records, strict=True)
    ]
    trace_outcome({"results": Counter(results), "rejected": len(rejections)})
    logger.info("inbound sms handled", extra={"results": results})
    return {"results": results, "rejected": len(rejections)}


dunning.coldstart.loaded()  # the last statement: the function is loaded
