"""Events in: the scheduled event (DESIGN 4.1) and, later, loan events (4.4)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator


class PlanDetail(BaseModel):
    """Optional shard selection: a run plans the due dates whose ordinal % total == segment."""

    model_config = ConfigDict(extra="ignore")

    segment: Annotated[int, Field(ge=0)] = 0
    total_segments: Annotated[int, Field(ge=1, le=64)] = 1

    @model_validator(mode="after")
    def _segment_in_range(self) -> PlanDetail:
        if self.segment >= self.total_segments:
            raise ValueError("segment must be below total_segments")
        return self


class ScheduledEvent(EventBridgeModel):  # type: ignore[misc]
    """An EventBridge Scheduler event; `time` (the scheduled time) is the run's clock."""

    time: AwareDatetime
    detail: PlanDetail = PlanDetail()
