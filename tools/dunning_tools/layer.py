"""What the Lambda layer holds, and what the functions need of it: the import closure of their handlers.

The layer is the folder `SharedLayer`'s `ContentUri` names in template.yaml. A module belongs in it
when a handler (`functions/<name>/app.py`) imports it, directly or through another module, at any
depth and wherever the import statement sits (a lazy import inside a function counts). Imports under
`if TYPE_CHECKING:` count for that closure (the module is part of the domain's types) but not as
packages Lambda must provide: they never run. Everything else belongs in `tools/` (tooling).

    python -m dunning_tools.layer [REPO_ROOT]

prints the layer's runtime modules, what it holds that no handler imports, its data files, and the
third-party packages the runtime code imports; exit 1 when the layer holds a module no handler needs
or a handler imports a `dunning` module the layer lacks.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samtranslator.yaml_helper import yaml_parse

LAYER_RESOURCE = "SharedLayer"
# What `sam build` leaves out of a Python code folder (aws-lambda-builders' default excludes).
BUILD_EXCLUDES = ("__pycache__", ".pyc")


@dataclass(frozen=True)
class Import:
    """One imported module name (`from a.b import c` yields `a.b` and the candidate `a.b.c`)."""

    module: str
    line: int
    type_checking: bool  # under `if TYPE_CHECKING:`: never executed
    candidate: bool = False  # `from package import name`: a submodule only if one exists


@dataclass(frozen=True)
class Layer:
    root: Path
    modules: Mapping[str, Path]  # dotted name -> file (`dunning` -> dunning/__init__.py)
    data: frozenset[str]  # every other file, as a path relative to `root`


@dataclass
class Closure:
    modules: set[str] = field(default_factory=set)
    # `dunning...` imports that resolve to nothing in the layer: (importing file, line, module)
    unresolved: list[tuple[Path, int, str]] = field(default_factory=list)


def content_uri(template: Path) -> Path:
    """The layer's folder, as `SharedLayer`'s ContentUri names it (relative to the template)."""
    document: dict[str, Any] = yaml_parse(template.read_text(encoding="utf-8"))
    uri = document["Resources"][LAYER_RESOURCE]["Properties"]["ContentUri"]
    if not isinstance(uri, str):
        raise ValueError(f"{template}: {LAYER_RESOURCE}.ContentUri is not a local folder: {uri!r}")
    return (template.parent / uri).resolve()


def _shipped(path: Path, root: Path) -> bool:
    parts = path.relative_to(root).parts
    return not any(part == "__pycache__" for part in parts) and path.suffix != ".pyc"


def read_layer(root: Path) -> Layer:
    modules: dict[str, Path] = {}
    data: set[str] = set()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and _shipped(p, root)):
        relative = path.relative_to(root)
        if path.suffix == ".py":
            parts = relative.with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
        else:
            data.add(relative.as_posix())
    return Layer(root=root, modules=modules, data=frozenset(data))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path, module: str) -> list[Import]:
    """Every module name `path` (the module `module`) imports, at any depth, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, type_checking: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for statement in node.body:
                visit(statement, True)
            for statement in node.orelse:
                visit(statement, type_checking)
            return
        if isinstance(node, ast.Import):
            found.extend(Import(alias.name, node.lineno, type_checking) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            found.append(Import(base, node.lineno, type_checking))
            found.extend(Import(f"{base}.{alias.name}", node.lineno, type_checking, True) for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child, type_checking)

    visit(tree, False)
    return found


def runtime_closure(handlers: Iterable[Path], layer: Layer, package: str = "dunning") -> Closure:
    """The layer's modules the handlers import, transitively; `package` imports the layer cannot resolve."""
    closure = Closure()
    todo: list[tuple[Path, str]] = [(handler, "app") for handler in handlers]
    seen: set[str] = set()
    while todo:
        path, module = todo.pop()
        for imported in imports_of(path, module):
            name = imported.module
            if name.split(".")[0] != package:
                continue
            if name not in layer.modules:
                if not imported.candidate:
                    closure.unresolved.append((path, imported.line, name))
                continue
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b first
                parent = ".".join(parts[:depth])
                if parent in layer.modules and parent not in seen:
                    seen.add(parent)
                    todo.append((layer.modules[parent], parent))
    closure.modules = seen
    return closure


def third_party_imports(files: Mapping[str, Path], layer: Layer) -> dict[str, list[str]]:
    """Top-level names of what the files import at run time (not under TYPE_CHECKING) that neither the
    standard library nor the layer's own modules provide, each with where (`module:line`)."""
    own = {name.split(".")[0] for name in layer.modules}
    found: dict[str, list[str]] = {}
    for module, path in sorted(files.items()):
        for imported in imports_of(path, module):
            top = imported.module.split(".")[0]
            if imported.type_checking or imported.candidate or not top or top in own:
                continue
            if top in sys.stdlib_module_names or top == "__future__":
                continue
            found.setdefault(top, []).append(f"{module}:{imported.line}")
    return found


def requirement_names(requirements: Path) -> set[str]:
    """Normalised distribution names a requirements file lists (a hashed lock or plain lines)."""
    names: set[str] = set()
    for line in requirements.read_text(encoding="utf-8").splitlines():
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)", line)
        if match:
            names.add(normalise(match.group(1)))
    return names


def normalise(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def handler_files(repo_root: Path) -> dict[str, Path]:
    return {f"functions.{p.parent.name}.app": p for p in sorted(repo_root.glob("functions/*/app.py"))}


def _lines(title: str, items: Iterable[str]) -> Iterator[str]:
    listed = sorted(items)
    yield f"{title} ({len(listed)}):"
    yield from (f"  {item}" for item in listed)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    repo_root = Path(args[0] if args else ".").resolve()
    layer = read_layer(content_uri(repo_root / "template.yaml"))
    handlers = handler_files(repo_root)
    closure = runtime_closure(handlers.values(), layer)
    extra = set(layer.modules) - closure.modules
    runtime_files = {**{m: layer.modules[m] for m in closure.modules}, **handlers}
    packages = third_party_imports(runtime_files, layer)
    report = [
        *_lines(f"runtime modules: imported by {len(handlers)} handlers", closure.modules),
        *_lines("in the layer, imported by no handler", extra),
        *_lines("data files in the layer", layer.data),
        *_lines("third-party packages imported at run time", (f"{k}  ({len(v)} imports)" for k, v in packages.items())),
        *_lines("dunning imports the layer lacks", (f"{p}:{line} {m}" for p, line, m in closure.unresolved)),
    ]
    print("\n".join(report))
    return 1 if extra or closure.unresolved else 0


if __name__ == "__main__":
    sys.exit(main())
