"""The Lambda layer holds only what runs in Lambda: the import closure of the handlers, and no tooling.

The layer is the folder template.yaml's `SharedLayer` `ContentUri` names; `sam build` ships it as is
(less `__pycache__`). tests/integration/test_sam_build.py checks the built layer the same way.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from dunning.models.policy import DEFAULT_POLICY_PATH
from dunning_tools.layer import (
    content_uri,
    handler_files,
    imports_of,
    normalise,
    read_layer,
    requirement_names,
    runtime_closure,
    third_party_imports,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
LAYER = read_layer(content_uri(REPO_ROOT / "template.yaml"))
HANDLERS = handler_files(REPO_ROOT)
# Files of the layer that are not modules, and why they are there.
LAYER_DATA = {
    "requirements.txt": "what sam build installs into the layer",
    "requirements.in": "the short list the lock is compiled from",
    "dunning/default_policy.yaml": "the bundled policy (DEFAULT_POLICY_PATH)",
}
# The Lambda python3.13 runtime provides these; everything else must come from the layer's requirements.
RUNTIME_PROVIDED = {"boto3", "botocore"}
DEV_ONLY = {"dunning_tools", "moto", "rich", "time_machine", "samtranslator", "hypothesis", "pytest", "cfnlint"}


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")


def test_the_handlers_and_the_layer_are_where_the_template_says() -> None:
    assert LAYER.root == REPO_ROOT / "shared"
    assert len(HANDLERS) >= 9
    assert "dunning" in LAYER.modules


def test_the_layer_holds_exactly_the_modules_the_handlers_import() -> None:
    closure = runtime_closure(HANDLERS.values(), LAYER)
    assert closure.unresolved == [], "handlers import dunning modules the layer does not have"
    extra = sorted(set(LAYER.modules) - closure.modules)
    assert extra == [], f"in the layer but imported by no function (move them to tools/dunning_tools): {extra}"
    assert closure.modules == set(LAYER.modules)


def test_the_layer_holds_no_file_but_its_modules_and_the_data_the_runtime_reads() -> None:
    unexpected = sorted(LAYER.data - set(LAYER_DATA))
    assert unexpected == [], f"files in the layer that Lambda does not need: {unexpected}"
    assert DEFAULT_POLICY_PATH.relative_to(LAYER.root).as_posix() in LAYER.data


def test_nothing_in_lambda_imports_tooling_or_a_package_the_layer_does_not_install() -> None:
    runtime = {name: LAYER.modules[name] for name in LAYER.modules} | HANDLERS
    imported = third_party_imports(runtime, LAYER)
    assert sorted(DEV_ONLY & set(imported)) == [], {name: imported[name] for name in DEV_ONLY & set(imported)}
    required = requirement_names(LAYER.root / "requirements.txt")
    distributions = importlib.metadata.packages_distributions()
    unlisted = {
        name: where
        for name, where in imported.items()
        if name not in RUNTIME_PROVIDED and not {normalise(d) for d in distributions.get(name, [])} & required
    }
    assert unlisted == {}, "imported at run time but not in shared/requirements.txt"
    assert {"aws_lambda_powertools", "pydantic"} <= set(imported)


def test_the_tooling_package_is_outside_the_layer() -> None:
    import dunning_tools

    tools = Path(dunning_tools.__file__).resolve().parent
    assert not tools.is_relative_to(LAYER.root)
    assert not any(name.split(".")[0] == "dunning_tools" for name in LAYER.modules)


# The checker itself, on small made-up trees: it must see what the real tree does not have.


def test_a_module_no_handler_imports_is_outside_the_closure(tmp_path: Path) -> None:
    layer_root, handler = tmp_path / "layer", tmp_path / "fn" / "app.py"
    _write(
        layer_root,
        {
            "dunning/__init__.py": "",
            "dunning/used.py": "def run() -> None:\n    from dunning.lazy import x\n",
            "dunning/lazy.py": "x = 1\n",
            "dunning/pkg/__init__.py": "",
            "dunning/pkg/deep.py": "from . import sibling\n",
            "dunning/pkg/sibling.py": "",
            "dunning/tooling.py": "import moto\n",
        },
    )
    _write(tmp_path / "fn", {"app.py": "from dunning import used\nfrom dunning.pkg.deep import thing\n"})
    layer = read_layer(layer_root)
    closure = runtime_closure([handler], layer)
    assert closure.modules == {
        "dunning",
        "dunning.used",
        "dunning.lazy",
        "dunning.pkg",
        "dunning.pkg.deep",
        "dunning.pkg.sibling",
    }
    assert set(layer.modules) - closure.modules == {"dunning.tooling"}
    assert closure.unresolved == []


def test_a_dunning_import_the_layer_lacks_is_reported(tmp_path: Path) -> None:
    _write(tmp_path / "layer", {"dunning/__init__.py": ""})
    _write(tmp_path / "fn", {"app.py": "import json\nfrom dunning.local import invoke\n"})
    closure = runtime_closure([tmp_path / "fn" / "app.py"], read_layer(tmp_path / "layer"))
    assert [(line, name) for _, line, name in closure.unresolved] == [(2, "dunning.local")]


def test_imports_under_type_checking_are_not_run_time_packages(tmp_path: Path) -> None:
    _write(
        tmp_path / "layer",
        {
            "dunning/__init__.py": "",
            "dunning/dal.py": (
                "from typing import TYPE_CHECKING\nimport pydantic\n"
                "if TYPE_CHECKING:\n    from mypy_boto3_dynamodb import DynamoDBClient\n"
                "else:\n    import rich\n"
                "def later() -> None:\n    import time_machine\n"
            ),
        },
    )
    layer = read_layer(tmp_path / "layer")
    found = third_party_imports(layer.modules, layer)
    assert sorted(found) == ["pydantic", "rich", "time_machine"]
    assert found["time_machine"] == ["dunning.dal:8"]
    assert [i.type_checking for i in imports_of(layer.modules["dunning.dal"], "dunning.dal") if i.module == "rich"] == [
        False
    ]


def test_build_leftovers_are_not_layer_files(tmp_path: Path) -> None:
    _write(tmp_path, {"dunning/__init__.py": "", "dunning/__pycache__/x.cpython-313.pyc": "", "dunning/p.yaml": ""})
    layer = read_layer(tmp_path)
    assert set(layer.modules) == {"dunning"}
    assert layer.data == {"dunning/p.yaml"}


@pytest.mark.parametrize(
    ("line", "name"),
    [("aws-lambda-powertools[parser]==3.37.0", "aws-lambda-powertools"), ("PyYAML>=6.0 \\", "pyyaml")],
)
def test_requirement_lines_give_distribution_names(tmp_path: Path, line: str, name: str) -> None:
    (tmp_path / "requirements.txt").write_text(f"# header\n{line}\n    --hash=sha256:00\n    # via x\n")
    assert requirement_names(tmp_path / "requirements.txt") == {name}
