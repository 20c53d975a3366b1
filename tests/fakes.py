"""In-memory stores behind the planner's Protocols (`dunning.dal.ports`), for the unit tier and the scale bench.

They keep the semantics the planner relies on, not DynamoDB's wire format: the ladder index is a view
of StateTable's CONTROL items (sparse: only items with `ladder_part` and `ladder_due`), read in pages
of `limit` items in `ladder_due` order with DynamoDB's LastEvaluatedKey rule; a claim is taken only
where none exists or a DEFERRED one is past its `retry_after`, with the CONTROL mark, and given back
only while still PLANNED at the same instant. Every store counts the AWS calls the real repository
would make for the same work (`calls`), so call counts per page can be measured without moto.

`keep=False` stores count and serialise what they are given but do not keep it (the scale bench's
memory figure is the Lambda's, and in AWS the tables and the queue are not in the Lambda's memory).
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import math
import pickle
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from dunning.dal.ladder import Page
from dunning.dal.state import CLAIMS_PER_TRANSACTION, ClaimKey, ClaimWrite, stage_mark
from dunning.models.delivery import DeliveryRecord
from dunning.models.jobs import SendJob
from dunning.models.state import ClaimState, PlannerAgenda, SendClaim
from dunning.models.timestamps import utc_iso

T = TypeVar("T")
SQS_BATCH = 10  # SendMessageBatch entries (dal.queue)


@dataclass
class Meter:
    """The AWS calls the real repositories would have made, and the CPU time spent inside the fakes
    (which a caller timing itself subtracts: it is the stores' cost, not its own)."""

    calls: Counter[str] = field(default_factory=Counter)
    cpu_s: float = 0.0


def _metered(method: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(method)
    def timed(self: Any, *args: Any, **kwargs: Any) -> T:
        started = time.process_time()
        try:
            return method(self, *args, **kwargs)
        finally:
            self.meter.cpu_s += time.process_time() - started

    return timed


@dataclass
class FakeStateTable:
    """StateTable as the planner sees it: CONTROL items by loan id, send claims, agendas and the poke version."""

    keep: bool = True
    # Pickled, as a table holds bytes and not live objects: the book stays out of the caller's heap (and out
    # of its garbage collector's passes, which a Lambda reading DynamoDB never makes over the table).
    _controls: dict[str, bytes] = field(default_factory=dict)
    claims: dict[ClaimKey, dict[str, Any]] = field(default_factory=dict)
    agendas: dict[tuple[int, int], PlannerAgenda] = field(default_factory=dict)
    poke_version: int = 0
    meter: Meter = field(default_factory=Meter)
    _partitions: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # ladder_part -> (ladder_due, id)
    _sorted: bool = True

    def put_control(self, item: dict[str, Any]) -> None:
        """Write a CONTROL item (as LoanChangesFunction would); it is in the index when it has the index keys."""
        loan_id = str(item["loan_id"])
        old = self.control(loan_id)
        if old is not None and "ladder_part" in old:
            self._partitions[str(old["ladder_part"])].remove((str(old["ladder_due"]), loan_id))
        self._controls[loan_id] = pickle.dumps(item)
        if "ladder_part" in item and "ladder_due" in item:
            self._partitions.setdefault(str(item["ladder_part"]), []).append((str(item["ladder_due"]), loan_id))
            self._sorted = False

    def control(self, loan_id: str) -> dict[str, Any] | None:
        """The CONTROL item as it is now (a fresh copy)."""
        raw = self._controls.get(loan_id)
        return pickle.loads(raw) if raw is not None else None

    def change_control(self, loan_id: str, change: Callable[[dict[str, Any]], None], *, create: bool) -> None:
        """Change an item's non-key attributes (the planner's marks), creating it if asked."""
        item = self.control(loan_id)
        if item is None:
            if not create:
                return
            item = {"loan_id": loan_id}
        change(item)
        self._controls[loan_id] = pickle.dumps(item)

    def poke(self) -> None:
        """Something a planner shard read changed (a borrower event, a deferral): the marks are not trusted."""
        self.poke_version += 1

    def index_entries(self, partition: str) -> list[tuple[str, str]]:
        if not self._sorted:
            for entries in self._partitions.values():
                entries.sort()
            self._sorted = True
        return self._partitions.get(partition, [])


class FakeLadder:
    """`LadderPages` over a FakeStateTable: Query pages of LadderIndex (HASH ladder_part, RANGE ladder_due)."""

    def __init__(self, table: FakeStateTable) -> None:
        self.table = table
        self.meter = table.meter

    @_metered
    def page(
        self,
        partition: str,
        first: str,
        last: str,
        start_key: dict[str, Any] | None,
        limit: int,
        *,
        due_on_or_before: str | None = None,
    ) -> Page:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.meter.calls["Query"] += 1
        entries = self.table.index_entries(partition)
        if start_key is None:
            at = bisect.bisect_left(entries, (first, ""))
        else:
            at = bisect.bisect_right(entries, (str(start_key["ladder_due"]), str(start_key["loan_id"])))
        evaluated = [entry for entry in entries[at : at + limit] if entry[0] <= last]
        items = []
        for _, loan_id in evaluated:
            item = self.table.control(loan_id)
            if item is not None and (due_on_or_before is None or str(item.get("due_date")) <= due_on_or_before):
                items.append(item)
        # DynamoDB gives a LastEvaluatedKey whenever it stopped at the limit, even with nothing after it.
        if len(evaluated) < limit:
            return Page(items, None)
        due, loan_id = evaluated[-1]
        return Page(items, {"ladder_part": partition, "ladder_due": due, "loan_id": loan_id})


class FakeState:
    """`PlannerState` over a FakeStateTable, with StateRepository's claim rules and transaction grouping."""

    def __init__(self, table: FakeStateTable) -> None:
        self.table = table
        self.meter = table.meter

    @_metered
    def planner_agenda(self, shard: int, shards: int) -> tuple[PlannerAgenda | None, int]:
        self.meter.calls["BatchGetItem"] += 1
        return self.table.agendas.get((shard, shards)), self.table.poke_version

    @_metered
    def save_planner_agenda(self, shard: int, shards: int, agenda: PlannerAgenda) -> None:
        self.meter.calls["PutItem"] += 1
        if self.table.keep:
            self.table.agendas[(shard, shards)] = agenda

    @_metered
    def take_claims(self, writes: list[ClaimWrite], now: dt.datetime) -> dict[ClaimKey, SendClaim | None]:
        found: dict[ClaimKey, SendClaim | None] = {}
        at = utc_iso(now)
        pending = list({w.key: w for w in writes}.values())
        while pending:  # as StateRepository: a chunk with a refused claim is cancelled, its others go again
            retry: list[ClaimWrite] = []
            for start in range(0, len(pending), CLAIMS_PER_TRANSACTION):
                chunk = pending[start : start + CLAIMS_PER_TRANSACTION]
                self.meter.calls["TransactWriteItems"] += 1
                blocking = {w.key: self._blocking(w.key, at) for w in chunk}
                if not any(claim is not None for claim in blocking.values()):
                    for write in chunk:
                        self._take(write, at)
                        found[write.key] = None
                    continue
                for write in chunk:
                    if blocking[write.key] is not None:
                        found[write.key] = blocking[write.key]
                    else:
                        retry.append(write)
            pending = retry
        return found

    def _blocking(self, key: ClaimKey, at: str) -> SendClaim | None:
        old = self.table.claims.get(key)
        if old is None:
            return None
        if old["state"] == ClaimState.DEFERRED.value and old.get("retry_after") and old["retry_after"] <= at:
            return None
        return SendClaim.model_validate(old)

    def _take(self, write: ClaimWrite, at: str) -> None:
        if not self.table.keep:
            return
        loan_id, cycle, stage = write.key
        self.table.claims[write.key] = {
            "loan_id": loan_id,
            "cycle": cycle,
            "stage": stage,
            "borrower_id": write.borrower_id,
            "state": write.state.value,
            "updated_at": at,
            "reason": write.reason,
            "record_id": write.record_id,
            "retry_after": utc_iso(write.retry_after) if write.retry_after else None,
        }
        until = utc_iso(write.retry_after) if write.retry_after is not None else None

        def mark(control: dict[str, Any]) -> None:
            control["planned"] = stage_mark(cycle, stage)
            if until is not None:
                control["planned_until"] = until
            else:
                control.pop("planned_until", None)

        self.table.change_control(loan_id, mark, create=True)

    @_metered
    def give_back(self, keys: list[ClaimKey], now: dt.datetime) -> None:
        at = utc_iso(now)
        pending = list(dict.fromkeys(keys))
        self.meter.calls["TransactWriteItems"] += math.ceil(len(pending) / CLAIMS_PER_TRANSACTION)
        for key in pending:
            claim = self.table.claims.get(key)
            if claim is not None and claim["state"] == ClaimState.PLANNED.value and claim["updated_at"] == at:
                del self.table.claims[key]
                self.table.change_control(key[0], _unmark, create=False)

    @_metered
    def mark_deferred(self, key: ClaimKey, retry_after: dt.datetime) -> None:
        self.meter.calls["UpdateItem"] += 1
        control = self.table.control(key[0])
        if control is not None and control.get("planned") == stage_mark(key[1], key[2]):
            until = utc_iso(retry_after)
            self.table.change_control(key[0], lambda item: item.update(planned_until=until), create=False)


def _unmark(control: dict[str, Any]) -> None:
    control.pop("planned", None)
    control.pop("planned_until", None)


class FakeDeliveries:
    """`RecordSink`: DeliveriesTable records by (loan_id, record_id)."""

    def __init__(self, *, keep: bool = True, meter: Meter | None = None) -> None:
        self.keep = keep
        self.records: dict[tuple[str, str], DeliveryRecord] = {}
        self.meter = meter or Meter()

    @_metered
    def put(self, record: DeliveryRecord) -> None:
        self.meter.calls["PutItem"] += 1
        if self.keep:
            self.records[(record.loan_id, record.record_id)] = record


class FakeQueue:
    """`JobSink`: ReminderQueue. Serialises every job as the real queue does; `refuse` picks the jobs SQS fails."""

    def __init__(
        self, *, keep: bool = True, refuse: Callable[[SendJob], bool] | None = None, meter: Meter | None = None
    ) -> None:
        self.keep = keep
        self.refuse = refuse
        self.bodies: list[str] = []
        self.sent = 0
        self.meter = meter or Meter()

    def send(self, jobs: Iterable[SendJob]) -> list[SendJob]:
        """A SendMessageBatch per 10 jobs, as they come. Only the batches are metered: a caller that builds its
        jobs as they are taken (the planner) spends that time in this loop, and it is the caller's, not the queue's."""
        failed: list[SendJob] = []
        batch: list[SendJob] = []
        for job in jobs:
            batch.append(job)
            if len(batch) == SQS_BATCH:
                failed += self._send_batch(batch)
                batch = []
        if batch:
            failed += self._send_batch(batch)
        return failed

    @_metered
    def _send_batch(self, batch: list[SendJob]) -> list[SendJob]:
        self.meter.calls["SendMessageBatch"] += 1
        failed: list[SendJob] = []
        for job in batch:
            body = job.model_dump_json()
            if self.refuse is not None and self.refuse(job):
                failed.append(job)
                continue
            self.sent += 1
            if self.keep:
                self.bodies.append(body)
        return failed

    def jobs(self) -> list[SendJob]:
        return [SendJob.model_validate_json(body) for body in self.bodies]


@dataclass
class FakeStores:
    """The four stores a Planner takes, over one FakeStateTable."""

    table: FakeStateTable
    index: FakeLadder
    state: FakeState
    deliveries: FakeDeliveries
    queue: FakeQueue

    @classmethod
    def empty(cls, *, keep: bool = True) -> FakeStores:
        table = FakeStateTable(keep=keep)
        meter = table.meter
        return cls(
            table,
            FakeLadder(table),
            FakeState(table),
            FakeDeliveries(keep=keep, meter=meter),
            FakeQueue(keep=keep, meter=meter),
        )

    def load(self, items: Iterable[dict[str, Any]]) -> None:
        for item in items:
            self.table.put_control(item)
        self.table.index_entries("00")  # sorted now, not in the first Query

    @property
    def meter(self) -> Meter:
        return self.table.meter
