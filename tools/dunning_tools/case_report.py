"""`dunning cases`: the collection cases handed to human collectors, open and closed, for operators.

One row per case (`LOAN#id / CASE#cycle` in StateTable): when it opened, loan, borrower, cycle,
reason, days past due and amount when it opened (from its CollectionCaseOpened detail), status
(`open` or `closed`) and, once closed, why and when. Oldest first. Reads StateTable with a
filtered scan (`dunning_tools.dal.audit.scan_cases`): fine for an occasional operator command, never used by
the functions. No phone number or name is ever in a case item, so none can be printed.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from typing import Any, TextIO

from dunning_tools.dal.audit import scan_cases


@dataclass(frozen=True)
class CaseRow:
    opened_at: str
    loan_id: str
    borrower_id: str
    cycle: str
    reason: str
    days_past_due: int | None  # when it opened; None if the stored detail is unreadable
    amount_due: str
    late_fees: str
    currency: str
    status: str  # open or closed
    closed_reason: str
    closed_at: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


COLUMNS = tuple(f.name for f in fields(CaseRow))


def _detail(item: dict[str, Any]) -> dict[str, Any]:
    """The CollectionCaseOpened detail stored on the case; {} when it cannot be read (the row says so by its blanks)."""
    try:
        detail = json.loads(str(item.get("detail") or "{}"))
    except ValueError:
        return {}
    return detail if isinstance(detail, dict) else {}


def case_row(item: dict[str, Any]) -> CaseRow:
    detail = _detail(item)
    dpd = detail.get("days_past_due")
    return CaseRow(
        opened_at=str(item.get("opened_at") or detail.get("opened_at") or ""),
        loan_id=str(item.get("loan_id") or str(item["pk"]).removeprefix("LOAN#")),
        borrower_id=str(item.get("borrower_id") or detail.get("borrower_id") or ""),
        cycle=str(item.get("cycle") or str(item["sk"]).removeprefix("CASE#")),
        reason=str(item.get("reason") or detail.get("reason") or ""),
        days_past_due=dpd if isinstance(dpd, int) and not isinstance(dpd, bool) else None,
        amount_due=str(detail.get("amount_due") or ""),
        late_fees=str(detail.get("late_fees") or ""),
        currency=str(detail.get("currency") or ""),
        status="closed" if item.get("closed_at") else "open",
        closed_reason=str(item.get("close_reason") or ""),
        closed_at=str(item.get("closed_at") or ""),
    )


def list_cases(state_table: str, *, only_open: bool = False) -> list[CaseRow]:
    """Every case (or the open ones), oldest first."""
    rows = (case_row(item) for item in scan_cases(state_table))
    return sorted(
        (row for row in rows if not only_open or row.status == "open"),
        key=lambda row: (row.opened_at, row.loan_id, row.cycle),
    )


def write_json_lines(rows: Iterable[CaseRow], out: TextIO) -> None:
    for row in rows:
        out.write(json.dumps(row.as_dict(), ensure_ascii=False) + "\n")


def write_csv(rows: Iterable[CaseRow], out: TextIO) -> None:
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if value is None else value for key, value in row.as_dict().items()})
