"""`dunning seed --loans N`: a generated loan book in the running local stack's LoansTable."""

from __future__ import annotations

import argparse
import datetime as dt
import functools
from typing import Any

from dunning_tools.commands.common import state_dir_argument

MAX_LOANS = 20000


def register(subcommands: Any) -> None:
    seed = subcommands.add_parser(
        "seed",
        help="write a generated loan book into the running local stack's LoansTable, then feed its stream",
        description=(
            "Writes the demo's generated book (both locales, several zones, some two-loan borrowers, six malformed"
            " items on top of N) into LoansTable as upstream would, then hands LoansTable's stream to"
            " LoanChangesFunction as Lambda's poller would. Loan ids are LN000001..: seeding again overwrites them."
        ),
    )
    seed.add_argument("--loans", type=_loans, required=True, help=f"loans to generate (1..{MAX_LOANS})")
    seed.add_argument("--seed", type=int, default=7, help="random seed of the generated book (default 7)")
    seed.add_argument(
        "--start",
        type=_date,
        default=None,
        help="due dates fall from 26 days before to 29 days after this date (default: today, UTC)",
    )
    state_dir_argument(seed)
    seed.set_defaults(handler=functools.partial(_run, seed))


def _loans(value: str) -> int:
    try:
        loans = int(value)
    except ValueError:
        loans = 0
    if not 1 <= loans <= MAX_LOANS:
        raise argparse.ArgumentTypeError(f"expected a number of loans from 1 to {MAX_LOANS}, got {value!r}")
    return loans


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {value!r}") from None


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from dunning_tools.local.server import running_stack, state_dir

    running = running_stack(state_dir(args.state_dir))
    if running is None:
        parser.error("no local stack is running: `dunning local start` first")
    import boto3

    from dunning_tools.local import drain_stream
    from dunning_tools.local.demo import generate_book
    from dunning_tools.local.invoke import output_to_stderr

    stack = running.stack
    start = args.start or dt.datetime.now(dt.UTC).date()
    book = generate_book(args.loans, args.seed, start)
    table_name = stack.outputs["LoansTableName"]
    table = boto3.resource("dynamodb", region_name=stack.region).Table(table_name)
    try:
        with table.batch_writer(overwrite_by_pkeys=["loan_id"]) as batch:
            for item in book.items:
                batch.put_item(Item=item)
        batches = 0
        with output_to_stderr():  # the function's logs and metrics
            for mapping in stack.stream_mappings.values():
                if mapping.function_logical_id == "LoanChangesFunction":
                    batches += len(drain_stream(stack, "LoanChangesFunction"))
    finally:
        running.safe_point()
    print(
        f"seeded {len(book.items) - book.malformed} loans and {book.malformed} malformed items (due dates around"
        f" {start}) into {table_name}; LoanChangesFunction took {batches} stream batch(es)"
    )
    return 0
