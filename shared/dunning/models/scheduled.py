"""The scheduled event the scheduled functions take, and the shard contract in its `detail` (docs/contract.md).

A module of its own: the four scheduled functions import it and build these two models at cold start,
not the loan events' and inbound SMS's (`dunning.models.events`, `dunning.models.inbound`).
"""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

MAX_SHARDS = 1024  # the ladder index's buckets (dunning.sharding): a shard is a set of whole buckets


class ShardDetail(BaseModel):
    """The shard contract (docs/contract.md#shard-contract): `{"shard": i, "shards": n}` works on that shard alone.

    Without `shard` the run covers every shard in one invocation. `cursor` resumes a shard run
    that stopped near its time limit (the state machine passes back the cursor it returned);
    `assemble` asks the bureau report to join the shards' parts into the day's file.
    """

    model_config = ConfigDict(extra="ignore")

    shard: Annotated[int | None, Field(ge=0, description="0 <= shard < shards; absent: every shard")] = None
    shards: Annotated[int, Field(ge=1, le=MAX_SHARDS, description="how many shards the book is cut into")] = 1
    cursor: Annotated[str | None, Field(max_length=4096, description="where a stopped shard run resumes")] = None
    assemble: Annotated[bool, Field(description="bureau only: join the shards' parts")] = False

    @model_validator(mode="after")
    def _shard_in_range(self) -> ShardDetail:
        if self.shard is not None and self.shard >= self.shards:
            raise ValueError(f"shard must be below shards ({self.shards})")
        if self.cursor is not None and self.shard is None and self.shards != 1:
            raise ValueError("a cursor resumes one shard: give shard too")
        return self


class ScheduledEvent(EventBridgeModel):
    """An EventBridge Scheduler event; `time` (the scheduled time) is the run's clock.

    `version` is optional: the Scheduler's Input (template.yaml) carries it, but the event
    `sam local generate-event cloudwatch scheduled-event` prints has none, and neither changes the run.
    """

    version: str = "0"
    time: AwareDatetime
    detail: ShardDetail = ShardDetail()
