"""`dunning simulate`: registers itself on the CLI's subcommands; loads everything, then simulates, then prints.

Bad input (a missing file, a line that is not JSON, a policy that fails validation or lint, a bad
date, days < 1) is an error naming the file and line, exit code 2, and nothing on stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from dunning.models.loan import iso_date
from dunning.models.policy import DEFAULT_POLICY_PATH, Policy, PolicyError, load_policy_file
from dunning_tools.simulate.book import InputError, read_book
from dunning_tools.simulate.engine import simulate
from dunning_tools.simulate.prices import load_prices
from dunning_tools.simulate.report import Run, as_json, as_text

MAX_DAYS = 366
EXIT_BAD_INPUT = 2

DESCRIPTION = """Run a policy over a book of LoansTable items before it goes live: no AWS, no moto.
The planner's hourly run and the sender's checks (ladder, send windows, caps, late fees, templates,
segments) over N business days from --start, with the functions' own pure code. Prints SMS per day by
stage, suppressions by reason, segments and an estimated SMS cost per destination country (a bundled,
dated price table: estimates, check them; --prices FILE replaces it). --compare FILE runs a second policy
over the same book and prints both side by side. Borrowers replying, paying, promising, disputing or
opting out are not simulated."""


def _start_date(value: str) -> dt.date:
    try:
        return iso_date(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {value!r}") from None


def _days(value: str) -> int:
    try:
        days = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of days, got {value!r}") from None
    if not 1 <= days <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_DAYS} days, got {days}")
    return days


def register(commands: Any) -> None:
    """Add `simulate` to the CLI's subparsers (`argparse._SubParsersAction`); its handler is `run`."""
    command = commands.add_parser(
        "simulate",
        help="run a policy over a JSON Lines book of loans: SMS per day, suppressions, segments, estimated cost",
        description=DESCRIPTION,
    )
    command.add_argument("--book", type=Path, required=True, metavar="FILE.jsonl", help="one LoansTable item a line")
    command.add_argument("--policy", type=Path, metavar="FILE", help="policy YAML (default: the bundled policy)")
    command.add_argument("--compare", type=Path, metavar="FILE", help="a second policy YAML, shown side by side")
    command.add_argument("--prices", type=Path, metavar="FILE", help="SMS price table JSON (default: the bundled one)")
    command.add_argument("--start", type=_start_date, required=True, metavar="YYYY-MM-DD", help="first business day")
    command.add_argument("--days", type=_days, required=True, metavar="N", help=f"business days (1..{MAX_DAYS})")
    command.add_argument("--json", action="store_true", help="print JSON instead of tables")
    command.set_defaults(handler=run)


def _policy(path: Path | None) -> tuple[Policy, str]:
    """The policy and its label (file, version, content hash); InputError when it does not load or lint."""
    from dunning_tools.policy_lint import lint_policy

    source = path or DEFAULT_POLICY_PATH
    try:
        policy = load_policy_file(source)
        text = source.read_bytes()
    except PolicyError as exc:
        raise InputError(str(exc)) from None
    problems = lint_policy(policy)
    if problems:
        listed = "; ".join(problem.message for problem in problems)
        raise InputError(f"{source}: policy refused by `dunning policy check`: {listed}")
    shown = "the bundled policy" if path is None else str(path)
    return policy, f"{shown} (version {policy.version}, sha256 {hashlib.sha256(text).hexdigest()[:12]})"


def render(
    *,
    book: Path,
    start: dt.date,
    days: int,
    policy: Path | None = None,
    compare: Path | None = None,
    prices: Path | None = None,
    json_output: bool = False,
) -> str:
    """The whole output, or InputError before anything is simulated."""
    items = read_book(book)
    policies = [_policy(policy)] + ([_policy(compare)] if compare is not None else [])
    table = load_prices(prices)
    runs = []
    for loaded, label in policies:
        try:
            runs.append(Run(label, simulate(items, loaded, start, days)))
        except PolicyError as exc:  # a template the lint passed but a real loan breaks
            raise InputError(f"{label}: {exc}") from None
    if json_output:
        return json.dumps(as_json(str(book), start.isoformat(), runs, table), ensure_ascii=False, indent=2) + "\n"
    return as_text(str(book), start.isoformat(), runs, table)


def run(args: argparse.Namespace) -> int:
    try:
        output = render(
            book=args.book,
            start=args.start,
            days=args.days,
            policy=args.policy,
            compare=args.compare,
            prices=args.prices,
            json_output=args.json,
        )
    except InputError as exc:
        print(f"dunning simulate: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    sys.stdout.write(output)
    return 0
