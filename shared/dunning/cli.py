"""`dunning` command line: local invoke, policy lint, the demo, and operator reports.

Every command validates its arguments and exits non-zero with a message naming what is wrong.
"""

from __future__ import annotations

import argparse
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

    policy = commands.add_parser("policy", help="policy documents")
    policy_commands = policy.add_subparsers(dest="policy_command", required=True)
    check = policy_commands.add_parser("check", help="validate and lint a policy YAML before deploying it")
    check.add_argument("file", type=Path, help="policy YAML")

    demo = commands.add_parser("demo", help="simulate 40 days of the schedule on a generated book, in moto")
    demo.add_argument("--loans", type=int, default=500, help="size of the generated book (50..20000)")
    demo.add_argument("--days", type=int, default=40, help="simulated days (1..120)")
    demo.add_argument("--seed", type=int, default=7)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "invoke":
        from dunning.local import cli_invoke

        return cli_invoke(
            args.function, args.event, template_path=args.template, parameters=dict(args.parameter_overrides)
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
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
