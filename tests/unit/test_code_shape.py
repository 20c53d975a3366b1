"""The runtime code stays in small units: no function over 60 lines (ruff's C90 gates complexity).

The runtime code is what the handlers and the layer run: functions/** and shared/dunning/**, minus any path
pyproject.toml exempts from C90 as tooling (one list for both gates; the tooling lives in tools/).
"""

from __future__ import annotations

import ast
import functools
import tomllib
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 60


def tooling_globs() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    ignores: dict[str, list[str]] = config["tool"]["ruff"]["lint"]["per-file-ignores"]
    return [glob for glob, rules in ignores.items() if "C90" in rules or "C901" in rules]


def runtime_files() -> list[str]:
    globs = tooling_globs()
    found = [*(ROOT / "functions").rglob("*.py"), *(ROOT / "shared" / "dunning").rglob("*.py")]
    paths = sorted(path.relative_to(ROOT).as_posix() for path in found)
    return [path for path in paths if not any(fnmatch(path, glob) for glob in globs)]


def function_lengths(path: str, root: Path = ROOT) -> dict[str, int]:
    """`file::Qualified.name` -> lines from `def` to the function's last line (decorators not counted)."""
    lengths: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                lengths[f"{path}::{name}"] = (child.end_lineno or child.lineno) - child.lineno + 1
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(ast.parse((root / path).read_text(encoding="utf-8")), "")
    return lengths


@functools.cache
def all_lengths() -> dict[str, int]:
    lengths: dict[str, int] = {}
    for path in runtime_files():
        lengths.update(function_lengths(path))
    return lengths


def test_the_runtime_set_is_the_handlers_and_the_domain_without_the_tooling() -> None:
    files = runtime_files()
    assert "functions/send_reminders/app.py" in files
    assert "shared/dunning/sender.py" in files
    assert "shared/dunning/dal/state.py" in files
    assert "tools/**" in tooling_globs()
    assert not [path for path in files if path.startswith("tools/")]


def test_no_runtime_function_is_longer_than_60_lines() -> None:
    over = {name: lines for name, lines in all_lengths().items() if lines > MAX_LINES}
    assert over == {}, f"split these (lines): {over}"


def test_the_measure_counts_from_def_to_the_last_line_and_names_nested_units(tmp_path: Path) -> None:
    source = (
        "class A:\n"
        "    @staticmethod\n"
        "    def f() -> None:\n"
        "        def g() -> int:\n"
        "            return 1\n"
        "\n"
        "        g()\n"
        "async def h() -> None:\n"
        "    pass\n"
    )
    (tmp_path / "m.py").write_text(source, encoding="utf-8")

    assert function_lengths("m.py", tmp_path) == {"m.py::A.f": 5, "m.py::A.f.g": 2, "m.py::h": 2}
