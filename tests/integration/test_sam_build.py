"""Build gate: `sam build` packages template.yaml for Lambda (python3.13, arm64).

Needs the aws-sam-cli virtualenv (`make validate` or `make build` creates `.venv-sam`), a
CPython 3.13 (pyenv's, or `python3.13` on PATH) and PyPI for the layer's arm64 wheels; it
skips, saying which is missing, where one of them is not there, and when DUNNING_SKIP_SAM_BUILD
is set. A package index that answers but has no such version, or a hash that does not match the
lock, fails: only an unreachable index is a skip. Takes 10-60 s, most of it pip downloading the
layer's wheels; the build goes to a temporary folder, so a developer's .aws-sam/ is left alone. The
layer must hold exactly the versions of shared/requirements.txt, the lock the dev virtualenv runs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from dunning_tools.layer import handler_files, read_layer, runtime_closure
from dunning_tools.local.language_extensions import load_template

REPO_ROOT = Path(__file__).resolve().parents[2]
SAM = REPO_ROOT / ".venv-sam" / "bin" / "sam"
BUILD_TIMEOUT_SECONDS = 600
LOCK = REPO_ROOT / "shared" / "requirements.txt"
# What pip prints when it cannot reach the package index (not "No matching distribution found" alone:
# that is also a pin no index has, which must fail).
_OFFLINE_SIGNS = ("NewConnectionError", "Temporary failure in name resolution", "Network is unreachable")


def _python313_bin() -> Path | None:
    """The folder of a CPython 3.13 interpreter: pyenv's first, then whatever PATH offers."""
    pyenv = shutil.which("pyenv")
    if pyenv:
        root = subprocess.run([pyenv, "root"], capture_output=True, text=True, check=False).stdout.strip()
        for candidate in sorted(Path(root, "versions").glob("3.13*"), reverse=True):
            if (candidate / "bin" / "python3.13").exists():
                return candidate / "bin"
    found = shutil.which("python3.13")
    return Path(found).parent if found else None


def _sam_build(tmp_path: Path) -> Path:
    """Run `sam build` into a temporary build folder; return that folder."""
    if os.environ.get("DUNNING_SKIP_SAM_BUILD"):
        pytest.skip("DUNNING_SKIP_SAM_BUILD is set")
    if not SAM.exists():
        pytest.skip(f"no aws-sam-cli at {SAM}: run `make validate` (or `make build`) to create .venv-sam")
    python_bin = _python313_bin()
    if python_bin is None:
        pytest.skip("no CPython 3.13 (pyenv or python3.13 on PATH): sam build needs the Lambda runtime's python")
    build_dir = tmp_path / "build"
    environment = {**os.environ, "PATH": f"{python_bin}{os.pathsep}{os.environ['PATH']}", "SAM_CLI_TELEMETRY": "0"}
    template = REPO_ROOT / "template.yaml"
    # --language-extensions: template.yaml's Fn::ForEach (AWS::LanguageExtensions) is expanded to find the functions.
    command = [str(SAM), "build", "--language-extensions", "--template", str(template), "--build-dir", str(build_dir)]
    result = subprocess.run(
        command,
        cwd=tmp_path,  # sam keeps scratch folders in ./.aws-sam: not the developer's
        env=environment,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_SECONDS,
        check=False,
    )
    output = result.stdout + result.stderr
    if result.returncode != 0 and any(sign in output for sign in _OFFLINE_SIGNS):
        pytest.skip(f"sam build could not reach PyPI for the layer's dependencies:\n{output[-2000:]}")
    assert result.returncode == 0, output[-4000:]
    return build_dir


def _template() -> dict[str, object]:
    return load_template(REPO_ROOT / "template.yaml")


def _resources_of(template: dict[str, object], resource_type: str) -> list[str]:
    resources = template["Resources"]
    assert isinstance(resources, dict)
    return [name for name, resource in resources.items() if resource["Type"] == resource_type]


def test_sam_build_packages_every_function_and_the_layer(tmp_path: Path) -> None:
    # One test, one build: under pytest-xdist a shared fixture would build once per worker.
    built = _sam_build(tmp_path)
    _every_function_is_built_with_its_handler(built)
    _layer_holds_the_domain_package_and_arm64_wheels_for_python313(built)
    _layer_holds_only_what_the_functions_import(built)
    _layer_holds_exactly_the_locked_versions(built)
    _built_template_points_at_the_built_code(built)


def _every_function_is_built_with_its_handler(built: Path) -> None:
    functions = _resources_of(_template(), "AWS::Serverless::Function")
    assert functions
    for logical_id in functions:
        assert (built / logical_id / "app.py").is_file(), logical_id


def _layer_holds_the_domain_package_and_arm64_wheels_for_python313(built: Path) -> None:
    site = built / "SharedLayer" / "python"
    assert (site / "dunning" / "__init__.py").is_file()
    assert (site / "dunning" / "default_policy.yaml").is_file()
    assert (site / "aws_lambda_powertools").is_dir()
    # pydantic-core is compiled: the wheel must match Lambda's runtime and architecture.
    native = [path.name for path in (site / "pydantic_core").glob("*.so")]
    assert native, "pydantic_core has no compiled module"
    assert all("cpython-313-aarch64-linux-gnu" in name for name in native), native


def _layer_holds_only_what_the_functions_import(built: Path) -> None:
    site = built / "SharedLayer" / "python"
    assert not (site / "dunning_tools").exists()
    for tooling in ("local", "commands", "simulate", "cli.py", "reports.py", "policy_lint.py", "dal/audit.py"):
        assert not (site / "dunning" / tooling).exists(), tooling
    assert not list(site.glob("dunning.egg-info")), "build metadata of the project itself in the layer"
    # The built `dunning` package: every module a handler imports, and nothing else.
    built_layer = read_layer(site)
    shipped = {name for name in built_layer.modules if name.split(".")[0] == "dunning"}
    closure = runtime_closure(handler_files(REPO_ROOT).values(), built_layer)
    assert closure.unresolved == []
    assert shipped == closure.modules
    assert {name for name in built_layer.data if name.startswith("dunning/")} == {"dunning/default_policy.yaml"}


def _layer_holds_exactly_the_locked_versions(built: Path) -> None:
    locked = dict(re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", LOCK.read_text(encoding="utf-8"), flags=re.MULTILINE))
    assert locked
    site = built / "SharedLayer" / "python"
    shipped = {}
    for dist_info in site.glob("*.dist-info"):
        name, _, shipped_version = dist_info.name.removesuffix(".dist-info").partition("-")
        shipped[canonicalize_name(name)] = shipped_version
    assert shipped == {canonicalize_name(name): pinned for name, pinned in locked.items()}


def _built_template_points_at_the_built_code(built: Path) -> None:
    template = load_template(built / "template.yaml")
    resources = template["Resources"]
    assert isinstance(resources, dict)
    for logical_id in _resources_of(template, "AWS::Serverless::Function"):
        assert resources[logical_id]["Properties"]["CodeUri"] == logical_id
    assert resources["SharedLayer"]["Properties"]["ContentUri"] == "SharedLayer"
