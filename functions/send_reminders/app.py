"""SendRemindersFunction: re-checks, composes, publishes and records each SQS send job."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Json, ValidationError

from dunning import service
from dunning.handlers import describe
from dunning.models.jobs import SendJob
from dunning.observability import MetricUnit, logger, metrics
from dunning.sender import RetryLater
from dunning.settings import get_settings


class SendJobRecord(SqsRecordModel):  # type: ignore[misc]
    body: Json[SendJob]  # type: ignore[assignment]


class _Processor(BatchProcessor):
    def failure_handler(self, record: Any, exception: Any) -> Any:
        error = exception[1]
        if isinstance(error, RetryLater):
            # Nothing went wrong: another sender holds a claim, or Publish was throttled; SQS redelivers.
            logger.info("send job retried later", extra={"message_id": getattr(record, "message_id", None)})
            metrics.add_metric(name="SendJobsRetriedLater", unit=MetricUnit.Count, value=1)
            return super().failure_handler(record, exception)
        # Field paths only for a malformed body (its values may hold phone numbers); else the error's type.
        detail = describe(error) if isinstance(error, ValidationError) else type(error).__name__
        logger.error(
            "send job failed; SQS redelivers it until the DLQ takes it",
            extra={"message_id": getattr(record, "message_id", None), "error": detail},
        )
        metrics.add_metric(name="SendJobFailures", unit=MetricUnit.Count, value=1)
        return super().failure_handler(record, exception)


# A batch of nothing but junk is reported like any other (not raised): Lambda retries it the same way.
processor = _Processor(event_type=EventType.SQS, model=SendJobRecord, raise_on_entire_batch_failure=False)


def record_handler(record: SendJobRecord) -> dict[str, Any]:
    outcome = service.sender(get_settings()).send(record.body, dt.datetime.now(dt.UTC))
    return {"sent": outcome.sent, "uncertain": outcome.uncertain}


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
