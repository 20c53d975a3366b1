"""`make bench`: throughput and memory of the pure core (what every planned loan and SMS costs).

Prints operations per second and peak memory for loan validation, the verdict, and composition.
Numbers are for comparison between commits on the same machine, not assertions.
"""

from __future__ import annotations

import datetime as dt
import time
import tracemalloc
from collections.abc import Callable
from decimal import Decimal

from dunning import decisions, ladder
from dunning.compose import ReminderContext, reference_code, render_reminder
from dunning.models.loan import parse_loan
from dunning.models.policy import load_policy_file

POLICY = load_policy_file()
NOW = dt.datetime(2026, 12, 10, 3, 0, tzinfo=dt.UTC)


def _items(n: int) -> list[dict[str, object]]:
    return [
        {
            "loan_id": f"LN{i:07d}",
            "borrower_id": f"BR{i:07d}",
            "borrower_name": "王小明" if i % 2 else "Jennifer Smith",
            "phone": f"+86138{i:08d}" if i % 2 else f"+1212{2000000 + i:07d}",
            "status": "OPEN",
            "due_date": (NOW.date() - dt.timedelta(days=i % 33)).isoformat(),
            "amount_due": Decimal("1234.56") + i,
            "currency": "CNY" if i % 2 else "USD",
            "locale": "zh-CN" if i % 2 else "en-US",
            "timezone": "Asia/Shanghai" if i % 2 else "America/New_York",
        }
        for i in range(n)
    ]


def bench(name: str, n: int, body: Callable[[], None]) -> None:
    """Time one run, then measure peak memory in a second run (tracemalloc slows what it traces)."""
    started = time.perf_counter()
    body()
    elapsed = time.perf_counter() - started
    tracemalloc.start()
    body()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"{name:<34} {n / elapsed:>10,.0f} /s   peak {peak / 2**20:6.1f} MiB   ({n} in {elapsed:.2f} s)")


def main() -> None:
    n = 20_000
    items = _items(n)
    loans = [parse_loan(item) for item in items]
    bench("parse_loan (validate an item)", n, lambda: [parse_loan(item) for item in items] and None)
    bench(
        "evaluate (verdict for a loan)",
        n,
        lambda: [decisions.evaluate(loan, None, NOW, POLICY, opted_out=False) for loan in loans] and None,
    )
    today = ladder.business_date(NOW, POLICY)

    def compose() -> None:
        for loan in loans[:5000]:
            stage = ladder.current_stage(loan.due_date, today, POLICY) or ladder.ladder_stages(POLICY.ladder)[0]
            fees = ladder.late_fees(loan, today, POLICY)
            reminder = ReminderContext(
                kind=stage.kind,
                locale=loan.locale or "zh-CN",
                name=loan.borrower_name,
                currency=loan.currency,
                total=loan.amount_due + fees,
                late_fees=fees,
                days_past_due=ladder.days_past_due(loan.due_date, today),
                due_date=loan.due_date,
                pay_by=ladder.pay_by(today, loan.due_date, POLICY),
                reference=reference_code(loan.loan_id, loan.cycle, stage.id),
            )
            render_reminder(POLICY, reminder)

    bench("render_reminder (compose one SMS)", 5000, compose)


if __name__ == "__main__":
    main()
