"""RecordDeliveryFunction: applies SNS SMS delivery-status logs (CloudWatch Logs subscription) to delivery records."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import CloudWatchLogsModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from dunning import service
from dunning.handlers import rejected
from dunning.observability import logger, metrics
from dunning.settings import get_settings


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        logs = parse(event=event, model=CloudWatchLogsModel).awslogs.decoded_data
    except ValidationError as exc:
        return rejected("cloudwatch_logs", exc)
    if logs.messageType != "DATA_MESSAGE":
        # CloudWatch Logs checks the destination with a CONTROL_MESSAGE: nothing to apply.
        return {"status": "skipped", "message_type": logs.messageType}
    report = service.delivery_recorder(get_settings()).apply(
        (str(log_event.message) for log_event in logs.logEvents), dt.datetime.now(dt.UTC)
    )
    logger.info("delivery status applied", extra={"log_group": logs.logGroup, "report": report.as_dict()})
    return report.as_dict()
