"""What the planner, escalator and sender need of each store, as Protocols: the DynamoDB/SQS repositories
satisfy them, and so do the in-memory fakes of the unit tier and `benchmarks/scale.py` (tests/fakes.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # signatures only: a function that imports a Protocol does not build every model it names
    from dunning.dal.aws import Write
    from dunning.dal.ladder import Page
    from dunning.dal.state import ClaimKey, ClaimWrite
    from dunning.dal.transact import Refused, Unit
    from dunning.models.delivery import DeliveryRecord, StoredRecord
    from dunning.models.jobs import SendJob
    from dunning.models.state import ClaimState, CollectionCase, LoanControl, PlannerAgenda, SendClaim


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


class PlannerWakes(Protocol):
    """The planner shards' pokes (`dal.state.StateRepository`): a shard poked reads the book at its next fire."""

    def wake_planners(self, buckets: Iterable[int]) -> int: ...


class RecordSink(Protocol):
    """Where SUPPRESSED records go (`dal.deliveries.DeliveriesRepository`)."""

    def put(self, record: DeliveryRecord) -> None: ...


class JobSink(Protocol):
    """Where send jobs go (`dal.queue.JobQueue`), taken as they come: returns the jobs not accepted."""

    def send(self, jobs: Iterable[SendJob]) -> list[SendJob]: ...


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


# ---------------------------------------------------------------- sending: what the Sender needs of each store


class UnitWriter(Protocol):
    """Independent all-or-nothing writes; the refused ones come back with what they found (`transact.write_units`)."""

    def __call__(self, units: Sequence[Unit], sleep: Callable[[float], None] = ...) -> list[Refused]: ...


class SenderLoans(Protocol):
    """LoansTable, whose items the send's ConditionChecks name (`dal.loans.LoansRepository`)."""

    table: str


class SenderState(Protocol):
    """Claims, caps, opt-outs, CONTROL marks and message pointers, as transaction entries or single writes
    (`dal.state.StateRepository`)."""

    table: str

    def claim_update(
        self, key: ClaimKey, to: ClaimState, now: dt.datetime, from_state: ClaimState, **extra: Any
    ) -> Write: ...

    def settle_put(
        self,
        key: ClaimKey,
        borrower_id: str,
        state: ClaimState,
        now: dt.datetime,
        only_from: tuple[ClaimState, ...],
        **values: Any,
    ) -> Write: ...

    def not_opted_out(self, phone: str) -> list[Write]: ...

    def take_cap(self, borrower_id: str, day: dt.date, per_day: int, per_week: int, expires_at: int) -> Write: ...

    def give_back_cap(self, borrower_id: str, day: dt.date, per_day: int, per_week: int) -> Write: ...

    def message_pointer(self, message_id: str, records: list[tuple[str, str]], expires_at: int) -> Write: ...

    def handled_update(
        self,
        key: ClaimKey,
        state: ClaimState,
        now: dt.datetime,
        *,
        retry_after: dt.datetime | None = None,
        failed_at: dt.datetime | None = None,
    ) -> Write: ...

    def move_claim(
        self, key: ClaimKey, to: ClaimState, now: dt.datetime, from_state: ClaimState, **extra: Any
    ) -> tuple[bool, SendClaim | None]: ...

    def move_claim_with(
        self,
        writes: list[Write],
        key: ClaimKey,
        to: ClaimState,
        now: dt.datetime,
        from_state: ClaimState,
        **extra: Any,
    ) -> tuple[bool, SendClaim | None]: ...

    def settle(
        self,
        key: ClaimKey,
        borrower_id: str,
        state: ClaimState,
        now: dt.datetime,
        *,
        reason: str | None = None,
        retry_after: dt.datetime | None = None,
        record_id: str | None = None,
        message_id: str | None = None,
        only_from: tuple[ClaimState, ...] | None = None,
    ) -> bool: ...

    def wake_planner(self, bucket: int | None = None) -> None: ...


class SenderDeliveries(RecordSink, Protocol):
    """DeliveriesTable: records written alone or as transaction entries, and read back (`dal.deliveries`)."""

    def put_item_request(self, record: DeliveryRecord) -> Write: ...

    def get(self, loan_id: str, record_id: str) -> StoredRecord | None: ...


class SmsPublisher(Protocol):
    """SNS Publish of one SMS: its message id (`dal.sms.SmsGateway`; raises PublishRejected/PublishUncertain)."""

    def publish(self, phone: str, body: str) -> str: ...


class SendPacer(Protocol):
    """The origination identity's parts-per-second budget (`dal.sms.Pacer`)."""

    parts_per_second: float

    def wait(self, parts: int) -> None: ...
