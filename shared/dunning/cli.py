"""`dunning` command line: local invoke and schedules, policy lint, the demo, and operator reports.

Every command validates its arguments and exits non-zero with a message naming what is wrong.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

FUNCTIONS = (
    "PlanRemindersFunction",
    "SendRemindersFunction",
    "RecordDeliveryFunction",
    "EscalateFunction",
    "LoanEventsFunction",
    "InboundSmsFunction",
    "BureauReportFunction",
    "LoanChangesFunction",
)


def _existing_file(value: str) -> Path:
    path = Path(value)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {value}")
    return path


def _parameter(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected Key=Value, got {value!r}")
    return key, val


def _iso_date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {value!r}") from None


def _scheduled_time(value: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 time with its offset (2026-11-28T02:00:00Z), got {value!r}"
        )
    return moment


def _table_arguments(command: argparse.ArgumentParser, *tables: str) -> None:
    command.add_argument(
        "--stack-name", default=os.environ.get("AWS_SAM_STACK_NAME", ""), help="deployed stack (env AWS_SAM_STACK_NAME)"
    )
    for table in tables:
        env = f"{table.upper()}_TABLE"
        command.add_argument(
            f"--{table}-table", default=os.environ.get(env, ""), help=f"table name (env {env}; else from the stack)"
        )


def _resolve_tables(parser: argparse.ArgumentParser, args: argparse.Namespace, *tables: str) -> dict[str, str]:
    """Table names from the flags or environment, else from the stack's resources."""
    names = {table: str(getattr(args, f"{table}_table")) for table in tables}
    missing = [table for table, name in names.items() if not name]
    if missing and not args.stack_name:
        flags = ", ".join(f"--{table}-table" for table in missing)
        parser.error(f"name the tables: --stack-name (or AWS_SAM_STACK_NAME), or {flags}")
    if missing:
        from dunning.dal.audit import stack_tables

        found = stack_tables(args.stack_name)
        for table in missing:
            names[table] = found.get(f"{table.capitalize()}Table", "")
            if not names[table]:
                parser.error(f"stack {args.stack_name} has no {table.capitalize()}Table")
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dunning", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    invoke = commands.add_parser(
        "invoke", help="like `sam local invoke`, without Docker: deploys template.yaml into moto in-process"
    )
    invoke.add_argument("function", choices=FUNCTIONS, metavar="FUNCTION", help="logical ID in template.yaml")
    invoke.add_argument("--event", "-e", type=_existing_file, required=True, help="event JSON file (events/*.json)")
    invoke.add_argument("--template", "-t", type=_existing_file, default=Path("template.yaml"))
    invoke.add_argument(
        "--parameter-overrides", type=_parameter, nargs="*", default=[], metavar="KEY=VALUE", help="template parameters"
    )

    schedule = commands.add_parser(
        "schedule",
        help="fire a schedule locally: its state machine from template.yaml runs in moto, functions in-process",
        description=(
            "Deploys template.yaml into moto in-process and starts the state machine the schedule starts (plan:"
            " hourly planning; daily: escalation and the bureau file) with the Scheduler's event for --time; prints"
            " the execution's status and every shard invocation. Exit 1 when the execution does not succeed."
        ),
    )
    schedule.add_argument("schedule", choices=("plan", "daily"), help="which schedule fires")
    schedule.add_argument("--time", type=_scheduled_time, required=True, help="scheduled time (ISO 8601 with offset)")
    schedule.add_argument("--loans", type=_existing_file, help="JSON list of LoansTable items to seed first")
    schedule.add_argument("--template", "-t", type=_existing_file, default=Path("template.yaml"))
    schedule.add_argument(
        "--parameter-overrides",
        type=_parameter,
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="template parameters (e.g. PlanningShards=4)",
    )

    policy = commands.add_parser("policy", help="policy documents")
    policy_commands = policy.add_subparsers(dest="policy_command", required=True)
    check = policy_commands.add_parser("check", help="validate and lint a policy YAML before deploying it")
    check.add_argument("file", type=Path, help="policy YAML")

    demo = commands.add_parser("demo", help="simulate 40 days of the schedule on a generated book, in moto")
    demo.add_argument("--loans", type=int, default=500, help="size of the generated book (50..20000)")
    demo.add_argument("--days", type=int, default=40, help="simulated days (1..120)")
    demo.add_argument("--seed", type=int, default=7)

    scan_note = "Reads the table with a paginated scan: fine for an operator tool, never used by the functions."
    uncertain = commands.add_parser(
        "uncertain",
        help="list UNCERTAIN delivery records (an SMS that may have left) for review",
        description=f"UNCERTAIN delivery records, oldest first, one JSON object a line. {scan_note}",
    )
    uncertain.add_argument("--since", type=_iso_date, help="only records created on or after this date (YYYY-MM-DD)")
    _table_arguments(uncertain, "deliveries")

    reconcile = commands.add_parser(
        "reconcile",
        help="list the send claims of a business date without an end state (exit 1 when any)",
        description=(
            "Every planned job ends as SENT, SUPPRESSED (with a reason), UNCERTAIN, or a message in the DLQ."
            f" Lists the claims touched that business date that have not. {scan_note}"
        ),
    )
    reconcile.add_argument("--date", type=_iso_date, required=True, help="business date (YYYY-MM-DD)")
    reconcile.add_argument("--timezone", default="", help="business timezone (default: the bundled policy's)")
    _table_arguments(reconcile, "state")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "invoke":
        from dunning.local import cli_invoke

        return cli_invoke(
            args.function, args.event, template_path=args.template, parameters=dict(args.parameter_overrides)
        )
    if args.command == "schedule":
        from dunning.local.schedule import cli_schedule

        return cli_schedule(
            args.schedule,
            args.time,
            loans_path=args.loans,
            template_path=args.template,
            parameters=dict(args.parameter_overrides),
        )
    if args.command == "policy":
        from dunning.policy_lint import check_policy_file

        problems = check_policy_file(args.file)
        for problem in problems:
            print(problem.message, file=sys.stderr)
        if problems:
            print(f"{args.file}: {len(problems)} problem(s); policy refused", file=sys.stderr)
            return 1
        print(f"{args.file}: policy OK")
        return 0
    if args.command == "demo":
        if not 50 <= args.loans <= 20000:
            parser.error("--loans must be between 50 and 20000")
        if not 1 <= args.days <= 120:
            parser.error("--days must be between 1 and 120")
        from dunning.local.demo import run_demo

        return run_demo(loans=args.loans, days=args.days, seed=args.seed)
    if args.command == "uncertain":
        from dunning.reports import uncertain

        rows = uncertain(_resolve_tables(parser, args, "deliveries")["deliveries"], args.since)
        for row in rows:
            print(json.dumps(row.as_dict(), ensure_ascii=False))
        print(f"{len(rows)} UNCERTAIN record(s)", file=sys.stderr)
        return 0
    if args.command == "reconcile":
        from zoneinfo import available_timezones

        from dunning.reports import PROBLEMS, reconcile

        timezone = args.timezone or _bundled_business_timezone()
        if timezone not in available_timezones():
            parser.error(f"argument --timezone: unknown IANA timezone {timezone!r}")
        state_table = _resolve_tables(parser, args, "state")["state"]
        touched, open_claims = reconcile(state_table, args.date, timezone, dt.datetime.now(dt.UTC))
        for claim in open_claims:
            print(json.dumps({**claim.as_dict(), "meaning": PROBLEMS[claim.problem]}, ensure_ascii=False))
        print(f"{args.date}: {touched} claim(s) touched, {len(open_claims)} without an end state", file=sys.stderr)
        return 1 if open_claims else 0
    parser.error(f"unknown command {args.command}")
    return 2


def _bundled_business_timezone() -> str:
    from dunning.models.policy import DEFAULT_POLICY_PATH, parse_policy

    policy = parse_policy(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"), DEFAULT_POLICY_PATH.name)
    return policy.business_timezone


if __name__ == "__main__":
    sys.exit(main())
