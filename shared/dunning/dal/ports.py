"""What the planner needs of each store, as Protocols: the DynamoDB/SQS repositories satisfy them, and so do
the in-memory fakes of the unit tier and `benchmarks/scale.py` (tests/fakes.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol

from dunning.dal.ladder import Page
from dunning.dal.state import ClaimKey, ClaimWrite
from dunning.models.delivery import DeliveryRecord, StoredRecord
from dunning.models.jobs import SendJob
from dunning.models.state import CollectionCase, LoanControl, PlannerAgenda, SendClaim


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


# ---------------------------------------------------------------- escalation: what the Escalator needs of each store


class LiveLoans(Protocol):
    """Upstream's LoansTable items read live, by loan id; a loan gone upstream is absent (`dal.loans`)."""

    def get_many(self, loan_ids: list[str]) -> dict[str, dict[str, Any]]: ...


class DeliveryHistory(RecordSink, Protocol):
    """A loan's delivery records, oldest first, and where SUPPRESSED records go (`dal.deliveries`)."""

    def history(self, loan_id: str) -> list[StoredRecord]: ...


class CaseStore(Protocol):
    """Collection cases, one per loan cycle ever (`dal.cases.CaseRepository`)."""

    def load(self, loans: list[tuple[str, str]]) -> tuple[dict[str, CollectionCase], dict[str, LoanControl]]: ...

    def open(self, loan_id: str, cycle: str, borrower_id: str, detail: dict[str, Any], now: dt.datetime) -> bool: ...

    def stop_cycle(self, loan_id: str, cycle: str, detail: str | None = None) -> None: ...

    def mark_published(self, loan_id: str, cycle: str, now: dt.datetime) -> None: ...


class EscalationState(Protocol):
    """Opted-out numbers and broken promises (`dal.state.StateRepository`)."""

    def load(
        self, claims: list[ClaimKey], phones: list[str]
    ) -> tuple[dict[ClaimKey, SendClaim], dict[str, LoanControl], set[str]]: ...

    def note_broken_promise(self, loan_id: str, promised_date: dt.date) -> None: ...


class EventSink(Protocol):
    """LoanEventsBus (`dal.bus.EventBus`): returns the event's id."""

    def put(self, detail_type: str, detail: dict[str, Any], time: dt.datetime) -> str: ...
