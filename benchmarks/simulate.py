"""`dunning simulate` on 5,000 loans over 30 days: the figure the issue asks for (at most 30 s on this machine).

Writes a generated book (the demo's generator: zh-CN and en-US borrowers, several zones, some with two
loans, a few malformed items; a third of the items without `timezone`, so the zone comes from the
number; amounts alternately as JSON numbers and strings), then times the whole command as an operator
runs it: reading the book, loading and linting the policy, simulating, printing. Prints wall-clock and
CPU seconds. A measurement, not an assertion: the machine is shared, so wall-clock varies with its load.

    PYTHONPATH=.:shared:tools .venv/bin/python benchmarks/simulate.py [--loans 5000] [--days 30]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from dunning_tools import cli
from dunning_tools.local.demo import generate_book

START = dt.date(2026, 12, 1)


def write_book(path: Path, loans: int) -> int:
    items = generate_book(loans, seed=7, start=START).items
    with path.open("w", encoding="utf-8") as out:
        for n, item in enumerate(items):
            line: dict[str, Any] = dict(item)
            if n % 3 == 0:
                line.pop("timezone", None)
            for name in ("amount_due", "late_fees"):
                value = line.get(name)
                if isinstance(value, Decimal):
                    # A JSON number (its shortest repr is the exact decimal text) or a string.
                    line[name] = float(value) if n % 2 else str(value)
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
    return len(items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loans", type=int, default=5000)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        book = Path(folder) / "book.jsonl"
        items = write_book(book, args.loans)
        output = io.StringIO()
        wall, cpu = time.perf_counter(), time.process_time()
        with contextlib.redirect_stdout(output):
            code = cli.main(["simulate", "--book", str(book), "--start", START.isoformat(), "--days", str(args.days)])
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    total = next(line for line in output.getvalue().splitlines() if line.startswith("total "))
    print(
        f"dunning simulate: {items:,} items x {args.days} days: {wall:.1f} s wall-clock, {cpu:.1f} s CPU (exit {code})"
    )
    print(f"  {total}")


if __name__ == "__main__":
    main()
