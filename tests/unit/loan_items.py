"""A valid LoansTable item for unit tests, changed per test (shared by the pure-core tests)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from dunning.models.loan import Loan, parse_loan


def make_loan(due: dt.date, **changes: object) -> Loan:
    item: dict[str, object] = {
        "loan_id": "L-1",
        "borrower_id": "B-1",
        "borrower_name": "张三",
        "phone": "+8613800138000",
        "status": "OPEN",
        "due_date": due.isoformat(),
        "amount_due": Decimal("1000.00"),
        "currency": "CNY",
    }
    item.update(changes)
    return parse_loan(item)
