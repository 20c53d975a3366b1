"""Cold init of a function against three bare boto3 clients, and what the Powertools Tracer adds to it.

Each figure is the best of N fresh interpreters (default 5), timed inside the process from its first
import until its AWS clients exist (interpreter start-up is the same for all and left out):
- `bare`: `import boto3` and a DynamoDB, an SQS and an SNS client (issue 11's yardstick);
- `handler, tracing on`: the handler module imported with Lambda's environment (LAMBDA_TASK_ROOT set:
  the Tracer is on and patches botocore), then the same three clients through `dunning.dal.aws.client`;
- `handler, tracing off`: the same with POWERTOOLS_TRACE_DISABLED=true (template.yaml's `Tracing:
  PassThrough`: no Tracer is built and the X-Ray SDK is not imported, `dunning.observability.Untraced`);
- `tracer alone`: `Tracer(service=..., patch_modules=("botocore",))` with Lambda's environment, timed
  after boto3 and Powertools' Logger and Metrics are imported (what the Tracer adds, nothing else);
- with `--without DIR` (a checkout without a Tracer, e.g. `git archive <commit> | tar -x -C DIR`):
  the handler imported from there.

    PYTHONPATH=.:shared:tools .venv/bin/python benchmarks/cold_init.py [--handler send_reminders] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BARE = """
import time
start, cpu = time.perf_counter(), time.process_time()
import boto3
session = boto3.session.Session()
for name in ("dynamodb", "sqs", "sns"):
    session.client(name, region_name="us-east-1")
print(time.perf_counter() - start, time.process_time() - cpu)
"""

HANDLER = """
import time
start, cpu = time.perf_counter(), time.process_time()
import importlib
importlib.import_module("functions.{handler}.app")
from dunning.dal.aws import client
for name in ("dynamodb", "sqs", "sns"):
    client(name)
print(time.perf_counter() - start, time.process_time() - cpu)
"""

TRACER_ALONE = """
import time
import boto3
from aws_lambda_powertools import Logger, Metrics
start, cpu = time.perf_counter(), time.process_time()
from aws_lambda_powertools import Tracer
tracer = Tracer(service="dunning", patch_modules=("botocore",))
assert not tracer.disabled
print(time.perf_counter() - start, time.process_time() - cpu)
"""


def _environment(root: Path, *, tracing: bool) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("POWERTOOLS_TRACE")}
    environment.update(
        {
            "PYTHONPATH": os.pathsep.join([str(root), str(root / "shared")]),
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "LAMBDA_TASK_ROOT": str(root),  # as in Lambda: the Tracer is on unless disabled
        }
    )
    if not tracing:
        environment["POWERTOOLS_TRACE_DISABLED"] = "true"
    return environment


def measure(variants: dict[str, tuple[str, Path, bool]], runs: int) -> dict[str, tuple[float, float]]:
    """Best wall and best CPU seconds of each variant; the variants take turns, so load hits them alike."""
    timings: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for _ in range(runs):
        for name, (code, root, tracing) in variants.items():
            run = subprocess.run(  # noqa: S603  (our own code, this interpreter)
                [sys.executable, "-c", code],
                env=_environment(root, tracing=tracing),
                capture_output=True,
                text=True,
                cwd=root,
            )
            if run.returncode != 0:
                raise SystemExit(run.stderr)
            wall, cpu = run.stdout.split()[-2:]
            timings[name].append((float(wall), float(cpu)))
    return {name: (min(t[0] for t in found), min(t[1] for t in found)) for name, found in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--handler", default="send_reminders", help="functions/<handler>/app.py")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--without", type=Path, help="a checkout of the code without the Tracer")
    args = parser.parse_args()
    code = HANDLER.format(handler=args.handler)
    variants = {
        "bare: boto3 + 3 clients": (BARE, ROOT, False),
        f"{args.handler}, tracing on": (code, ROOT, True),
        f"{args.handler}, tracing off": (code, ROOT, False),
    }
    if args.without:
        variants[f"{args.handler}, no Tracer (--without)"] = (code, args.without, True)
    variants["Tracer() alone, tracing on (after boto3, Logger, Metrics)"] = (TRACER_ALONE, ROOT, True)
    found = measure(variants, args.runs)
    bare_wall, bare_cpu = found["bare: boto3 + 3 clients"]
    print(f"cold init, best of {args.runs} fresh interpreters each, taking turns (ms, and x bare)")
    print(f"{'':<60} {'wall':>8} {'':>6} {'CPU':>8} {'':>6}")
    for name, (wall, cpu) in found.items():
        print(f"{name:<60} {wall * 1000:8.1f} {wall / bare_wall:5.2f}x {cpu * 1000:8.1f} {cpu / bare_cpu:5.2f}x")


if __name__ == "__main__":
    main()
