"""SendRemindersFunction: re-checks, composes, publishes and records an SQS batch of send jobs.

The batch is sent as one unit of work (`Sender.send_batch`: reads and writes per batch, not per
job); Powertools' BatchProcessor then reports each job that failed, so only those return to SQS.
"""

from __future__ import annotations

import dunning.coldstart

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Json, ValidationError

from dunning import service
from dunning.handlers import describe
from dunning.models.jobs import SendJob
from dunning.observability import MetricUnit, logger, metrics, trace_outcome, trace_run, tracer
from dunning.sender import RetryLater, SendOutcome
from dunning.settings import get_settings


class SendJobRecord(SqsRecordModel):
    body: Json[SendJob]


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


def _jobs(event: dict[str, Any]) -> dict[str, SendJob]:
    """The batch's readable jobs by SQS message id (the processor reports the unreadable ones)."""
    jobs: dict[str, SendJob] = {}
    for raw in event.get("Records") or []:
        try:
            record = SendJobRecord.model_validate(raw)
        except ValidationError:
            continue
        jobs[record.messageId] = record.body
    return jobs


def _trace_batch(done: Sequence[SendOutcome | Exception]) -> None:
    """The batch's outcomes, summed, on its trace: SMS sent as an annotation, the rest as figures."""
    outcomes = [result for result in done if isinstance(result, SendOutcome)]
    suppressed: Counter[str] = Counter()
    deferred: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    for outcome in outcomes:
        suppressed.update(outcome.suppressed)
        deferred.update(outcome.deferred)
        skipped.update(outcome.skipped)
    sms_sent = sum(outcome.messages for outcome in outcomes)
    figures: dict[str, object] = {
        "jobs_done": len(outcomes),
        "jobs_retried_later": sum(isinstance(result, RetryLater) for result in done),
        "jobs_failed": sum(isinstance(result, Exception) and not isinstance(result, RetryLater) for result in done),
        "sms_sent": sms_sent,
        "loans_reminded": sum(outcome.sent for outcome in outcomes),
        "uncertain": sum(outcome.uncertain for outcome in outcomes),
        "suppressed": suppressed,
        "deferred": deferred,
        "skipped": skipped,
    }
    trace_outcome(figures, sms_sent=sms_sent)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    jobs = _jobs(event)
    trace_run("send", records=len(event.get("Records") or []), jobs=len(jobs))
    sender = service.sender(get_settings()) if jobs else None
    results: dict[str, SendOutcome | Exception] = {}
    if sender is not None:
        done = sender.send_batch(
            list(jobs.values()),
            dt.datetime.now(dt.UTC),
            time_left=lambda: context.get_remaining_time_in_millis() / 1000,
        )
        results = dict(zip(jobs, done, strict=True))
        _trace_batch(done)

    def record_handler(record: SendJobRecord) -> dict[str, Any]:
        result = results[record.messageId]
        if isinstance(result, Exception):
            raise result
        return {"sent": result.sent, "uncertain": result.uncertain}

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


dunning.coldstart.loaded()  # the last statement: the function is loaded
