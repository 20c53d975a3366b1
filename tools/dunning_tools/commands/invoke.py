"""`dunning invoke FUNCTION -e FILE|-`: like `sam local invoke`, without Docker."""

from __future__ import annotations

import argparse
import functools
import json
import sys
import traceback
from pathlib import Path
from typing import Any

from dunning_tools.commands.common import parameter, state_dir_argument


def register(subcommands: Any) -> None:
    from dunning_tools.cli import FUNCTIONS

    invoke = subcommands.add_parser(
        "invoke",
        help="like `sam local invoke`, without Docker: against the running local stack, else a throwaway one",
        description=(
            "Runs the function's handler in this process with the environment the stack gave it; its AWS calls go"
            " to moto. With a running local stack (`dunning local start`) that stack is used and keeps what the"
            " function wrote; otherwise template.yaml is deployed into a throwaway in-process moto, as before."
            " The result is printed as JSON on stdout, the function's logs on stderr."
        ),
    )
    invoke.add_argument("function", choices=FUNCTIONS, metavar="FUNCTION", help="logical ID in template.yaml")
    invoke.add_argument(
        "--event", "-e", required=True, help="event JSON file (events/*.json), or - to read it from stdin"
    )
    invoke.add_argument(
        "--template", "-t", type=Path, default=None, help="throwaway stack only (default template.yaml)"
    )
    invoke.add_argument(
        "--parameter-overrides",
        type=parameter,
        nargs="*",
        default=None,
        metavar="KEY=VALUE",
        help="template parameters (throwaway stack only)",
    )
    state_dir_argument(invoke)
    invoke.set_defaults(handler=functools.partial(_run, invoke))


def read_event(parser: argparse.ArgumentParser, source: str) -> dict[str, Any]:
    """The event from a file or stdin (`-`); a clear error when it is missing or not a JSON object."""
    name = "stdin" if source == "-" else source
    if source == "-":
        text = sys.stdin.read()
    else:
        path = Path(source)
        if not path.is_file():
            parser.error(f"argument --event/-e: no such file: {source}")
        text = path.read_text(encoding="utf-8")
    if not text.strip():
        parser.error(f"argument --event/-e: {name} holds no event")
    try:
        event = json.loads(text)
    except ValueError as exc:
        parser.error(f"argument --event/-e: the event on {name} is not JSON: {exc}")
    if not isinstance(event, dict):
        parser.error(f"argument --event/-e: the event on {name} is a JSON {type(event).__name__}, not an object")
    return event


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from dunning_tools.local.server import running_stack, state_dir

    event = read_event(parser, args.event)
    running = running_stack(state_dir(args.state_dir))
    if running is None:
        from dunning_tools.local import cli_invoke

        template = args.template or Path("template.yaml")
        if args.template is not None and not template.is_file():
            parser.error(f"argument --template/-t: no such file: {template}")
        print(
            "dunning invoke: no local stack is running (`dunning local start` keeps one);"
            " deploying a throwaway stack in-process: nothing it writes is kept",
            file=sys.stderr,
        )
        return cli_invoke(args.function, event, template_path=template, parameters=dict(args.parameter_overrides or []))
    if args.template is not None or args.parameter_overrides is not None:
        parser.error(
            "--template and --parameter-overrides apply to a throwaway stack; the running local stack keeps its own"
            " (`dunning local stop`, then `dunning local start --parameter-overrides ...`)"
        )
    from dunning_tools.local import invoke
    from dunning_tools.local.invoke import output_to_stderr

    stack = running.stack
    print(f"dunning invoke: {args.function} on the local stack {stack.name} ({running.info.endpoint})", file=sys.stderr)
    try:
        with output_to_stderr():  # like `sam local invoke`: only the result on stdout
            result = invoke(stack, args.function, event)
    except Exception:
        traceback.print_exc()
        return 1
    finally:
        running.safe_point()
    print(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    return 0
