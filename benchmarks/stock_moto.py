"""The demo on stock moto: what issue 11's deliverable 8 (500 loans over 40 days in 75 s, no moto patch) runs into.

`make demo` runs moto with `dunning_tools.local.moto_fastpath`; this runs the same code on moto as installed:
- `quiet`: an empty stack (the demo's parameters), CPU of one simulated hour of the demo's loop (the opt-out
  sync, the planning state machine, a queue drain), the average of 20 hours, and the 960 hours of 40 days;
- `demo`: `make demo`'s run (`run_demo`) for `--loans` over `--days`, with the fast path left out: run time,
  CPU and peak memory (at 500 loans a day takes minutes and gigabytes: mind the machine).

    PYTHONPATH=.:shared:tools .venv/bin/python benchmarks/stock_moto.py quiet
    PYTHONPATH=.:shared:tools .venv/bin/python benchmarks/stock_moto.py demo --loans 500 --days 1

Not part of `make bench`: the second mode takes ~6 minutes and ~12 GB at 500 loans.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import resource
import sys
import time

HOURS = 20
DEMO_HOURS = 40 * 24


def quiet_hours() -> None:
    import moto

    from dunning_tools.local import EXECUTE_STATE_MACHINES, deploy_stack, drain_queue, invoke, run_schedule
    from dunning_tools.local.demo import PARAMETERS, _opt_out_sync_event

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with moto.mock_aws(config=EXECUTE_STATE_MACHINES), contextlib.redirect_stdout(sys.stderr):
        stack = deploy_stack("template.yaml", PARAMETERS, stack_name="dunning-stock")
        start = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
        run_schedule(stack, "plan", start)  # the first execution registers the machine and imports the handlers
        parts = {"opt-out sync": 0.0, "planning execution": 0.0, "queue drain": 0.0}
        for hour in range(1, HOURS + 1):
            now = start + dt.timedelta(hours=hour)
            began = time.process_time()
            invoke(stack, "SyncOptOutsFunction", _opt_out_sync_event(stack.region, now))
            planned = time.process_time()
            run_schedule(stack, "plan", now)
            drained = time.process_time()
            drain_queue(stack)
            parts["opt-out sync"] += planned - began
            parts["planning execution"] += drained - planned
            parts["queue drain"] += time.process_time() - drained
    hour_s = sum(parts.values()) / HOURS
    shown = ", ".join(f"{name} {seconds / HOURS * 1000:.0f} ms" for name, seconds in parts.items())
    shards = PARAMETERS["PlanningShards"]
    print(f"stock moto, empty stack (PlanningShards {shards}): a simulated hour {hour_s * 1000:.0f} ms CPU ({shown})")
    before_any_loan = hour_s * DEMO_HOURS
    print(f"40 days = {DEMO_HOURS} hours: {before_any_loan:.0f} s of CPU before any loan is read (target: 75 s in all)")


def demo(loans: int, days: int) -> int:
    from dunning_tools.local import moto_fastpath
    from dunning_tools.local.demo import run_demo

    moto_fastpath.installed = contextlib.nullcontext  # type: ignore[assignment]  # moto as installed
    wall, cpu = time.monotonic(), time.process_time()
    code = run_demo(loans=loans, days=days)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"stock moto, {loans} loans over {days} day(s): exit {code}, {time.monotonic() - wall:.1f} s run, "
        f"{time.process_time() - cpu:.1f} s CPU, peak memory {peak_mib:,.0f} MiB",
        file=sys.stderr,
    )
    return code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("quiet", "demo"))
    parser.add_argument("--loans", type=int, default=500)
    parser.add_argument("--days", type=int, default=1)
    args = parser.parse_args()
    if args.mode == "quiet":
        quiet_hours()
        return 0
    return demo(args.loans, args.days)


if __name__ == "__main__":
    raise SystemExit(main())
