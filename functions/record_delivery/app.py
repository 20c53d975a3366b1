"""RecordDeliveryFunction: applies SNS SMS delivery-status logs (CloudWatch Logs subscription) to delivery records."""

from __future__ import annotations

import dunning.coldstart

import datetime as dt
from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import CloudWatchLogsModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from dunning import service
from dunning.delivery_status import parse_logs
from dunning.handlers import Rejection, cloudwatch_logs_event, quarantine, rejected
from dunning.observability import logger, metrics, trace_outcome, trace_run, tracer
from dunning.settings import get_settings

FUNCTION = "RecordDeliveryFunction"  # template.yaml logical ID, named on what it quarantines


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        logs = parse(event=event, model=CloudWatchLogsModel).awslogs.decoded_data
    except ValidationError as exc:
        return rejected(FUNCTION, "cloudwatch_logs", exc, event, context)
    trace_run("delivery_status")
    if logs.messageType != "DATA_MESSAGE":
        # CloudWatch Logs checks the destination with a CONTROL_MESSAGE: nothing to apply.
        return {"status": "skipped", "message_type": logs.messageType}
    parsed, malformed = parse_logs(str(log_event.message) for log_event in logs.logEvents)
    # Each malformed record alone, in a subscription event of its own that a replay can apply.
    batch = logs.model_dump(mode="json", exclude={"logEvents"}, exclude_none=True)
    rejections = [
        Rejection("delivery_log", bad.reason, cloudwatch_logs_event(batch, [logs.logEvents[bad.position]]))
        for bad in malformed
    ]
    quarantine(FUNCTION, rejections, context)  # first: a failed write retries the batch, nothing applied twice
    report = service.delivery_recorder(get_settings()).apply_logs(parsed, dt.datetime.now(dt.UTC), len(malformed))
    trace_outcome({**report.as_dict(), "rejected": len(rejections)})
    logger.info("delivery status applied", extra={"log_group": logs.logGroup, "report": report.as_dict()})
    return {**report.as_dict(), "rejected": len(rejections)}


dunning.coldstart.loaded()  # the last statement: the function is loaded
