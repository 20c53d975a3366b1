"""PlanRemindersFunction: finds loans with a reminder due and enqueues send jobs."""

from __future__ import annotations

import dunning.coldstart

from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from dunning import service
from dunning.handlers import rejected
from dunning.models.scheduled import ScheduledEvent
from dunning.observability import logger, metrics, trace_outcome, trace_run, tracer
from dunning.settings import get_settings

FUNCTION = "PlanRemindersFunction"  # template.yaml logical ID, named on what it quarantines


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        scheduled = parse(event=event, model=ScheduledEvent)
    except ValidationError as exc:
        return rejected(FUNCTION, "scheduled_event", exc, event, context)
    detail = scheduled.detail
    trace_run("plan", shard=detail.shard, shards=detail.shards, resumed=detail.cursor is not None)
    planner = service.planner(get_settings())
    report = planner.run(
        scheduled.time,
        shard=detail.shard,
        shards=detail.shards,
        cursor=detail.cursor,
        time_left=lambda: context.get_remaining_time_in_millis() / 1000,
    )
    trace_outcome(
        report.as_dict(),
        complete=report.complete,
        asleep=report.asleep_until is not None,
        jobs_enqueued=report.jobs_enqueued,
    )
    logger.info("planning run finished", extra={"report": report.as_dict()})
    return report.as_dict()


dunning.coldstart.loaded()  # the last statement: the function is loaded
