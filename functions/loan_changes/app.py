"""LoanChangesFunction: checks every LoansTable item upstream writes (the table's DynamoDB stream)."""

from __future__ import annotations

import dunning.coldstart

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.parser.models import (
    DynamoDBStreamChangedRecordModel,
    DynamoDBStreamRecordModel,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import AwareDatetime, ValidationError

from dunning import service
from dunning.handlers import describe
from dunning.loan_changes import LoanChange
from dunning.observability import MetricUnit, logger, metrics, trace_run, tracer
from dunning.settings import get_settings


class LoanStreamChange(DynamoDBStreamChangedRecordModel):
    # Required here: it dates the item's record, so a redelivery writes the same one.
    ApproximateCreationDateTime: AwareDatetime
    NewImage: dict[str, Any] | None = None


class LoanStreamRecord(DynamoDBStreamRecordModel):
    dynamodb: LoanStreamChange


class _Processor(BatchProcessor):
    def failure_handler(self, record: Any, exception: Any) -> Any:
        error = exception[1]
        # Field paths only for a malformed record (its values may hold phone numbers); else the error itself,
        # which never quotes an item's values.
        detail = describe(error) if isinstance(error, ValidationError) else f"{type(error).__name__}: {error}"
        change = getattr(record, "dynamodb", None)  # the parsed model, or Powertools' raw record if parsing failed
        sequence_number = getattr(change, "SequenceNumber", None) or getattr(change, "sequence_number", None)
        logger.error(
            "loan change failed; Lambda retries it, then its batch goes to LoanChangesFailureQueue",
            extra={"sequence_number": sequence_number, "error": detail[:500]},
        )
        metrics.add_metric(name="LoanChangeFailures", unit=MetricUnit.Count, value=1)
        return super().failure_handler(record, exception)


# A batch of nothing but failures is reported like any other: Lambda retries from the first failed record.
processor = _Processor(
    event_type=EventType.DynamoDBStreams, model=LoanStreamRecord, raise_on_entire_batch_failure=False
)


def loan_change(record: LoanStreamRecord) -> LoanChange:
    return LoanChange(
        loan_id=record.dynamodb.Keys.get("loan_id"),
        kind=record.eventName,
        changed_at=record.dynamodb.ApproximateCreationDateTime,
        sequence_number=record.dynamodb.SequenceNumber,
        item=record.dynamodb.NewImage,
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    trace_run("loan_change", records=len(event.get("Records") or []))
    changes = service.loan_changes(get_settings())  # one per batch: it collects the planner shards to wake

    def record_handler(record: LoanStreamRecord) -> dict[str, Any]:
        result = changes.apply(loan_change(record))
        return {"outcome": result.outcome.value, "reason": result.reason}

    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    changes.wake_planners()  # once per shard after the records, not per record; best effort (it never raises for AWS)
    return response


dunning.coldstart.loaded()  # the last statement: the function is loaded
