"""`dunning` command line: local invoke, stack and schedules, policy lint, the demo, operator reports, the
quarantine replay, hotline verify.

Every command validates its arguments and exits non-zero with a message naming what is wrong.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from dunning_tools.commands.common import QUARANTINING_FUNCTIONS, existing_file, parameter

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
# Commands in modules of their own (`dunning_tools.commands.<name>`, each with `register(subcommands)`).
COMMAND_MODULES = (
    "invoke",
    "local",
    "seed",
    "loan",
)


def _iso_date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {value!r}") from None


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value!r}")
    return number


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
        from dunning_tools.dal.audit import stack_tables

        found = stack_tables(args.stack_name)
        for table in missing:
            names[table] = found.get(f"{table.capitalize()}Table", "")
            if not names[table]:
                parser.error(f"stack {args.stack_name} has no {table.capitalize()}Table")
    return names


def _reference(value: str) -> str:
    from dunning.compose.reference import parse_reference_code

    try:
        return parse_reference_code(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _e164(value: str) -> str:
    from dunning.models.loan import e164

    try:
        return e164(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dunning", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"dunning_tools.commands.{name}").register(commands)

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
    schedule.add_argument("--loans", type=existing_file, help="JSON list of LoansTable items to seed first")
    schedule.add_argument("--template", "-t", type=existing_file, default=Path("template.yaml"))
    schedule.add_argument(
        "--parameter-overrides",
        type=parameter,
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="template parameters (e.g. PlanningShards=4)",
    )

    policy = commands.add_parser("policy", help="policy documents")
    policy_commands = policy.add_subparsers(dest="policy_command", required=True)
    check = policy_commands.add_parser("check", help="validate and lint a policy YAML before deploying it")
    check.add_argument("file", type=Path, help="policy YAML")

    from dunning_tools.local.demo import DEFAULT_DAYS, DEFAULT_LOANS

    demo = commands.add_parser("demo", help="simulate days of the schedules on a generated book, in moto")
    demo.add_argument("--loans", type=int, default=DEFAULT_LOANS, help="size of the generated book (50..20000)")
    demo.add_argument("--days", type=int, default=DEFAULT_DAYS, help="simulated days (1..120)")
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

    replay = commands.add_parser(
        "replay",
        help="list quarantined input (function, kind, reason, age); --apply re-invokes its function",
        description=(
            "Reads the stack's QuarantineQueue: one JSON object a line (function, kind, reason, age; never the"
            " event itself, it may hold a phone number). Lists only, unless --apply: then each message's function"
            " is invoked again with the original event, and the message is deleted only when the function now"
            " accepts it. Exits 1 when --apply leaves messages in the quarantine."
        ),
    )
    replay.add_argument(
        "--stack-name", default=os.environ.get("AWS_SAM_STACK_NAME", ""), help="deployed stack (env AWS_SAM_STACK_NAME)"
    )
    mode = replay.add_mutually_exclusive_group()
    mode.add_argument("--apply", action="store_true", help="re-invoke the functions and delete what they accept")
    mode.add_argument("--dry-run", action="store_true", help="only list (the default)")
    replay.add_argument(
        "--function",
        action="append",
        choices=QUARANTINING_FUNCTIONS,
        default=[],
        metavar="FUNCTION",
        help=f"only this function's messages (repeatable; one of {', '.join(QUARANTINING_FUNCTIONS)})",
    )
    replay.add_argument("--limit", type=_positive, default=1000, help="at most this many messages (default 1000)")

    verify = commands.add_parser(
        "verify",
        help="hotline: what an SMS reference code refers to (exit 1 when no record, or --phone did not get it)",
        description=(
            "Every delivery record that printed CODE (several may share a code): loan, stage, time sent, outcome,"
            " masked number, and what the loan owes now (amount due plus late fees, pay-by date) under the policy."
            " With --phone, whether that number received it. Reads only."
        ),
    )
    verify.add_argument("code", type=_reference, metavar="CODE", help="the 6-character code, any case")
    verify.add_argument("--phone", type=_e164, help="the caller's number, E.164 (+8613800138000)")
    verify.add_argument("--policy", type=existing_file, help="policy YAML in force (default: the bundled one)")
    verify.add_argument("--json", action="store_true", help="one JSON object a line")
    _table_arguments(verify, "deliveries", "loans", "state")

    cases = commands.add_parser(
        "cases",
        help="list collection cases (opened, loan, borrower, cycle, reason, status) as JSON lines or CSV",
        description=f"Collection cases handed to human collectors, oldest first. {scan_note}",
    )
    cases.add_argument("--open", action="store_true", dest="only_open", help="only cases not closed yet")
    cases.add_argument("--csv", action="store_true", help="CSV with a header row instead of JSON lines")
    _table_arguments(cases, "state")
    from dunning_tools.simulate.command import register as register_simulate

    register_simulate(commands)  # commands that register themselves run through args.handler
    backfill = commands.add_parser(
        "backfill",
        help="index the loans an existing LoansTable already holds (once, after the first deploy)",
        description=(
            "Scans LoansTable in parallel segments through LoanChangesFunction's code: every OPEN valid loan"
            " enters the ladder index. Idempotent; never overwrites what the stream wrote. At its end it wakes"
            " every planner shard once: the next hourly fire reads the book."
        ),
    )
    backfill.add_argument("--segments", type=int, default=4, help="parallel Scan segments (1..64)")
    _table_arguments(backfill, "loans", "state", "deliveries")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is not None:  # commands that register themselves
        return int(args.handler(args))
    if args.command == "schedule":
        from dunning_tools.local.schedule import cli_schedule

        return cli_schedule(
            args.schedule,
            args.time,
            loans_path=args.loans,
            template_path=args.template,
            parameters=dict(args.parameter_overrides),
        )
    if args.command == "policy":
        from dunning_tools.policy_lint import check_policy_file

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
        from dunning_tools.local.demo import run_demo

        return run_demo(loans=args.loans, days=args.days, seed=args.seed)
    if args.command == "uncertain":
        from dunning_tools.reports import uncertain

        rows = uncertain(_resolve_tables(parser, args, "deliveries")["deliveries"], args.since)
        for row in rows:
            print(json.dumps(row.as_dict(), ensure_ascii=False))
        print(f"{len(rows)} UNCERTAIN record(s)", file=sys.stderr)
        return 0
    if args.command == "reconcile":
        from zoneinfo import available_timezones

        from dunning_tools.reports import PROBLEMS, reconcile

        timezone = args.timezone or _bundled_business_timezone()
        if timezone not in available_timezones():
            parser.error(f"argument --timezone: unknown IANA timezone {timezone!r}")
        state_table = _resolve_tables(parser, args, "state")["state"]
        touched, open_claims = reconcile(state_table, args.date, timezone, dt.datetime.now(dt.UTC))
        for claim in open_claims:
            print(json.dumps({**claim.as_dict(), "meaning": PROBLEMS[claim.problem]}, ensure_ascii=False))
        print(f"{args.date}: {touched} claim(s) touched, {len(open_claims)} without an end state", file=sys.stderr)
        return 1 if open_claims else 0
    if args.command == "replay":
        return _replay(parser, args)
    if args.command == "verify":
        return _verify(parser, args)
    if args.command == "cases":
        return _cases(parser, args)
    if args.command == "backfill":
        return _backfill(parser, args)
    parser.error(f"unknown command {args.command}")
    return 2


def _replay(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if not args.stack_name:
        parser.error("name the stack: --stack-name (or AWS_SAM_STACK_NAME)")
    from dunning_tools.local.replay import DeployedStack, ReplayError, replay

    try:
        target = DeployedStack(args.stack_name)
    except ReplayError as exc:
        print(f"dunning replay: {exc}", file=sys.stderr)
        return 2
    now = dt.datetime.now(dt.UTC)
    results = replay(target, apply=args.apply, functions=args.function, limit=args.limit, now=now)
    for result in results:
        print(json.dumps(result.as_dict(now), ensure_ascii=False))
    left = sum(result.left for result in results)
    if not args.apply:
        print(f"{len(results)} quarantined message(s) listed; nothing invoked (--apply to replay)", file=sys.stderr)
        return 0
    print(f"{len(results) - left} replayed and deleted, {left} left in the quarantine", file=sys.stderr)
    return 1 if left else 0


def _verify(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from dunning.dal.deliveries import DeliveriesRepository
    from dunning.dal.loans import LoansRepository
    from dunning.dal.state import StateRepository
    from dunning.models.policy import PolicyError, load_policy_file
    from dunning.observability import mask_phone
    from dunning_tools.hotline import verify_code

    try:
        policy = load_policy_file(args.policy) if args.policy else load_policy_file()
    except PolicyError as exc:
        parser.error(f"argument --policy: {exc}")
    tables = _resolve_tables(parser, args, "deliveries", "loans", "state")
    matches = verify_code(
        args.code,
        deliveries=DeliveriesRepository(tables["deliveries"]),
        loans=LoansRepository(tables["loans"]),
        state=StateRepository(tables["state"]),
        policy=policy,
        now=dt.datetime.now(dt.UTC),
        phone=args.phone,
    )
    for match in matches:
        print(json.dumps(match.as_dict(), ensure_ascii=False) if args.json else match.as_text())
    print(f"{args.code}: {len(matches)} record(s)", file=sys.stderr)
    if args.phone is None:
        return 0 if matches else 1
    received = any(match.received for match in matches)
    print(
        f"received by {mask_phone(args.phone)}: {'yes' if received else 'no'}",
        file=sys.stderr if args.json else sys.stdout,
    )
    return 0 if received else 1


def _cases(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from dunning_tools.case_report import list_cases, write_csv, write_json_lines

    try:
        rows = list_cases(_resolve_tables(parser, args, "state")["state"], only_open=args.only_open)
    except (ClientError, BotoCoreError) as exc:
        print(f"dunning cases: cannot read the cases: {exc}", file=sys.stderr)
        return 2
    (write_csv if args.csv else write_json_lines)(rows, sys.stdout)
    print(f"{len(rows)} {'open ' if args.only_open else ''}case(s)", file=sys.stderr)
    return 0


def _backfill(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from dunning.dal.deliveries import DeliveriesRepository
    from dunning.dal.ladder import LadderRepository
    from dunning.dal.state import StateRepository
    from dunning.loan_changes import LoanChanges
    from dunning_tools.backfill import MAX_SEGMENTS, backfill

    if not 1 <= args.segments <= MAX_SEGMENTS:
        parser.error(f"argument --segments: must be between 1 and {MAX_SEGMENTS}")
    if not args.loans_table and args.stack_name:
        from dunning_tools.dal.audit import stack_outputs

        # With ExistingLoansTableName the table is no resource of the stack: its output names it.
        args.loans_table = stack_outputs(args.stack_name).get("LoansTableName", "")
    tables = _resolve_tables(parser, args, "loans", "state", "deliveries")
    changes = LoanChanges(DeliveriesRepository(tables["deliveries"]), LadderRepository(tables["state"]), 400)
    report = backfill(tables["loans"], changes, segments=args.segments)
    # No poke per loan indexed (millions): one for every planner shard at the end, so the loans it indexed already
    # due are planned at the next hourly fire, not after the shards' sleep (6 hours at most).
    StateRepository(tables["state"]).wake_planner()
    print(json.dumps(report.as_dict()))
    print(f"{report.items} loan item(s) read, {report.outcomes['entered']} in the ladder index", file=sys.stderr)
    return 0


def _bundled_business_timezone() -> str:
    from dunning.models.policy import DEFAULT_POLICY_PATH, parse_policy

    policy = parse_policy(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"), DEFAULT_POLICY_PATH.name)
    return policy.business_timezone


if __name__ == "__main__":
    sys.exit(main())
