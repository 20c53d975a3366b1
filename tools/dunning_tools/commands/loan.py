"""`dunning loan LOAN_ID`: the loan's timeline (what happened to this loan?)."""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import sys
from typing import Any

from dunning_tools.commands.common import state_dir_argument


def register(subcommands: Any) -> None:
    loan = subcommands.add_parser(
        "loan",
        help="a loan's timeline: records, claims, holds, promises, plans, opt-outs, cases, bureau lines",
        description=(
            "Everything the stack holds about one loan, oldest first: delivery records (outcome, reason, stage,"
            " cycle; masked phone, never the body), send claims, the CONTROL item's holds, pauses, promises and"
            " plans (at their event times), the opt-out of its number, cases, an erasure, and its lines in the"
            " bureau files. Reads a deployed stack (--stack-name, else AWS_SAM_STACK_NAME when no local stack"
            " runs) or the running local stack. Exit 1 when the stack holds no trace of the loan."
        ),
    )
    loan.add_argument("loan_id", metavar="LOAN_ID")
    loan.add_argument("--stack-name", default="", help="a deployed stack (default: the running local stack)")
    loan.add_argument("--json", action="store_true", help="one JSON object instead of lines")
    loan.add_argument(
        "--bureau-days",
        type=_days,
        default=90,
        help="read the bureau files of this many recent days (default 90; 0: all)",
    )
    state_dir_argument(loan)
    loan.set_defaults(handler=functools.partial(_run, loan))


def _days(value: str) -> int:
    try:
        days = int(value)
    except ValueError:
        days = -1
    if days < 0:
        raise argparse.ArgumentTypeError(f"expected a number of days (0 for all), got {value!r}")
    return days


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from dunning_tools.loan_timeline import LoanTimelineError, check_loan_id, loan_timeline, stack_names

    try:
        check_loan_id(args.loan_id)
    except LoanTimelineError as exc:
        parser.error(str(exc))
    try:
        if args.stack_name:
            names = stack_names(args.stack_name)
        else:
            from dunning_tools.local.server import state_dir, use_running_server

            running = use_running_server(state_dir(args.state_dir))
            if running is not None:  # the local stack's names, from moto's CloudFormation as from AWS's
                names = stack_names(running.stack_name)
            elif os.environ.get("AWS_SAM_STACK_NAME"):
                names = stack_names(os.environ["AWS_SAM_STACK_NAME"])
            else:
                parser.error(
                    "name a deployed stack (--stack-name or AWS_SAM_STACK_NAME) or start the local one"
                    " (`dunning local start`)"
                )
        since = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=args.bureau_days) if args.bureau_days else None
        timeline = loan_timeline(names, args.loan_id, since)
    except LoanTimelineError as exc:
        parser.error(str(exc))
    if args.json:
        print(json.dumps(timeline.as_dict(), ensure_ascii=False, indent=2))
    else:
        for line in timeline.lines():
            print(line)
    if timeline.empty:
        print(f"dunning loan: the stack holds no trace of loan {args.loan_id}", file=sys.stderr)
        return 1
    return 0
