"""Where a function's cold start goes: the libraries it loads, and the rest, which is the project's own code.

`benchmarks/scale.py` times every function's cold start against the baseline (boto3 and three bare clients,
issue 11's yardstick). This diagnostic splits one function's figure, each the best of N fresh interpreters
(default 5) taken in turn, CPU seconds, in Lambda's environment as scale.py sets it:
- `baseline`: scale.py's (`import boto3` and a DynamoDB, an SQS and an SNS client);
- `libraries`: the libraries' floor. A process that imports exactly the third-party and standard-library
  modules the function ends up loading, with the garbage collector paused as `dunning.coldstart` pauses it,
  builds the Tracer when traced, and the same three clients; none of the project's modules;
- `function`: scale.py's cold init (the handler imported, its service and the three clients built).
`function - libraries` is what the project's own modules cost: their import, pydantic models, dataclasses.

    PYTHONPATH=.:shared:tools .venv/bin/python benchmarks/cold_init.py [--function loan_events] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from benchmarks import scale

LOADED = """
import sys
import functions.{function}.app
from dunning import service
from dunning.settings import get_settings
service.{factory}(get_settings())
from dunning.dal.aws import dynamodb, sns, sqs
dynamodb(), sqs(), sns()
print(" ".join(m for m in sys.modules if not m.startswith(("dunning", "functions", "__main__"))))
"""

LIBRARIES = """
import time
started = time.process_time()
import gc
gc.disable()
import importlib
for name in {modules!r}:
    try:
        importlib.import_module(name)
    except ImportError:  # a module only some platform has, loaded by a library's fallback
        pass
gc.freeze()
gc.enable()
if {traced}:
    from aws_lambda_powertools import Tracer
    Tracer(service="dunning", patch_modules=("botocore",))
import boto3
session = boto3.session.Session()
clients = [session.client(name) for name in ("dynamodb", "sqs", "sns")]
print(time.process_time() - started)
"""


def libraries_loaded(function: str, traced: bool) -> list[str]:
    """The third-party and standard-library modules a cold start of `function` leaves loaded, in load order."""
    code = LOADED.format(function=function, factory=scale.SERVICES[function])
    return _output(code, traced).split()


def _output(code: str, traced: bool) -> str:
    env = {key: value for key, value in os.environ.items() if key not in scale.NOT_IN_LAMBDA}
    env.update(PYTHONPATH=f"{scale.ROOT}{os.pathsep}{scale.ROOT / 'shared'}")
    env.update(POWERTOOLS_TRACE_DISABLED=scale.TRACE_DISABLED[traced], **scale.FUNCTION_ENV)
    done = subprocess.run(  # noqa: S603 (this interpreter, our own snippet)
        [sys.executable, "-c", code], env=env, cwd=scale.ROOT, capture_output=True, text=True, check=True
    )
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--function", default="loan_events", choices=sorted(scale.SERVICES))
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    scale.compile_project()
    print(f"{args.function}: cold init, CPU seconds, best of {args.runs} fresh processes each (× the baseline)")
    for traced, mode in ((True, "Active"), (False, "PassThrough")):
        floor_code = LIBRARIES.format(modules=libraries_loaded(args.function, traced), traced=traced)
        baseline = floor = function = float("inf")
        for _ in range(args.runs):  # in turn: a load that comes and goes weighs on all three alike
            baseline = min(baseline, *scale.fresh_process_seconds(scale.BOTO3_BASELINE, 1))
            floor = min(floor, *scale.fresh_process_seconds(floor_code, 1, traced=traced))
            function = min(function, scale.cold_init(args.function, 1, traced=traced).first_event_s)
        print(
            f"  Tracing {mode:<11} baseline {baseline:.3f} s | libraries {floor:.3f} s ({floor / baseline:.2f}×) | "
            f"function {function:.3f} s ({function / baseline:.2f}×) | the project's code {function - floor:.3f} s "
            f"({(function - floor) / baseline:.2f}×)"
        )


if __name__ == "__main__":
    main()
