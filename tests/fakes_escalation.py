"""In-memory stores behind the Escalator's Protocols (`dunning.dal.ports`), for the unit tier.

They share a `tests.fakes.FakeStateTable` (CONTROL items by loan id, and the ladder index over them) and keep
the semantics escalation relies on, as `dal.cases` documents them: opening a case first stops the cycle on
the CONTROL item (`case_cycle`, `case_detail`), then creates the case only if none exists for that loan
cycle (a conditional put: taken once, whoever asks); `published` turns true once the event is out. A broken
promise is added to CONTROL's `broken_promises` set (idempotent). Opt-outs are a set of numbers.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from dunning.dal.state import ClaimKey
from dunning.models.delivery import DeliveryRecord, StoredRecord
from dunning.models.state import CollectionCase, LoanControl, SendClaim
from dunning.models.timestamps import utc_iso
from tests.fakes import FakeStateTable


@dataclass
class FakeLoans:
    """`LiveLoans`: LoansTable as upstream writes it (items with Decimal amounts, as the SDK reads them)."""

    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)

    def put(self, item: dict[str, Any]) -> None:
        self.items[str(item["loan_id"])] = dict(item)

    def get_many(self, loan_ids: list[str]) -> dict[str, dict[str, Any]]:
        self.calls["BatchGetItem"] += 1
        return {i: dict(self.items[i]) for i in dict.fromkeys(loan_ids) if i in self.items}


@dataclass
class FakeHistory:
    """`DeliveryHistory`: DeliveriesTable records by (loan_id, record_id); history sorted by record id."""

    records: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def put(self, record: DeliveryRecord) -> None:
        self.records[(record.loan_id, record.record_id)] = record.model_dump(mode="json", exclude_none=True)

    def add(self, loan_id: str, record_id: str, **attributes: Any) -> None:
        """A record as an earlier send or delivery status wrote it (`outcome`, `cycle`, ...)."""
        self.records[(loan_id, record_id)] = {"loan_id": loan_id, "record_id": record_id, **attributes}

    def history(self, loan_id: str) -> list[StoredRecord]:
        return [StoredRecord.model_validate(r) for (lid, rid), r in sorted(self.records.items()) if lid == loan_id]

    def suppressed(self) -> dict[str, str]:
        """The SUPPRESSED records' reasons, by loan id."""
        return {lid: str(r.get("reason")) for (lid, _), r in self.records.items() if r.get("outcome") == "SUPPRESSED"}


class FakeCases:
    """`CaseStore` over the CONTROL items of a FakeStateTable, with cases by (loan_id, cycle)."""

    def __init__(self, table: FakeStateTable) -> None:
        self.table = table
        self.cases: dict[tuple[str, str], dict[str, Any]] = {}
        self.open_calls = 0

    def load(self, loans: list[tuple[str, str]]) -> tuple[dict[str, CollectionCase], dict[str, LoanControl]]:
        cases: dict[str, CollectionCase] = {}
        controls: dict[str, LoanControl] = {}
        for loan_id, cycle in loans:
            if (loan_id, cycle) in self.cases:
                cases[loan_id] = CollectionCase.model_validate(self.cases[(loan_id, cycle)])
            control = self.table.control(loan_id)
            if control is not None:  # a corrupt CONTROL item raises here, as the real batched read does
                controls[loan_id] = LoanControl.model_validate(control)
        return cases, controls

    def open(self, loan_id: str, cycle: str, borrower_id: str, detail: dict[str, Any], now: dt.datetime) -> bool:
        self.open_calls += 1
        detail_json = json.dumps(detail, ensure_ascii=False, sort_keys=True)
        self.stop_cycle(loan_id, cycle, detail_json)
        if (loan_id, cycle) in self.cases:
            return False  # attribute_not_exists(pk) refused the put
        self.cases[(loan_id, cycle)] = {
            "loan_id": loan_id,
            "cycle": cycle,
            "borrower_id": borrower_id,
            "reason": detail.get("reason"),
            "opened_at": utc_iso(now),
            "detail": detail_json,
            "published": False,
        }
        return True

    def stop_cycle(self, loan_id: str, cycle: str, detail: str | None = None) -> None:
        def stop(control: dict[str, Any]) -> None:
            control["case_cycle"] = cycle
            if detail is not None:
                control["case_detail"] = detail

        self.table.change_control(loan_id, stop, create=True)

    def mark_published(self, loan_id: str, cycle: str, now: dt.datetime) -> None:
        case = self.cases.get((loan_id, cycle))
        if case is None:
            raise LookupError(f"no case {loan_id}/{cycle}: attribute_exists(pk) refused the update")
        case["published"] = True
        case["published_at"] = utc_iso(now)


class FakeEscalationState:
    """`EscalationState`: the product's opt-out list and CONTROL's broken promises."""

    def __init__(self, table: FakeStateTable, opted_out: set[str] | None = None) -> None:
        self.table = table
        self.opted_out = set(opted_out or ())

    def load(
        self, claims: list[ClaimKey], phones: list[str]
    ) -> tuple[dict[ClaimKey, SendClaim], dict[str, LoanControl], set[str]]:
        if claims:
            raise NotImplementedError("escalation reads no claims")
        return {}, {}, {phone for phone in phones if phone in self.opted_out}

    def note_broken_promise(self, loan_id: str, promised_date: dt.date) -> None:
        def add(control: dict[str, Any]) -> None:
            control["broken_promises"] = sorted({*control.get("broken_promises", ()), promised_date.isoformat()})

        self.table.change_control(loan_id, add, create=True)


@dataclass
class FakeBus:
    """`EventSink`: LoanEventsBus; keeps (detail_type, detail) in order."""

    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def put(self, detail_type: str, detail: dict[str, Any], time: dt.datetime) -> str:
        self.events.append((detail_type, json.loads(json.dumps(detail))))  # as EventBridge gets it: plain JSON
        return f"event-{len(self.events)}"
