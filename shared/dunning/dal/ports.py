"""What the planner needs of each store, as Protocols: the DynamoDB/SQS repositories satisfy them, and so do
the in-memory fakes of the unit tier and `benchmarks/scale.py` (tests/fakes.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol

from dunning.dal.ladder import Page
from dunning.dal.state import ClaimKey, ClaimWrite
from dunning.models.delivery import DeliveryRecord
from dunning.models.jobs import SendJob
from dunning.models.state import PlannerAgenda, SendClaim


class LadderPages(Protocol):
    """The ladder index read page by page (`dal.ladder.LadderRepository`)."""

    def page(
        self,
        partition: str,
        first: str,
        last: str,
        start_key: dict[str, Any] | None,
        limit: int,
        *,
        due_on_or_before: str | None = None,
    ) -> Page: ...


class PlannerState(Protocol):
    """The claims, marks and agendas a planning run writes (`dal.state.StateRepository`)."""

    def planner_agenda(self, shard: int, shards: int) -> tuple[PlannerAgenda | None, int]: ...

    def save_planner_agenda(self, shard: int, shards: int, agenda: PlannerAgenda) -> None: ...

    def take_claims(self, writes: list[ClaimWrite], now: dt.datetime) -> dict[ClaimKey, SendClaim | None]: ...

    def give_back(self, keys: list[ClaimKey], now: dt.datetime) -> None: ...

    def mark_deferred(self, key: ClaimKey, retry_after: dt.datetime) -> None: ...


class RecordSink(Protocol):
    """Where SUPPRESSED records go (`dal.deliveries.DeliveriesRepository`)."""

    def put(self, record: DeliveryRecord) -> None: ...


class JobSink(Protocol):
    """Where send jobs go (`dal.queue.JobQueue`): returns the jobs not accepted."""

    def send(self, jobs: list[SendJob]) -> list[SendJob]: ...
