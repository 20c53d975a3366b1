"""InboundSmsFunction: replies to our SMS from the two-way SMS topic; STOP / 退订 / TD opt the number out."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import SnsModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from dunning import service
from dunning.handlers import rejected
from dunning.models.events import InboundSms
from dunning.observability import logger, metrics
from dunning.settings import get_settings


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        notifications = parse(event=event, model=SnsModel)
    except ValidationError as exc:
        return rejected("sns_event", exc)
    handler = service.borrower_events(get_settings())
    results: list[str] = []
    for record in notifications.Records:
        # Each record on its own: one malformed message does not hold back the others.
        try:
            message = InboundSms.model_validate_json(str(record.Sns.Message))
        except ValidationError as exc:
            results.append(rejected("inbound_sms", exc)["status"])
            continue
        results.append(handler.inbound_sms(message, dt.datetime.now(dt.UTC)))
    logger.info("inbound sms handled", extra={"results": results})
    return {"results": results}
