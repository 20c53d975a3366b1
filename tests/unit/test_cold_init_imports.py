"""What a function's cold start loads: its handler imported and its service built, in a fresh process.

Not a timing (benchmarks/scale.py measures cold init): which modules a function never uses stay unloaded,
so their import and model building are not part of its cold start.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks.scale import FUNCTION_ENV, SERVICES

ROOT = Path(__file__).resolve().parents[2]
# The functions' environment as the cold-init bench gives it (functions/<name>/app.py -> its service there too),
# untraced: which modules load, not what X-Ray adds (the Tracer's own tests cover that).
ENVIRONMENT = {
    **{key: value for key, value in FUNCTION_ENV.items() if key != "LAMBDA_TASK_ROOT"},
    "PYTHONPATH": f"{ROOT}:{ROOT / 'shared'}",
    "PATH": "/usr/bin:/bin",
}


def loaded(*functions: str) -> set[str]:
    """The modules loaded once `functions` are imported and their services built, in one fresh process."""
    code = (
        "import sys\n"
        + "".join(f"import functions.{name}.app\n" for name in functions)  # in order, as a function's init
        + "from dunning import service\nfrom dunning.settings import get_settings\n"
        + "".join(f"service.{SERVICES[name]}(get_settings())\n" for name in functions)
        + "print('\\n'.join(sorted(sys.modules)))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=ENVIRONMENT, capture_output=True, text=True, check=True
    )
    return set(run.stdout.split())


def test_the_services_map_every_function() -> None:
    assert sorted(SERVICES) == sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py"))


def test_functions_that_never_read_the_policy_never_load_it() -> None:
    modules = loaded("record_delivery", "sync_opt_outs")

    assert {"dunning.delivery_status", "dunning.opt_out_sync", "dunning.dal.state"} <= modules
    assert {"dunning.config", "dunning.models.policy", "yaml"} & modules == set()


def test_the_scheduled_functions_build_the_scheduled_event_alone() -> None:
    modules = loaded("plan_reminders", "escalate", "bureau_report", "sync_opt_outs")

    assert "dunning.models.scheduled" in modules
    assert {"dunning.models.events", "dunning.models.inbound", "dunning.borrower_events"} & modules == set()


def test_without_a_policy_parameter_no_function_loads_the_parameters_utility() -> None:
    modules = loaded(*SERVICES)

    assert {"dunning.config", "dunning.models.policy", "dunning.models.events"} <= modules
    assert [m for m in modules if m.startswith("aws_lambda_powertools.utilities.parameters")] == []


def test_only_the_delivery_status_function_builds_the_cloudwatch_logs_models() -> None:
    # The two batch functions first, as in their own processes: Powertools' batch module, imported after
    # pydantic, builds every record model its type hints name (Kinesis's takes CloudWatch Logs' along).
    batch = ["send_reminders", "loan_changes"]
    modules = loaded(*batch, *(name for name in SERVICES if name not in {"record_delivery", *batch}))

    assert "aws_lambda_powertools.utilities.parser.models.sqs" in modules  # the sender's records
    assert "aws_lambda_powertools.utilities.parser.models.cloudwatch" not in modules


def collections_while_loading(function: str) -> list[str]:
    """In a fresh process: the collections (by generation) made while `functions/<function>/app.py` loaded, then
    whether the collector is on again and how many objects it was told to leave alone."""
    code = (
        "import gc, sys\n"
        "made = []\n"
        "gc.callbacks.append(lambda phase, info: made.append(info['generation']) if phase == 'start' else None)\n"
        f"import functions.{function}.app\n"
        "during = list(made)\n"
        "print(len(during), gc.isenabled(), gc.get_freeze_count())\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=ENVIRONMENT, capture_output=True, text=True, check=True
    )
    return run.stdout.split()


def test_a_handler_loads_without_a_garbage_collection_and_leaves_the_collector_on() -> None:
    for function in SERVICES:
        collections, enabled, frozen = collections_while_loading(function)

        assert (function, collections) == (function, "0")
        assert (function, enabled) == (function, "True")
        assert int(frozen) > 10_000  # what it loaded is frozen: later collections do not walk it again


def test_every_handler_imports_the_cold_start_first_and_ends_with_it_loaded() -> None:
    for app in sorted((ROOT / "functions").glob("*/app.py")):
        statements = [line for line in app.read_text().splitlines() if line and not line.startswith((" ", "#"))]
        imports = [line for line in statements if line.startswith(("import ", "from ")) and "__future__" not in line]

        assert imports[0] == "import dunning.coldstart", app
        assert statements[-1].startswith("dunning.coldstart.loaded()"), app
