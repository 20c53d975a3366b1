"""`dunning backfill`: index the loans an existing LoansTable already holds (the stream only carries new writes).

Parallel Scan segments of LoansTable, each item handed to `LoanChanges.apply` as a change with the
lowest sequence (`dal.ladder.BACKFILL_SEQ`): the same code path as the stream, so the same index item.
It is idempotent (an item it indexed is left alone the next time) and never overwrites a stream write:
it only fills CONTROL items that no stream record has written, and any stream record wins over it. Run
it once after the first deploy with `ExistingLoansTableName` (the stream mapping is live by then, so
nothing written meanwhile is missed). Invalid items are counted, not recorded: the stream records
them when upstream writes them. It wakes no planner shard per loan (`LoanChanges` never pokes for the
backfill); the command wakes every shard once at its end (`cli._backfill`).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from dunning.dal.aws import client, from_item
from dunning.dal.ladder import BACKFILL_SEQ
from dunning.loan_changes import ChangeKind, LoanChange, LoanChanges

MAX_SEGMENTS = 64


@dataclass
class BackfillReport:
    items: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)  # entered, left, stale (a stream write was there)
    invalid: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        return {"items": self.items, "index": dict(sorted(self.outcomes.items())), "invalid": dict(self.invalid)}


def backfill(
    loans_table: str, changes: LoanChanges, *, segments: int = 4, now: dt.datetime | None = None
) -> BackfillReport:
    """Scan `loans_table` in `segments` parallel segments through `changes` (see the module)."""
    if not 1 <= segments <= MAX_SEGMENTS:
        raise ValueError(f"segments must be in 1..{MAX_SEGMENTS}, got {segments}")
    at = now or dt.datetime.now(dt.UTC)

    def segment(number: int) -> BackfillReport:
        report = BackfillReport()
        pages = (
            client("dynamodb")
            .get_paginator("scan")
            .paginate(TableName=loans_table, Segment=number, TotalSegments=segments, ConsistentRead=True)
        )
        for page in pages:
            for raw in page.get("Items", []):
                item = from_item(raw)
                loan_id = item.get("loan_id")
                if not isinstance(loan_id, str) or not loan_id:
                    report.invalid["missing_loan_id"] += 1
                    continue
                change = LoanChange(
                    loan_id=loan_id, kind=ChangeKind.MODIFY, changed_at=at, sequence_number=BACKFILL_SEQ, item=item
                )
                result = changes.apply(change)
                report.items += 1
                if result.reason is not None:
                    report.invalid[result.reason] += 1
                if result.index is not None:
                    report.outcomes[result.index.value] += 1
        return report

    total = BackfillReport()
    with ThreadPoolExecutor(max_workers=segments) as pool:
        for part in pool.map(segment, range(segments)):
            total.items += part.items
            total.outcomes.update(part.outcomes)
            total.invalid.update(part.invalid)
    return total
