"""`dunning local start|stop|status|drain`: the local stack that lasts between commands."""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from dunning_tools.commands.common import existing_file, parameter, state_dir_argument


def register(subcommands: Any) -> None:
    local = subcommands.add_parser(
        "local",
        help="a moto server with template.yaml deployed, kept between commands (start, stop, status, drain)",
        description=(
            "Runs moto's server on 127.0.0.1 in the background with template.yaml deployed. Its data (tables,"
            " queues, bucket objects, the phone-hash key) is saved in the state folder on stop and after each"
            " command that writes, and restored on the next start. `dunning invoke`, `seed`, `loan` and"
            " `local drain` use it while it runs."
        ),
    )
    actions = local.add_subparsers(dest="local_command", required=True)

    start = actions.add_parser("start", help="start the server in the background, deploy, restore the last snapshot")
    start.add_argument("--port", type=_port, default=0, help="port on 127.0.0.1 (default 0: a free one, recorded)")
    start.add_argument("--template", "-t", type=existing_file, default=Path("template.yaml"))
    start.add_argument(
        "--parameter-overrides",
        type=parameter,
        nargs="*",
        default=None,
        metavar="KEY=VALUE",
        help="template parameters (default: the snapshot's, else the template's defaults)",
    )
    start.add_argument("--stack-name", default="", help="default: the snapshot's, else dunning-local")
    start.add_argument("--fresh", action="store_true", help="discard the saved snapshot and start empty")
    state_dir_argument(start)
    start.set_defaults(handler=functools.partial(_start, start))

    stop = actions.add_parser("stop", help="save a snapshot and stop the server")
    state_dir_argument(stop)
    stop.set_defaults(handler=functools.partial(_stop, stop))

    status = actions.add_parser("status", help="running or not; endpoint, stack, snapshot (exit 3 when not running)")
    state_dir_argument(status)
    status.set_defaults(handler=functools.partial(_status, status))

    drain = actions.add_parser(
        "drain",
        help="feed the stream and queue consumers as Lambda's pollers would (LoanChanges-, SendRemindersFunction)",
    )
    state_dir_argument(drain)
    drain.set_defaults(handler=functools.partial(_drain, drain))


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0..65535, got {value!r}")
    return port


def _start(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from dunning_tools.local.server import LocalServerError, read_info, start, state_dir

    state = state_dir(args.state_dir)
    if args.fresh and read_info(state) is None:  # a running stack's snapshot is refused below anyway
        shutil.rmtree(state.snapshot, ignore_errors=True)
        state.stream_positions.unlink(missing_ok=True)
    parameters = dict(args.parameter_overrides) if args.parameter_overrides is not None else None
    try:
        info = start(state, port=args.port, template=args.template, parameters=parameters, stack_name=args.stack_name)
    except LocalServerError as exc:
        print(f"dunning local start: {exc}", file=sys.stderr)
        return 1
    restored = f"restored the snapshot of {info.restored_from}" if info.restored_from else "a fresh stack"
    print(f"local stack {info.stack_name} running on {info.endpoint} (pid {info.pid}); {restored}")
    print(f"state folder {state.root}; stop with `dunning local stop`")
    return 0


def _stop(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from dunning_tools.local.server import LocalServerError, state_dir, stop

    try:
        answer = stop(state_dir(args.state_dir))
    except LocalServerError as exc:
        print(f"dunning local stop: {exc}", file=sys.stderr)
        return 1
    if "error" in answer:
        print(f"dunning local stop: stopped, but {answer['error']}; see the state folder's server.log", file=sys.stderr)
        return 1
    counts = answer.get("counts", {})
    print(f"stopped; snapshot saved at {answer.get('saved_at', '?')}: {_summary(counts)}")
    return 0


def _status(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from dunning_tools.local.server import LocalServerError, read_info, saved_identity, state_dir

    state = state_dir(args.state_dir)
    try:
        info = read_info(state)
    except LocalServerError as exc:
        print(f"dunning local status: {exc}", file=sys.stderr)
        return 1
    identity = saved_identity(state)
    saved = (
        f"last snapshot {identity['saved_at']}: {_summary(identity.get('counts', {}))}" if identity else "no snapshot"
    )
    if info is None:
        print(f"not running (state folder {state.root}); {saved}")
        return 3
    print(f"running: stack {info.stack_name} on {info.endpoint} (pid {info.pid}, since {info.started_at}); {saved}")
    print(f"export AWS_ENDPOINT_URL={info.endpoint} AWS_DEFAULT_REGION={info.region}")
    return 0


def _drain(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from dunning_tools.local import drain_queue, drain_stream
    from dunning_tools.local.invoke import output_to_stderr
    from dunning_tools.local.server import running_stack, state_dir

    running = running_stack(state_dir(args.state_dir))
    if running is None:
        parser.error("no local stack is running: `dunning local start` first")
    stack = running.stack
    batches: dict[str, int] = {}
    try:
        with output_to_stderr():  # the functions' logs and metrics
            for mapping in stack.stream_mappings.values():
                batches[mapping.function_logical_id] = len(drain_stream(stack, mapping.function_logical_id))
            if "ReminderQueue" in stack.resources and "SendRemindersFunction" in stack.resources:
                batches["SendRemindersFunction"] = len(drain_queue(stack))
    finally:
        running.safe_point()
    print(json.dumps({"batches": batches}))
    return 0


def _summary(counts: dict[str, Any]) -> str:
    kept = {name: n for name, n in counts.items() if n}
    return ", ".join(f"{name} {n}" for name, n in sorted(kept.items())) or "empty"
