"""The unit tier's two lanes. `make unit` runs `-m "not slow and not template"` (under 10 s); `make test` runs all.

- `slow`: hypothesis tests (hundreds of examples each), marked here from hypothesis's own flag, and the tests
  that time a fresh Python process (SUBPROCESS_TESTS).
- `template`: the modules that read template.yaml (infrastructure checks; parsing the template is most of
  their cost). Left out of `make unit` without being imported at all.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent
# Each starts a Python process and imports the package in it (~1 s apiece on this machine).
SUBPROCESS_TESTS = frozenset(
    {
        "test_simulate.py::test_no_handler_imports_the_simulator",
        "test_scale_bench.py::test_cold_init_is_measured_in_a_fresh_process_with_its_tracing[True]",
        "test_scale_bench.py::test_cold_init_is_measured_in_a_fresh_process_with_its_tracing[False]",
        "test_scale_bench.py::test_the_cold_init_process_refuses_a_tracer_in_the_wrong_mode",
        "test_trace_helpers.py::test_a_function_without_tracing_never_imports_the_xray_sdk",
        "test_cold_init_imports.py::test_functions_that_never_read_the_policy_never_load_it",
        "test_cold_init_imports.py::test_the_scheduled_functions_build_the_scheduled_event_alone",
        "test_cold_init_imports.py::test_without_a_policy_parameter_no_function_loads_the_parameters_utility",
        "test_cold_init_imports.py::test_only_the_delivery_status_function_builds_the_cloudwatch_logs_models",
        "test_cold_init_imports.py::test_a_handler_loads_without_a_garbage_collection_and_leaves_the_collector_on",
    }
)
TEMPLATE_READERS = frozenset(
    path.name for path in HERE.glob("test_*.py") if "template.yaml" in path.read_text(encoding="utf-8")
)


def _excludes_templates(config: pytest.Config) -> bool:
    return "not template" in str(config.getoption("markexpr", default="") or "")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path.parent == HERE and collection_path.name in TEMPLATE_READERS and _excludes_templates(config):
        return True
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        hypothesis_test = getattr(getattr(item, "obj", None), "is_hypothesis_test", False)
        if hypothesis_test or f"{item.path.name}::{item.name}" in SUBPROCESS_TESTS:
            item.add_marker(pytest.mark.slow)
        if item.path.parent == HERE and item.path.name in TEMPLATE_READERS:
            item.add_marker(pytest.mark.template)
