"""`make env` installs the project itself: `.venv/bin/dunning` is a console command on a fresh clone."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_make_env_installs_the_dunning_command(tmp_path: Path) -> None:
    if shutil.which("make") is None:
        pytest.skip("no make on this machine")
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("Makefile", "pyproject.toml", "requirements-dev.txt", "template.yaml"):
        shutil.copy2(REPO_ROOT / name, clone / name)
    for package_root in ("shared", "tools"):
        shutil.copytree(
            REPO_ROOT / package_root, clone / package_root, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    base_python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base_python, "-m", "venv", str(clone / ".venv")], check=True, timeout=120)
    # The requirements step is `make env`'s slow part and not what this test is about: this test's own
    # environment stands in for it (a .pth file), and its marker says it is done.
    site_packages = next((clone / ".venv" / "lib").glob("python3.*/site-packages"))
    (site_packages / "requirements-dev.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    (clone / ".venv" / ".installed").touch()

    made = subprocess.run(
        ["make", "--no-print-directory", "env"], cwd=clone, capture_output=True, text=True, timeout=300, check=False
    )
    if made.returncode != 0 and "setuptools" in made.stderr and "No matching distribution" in made.stderr:
        pytest.skip(f"no package index reachable to build the project: {made.stderr[-300:]}")
    assert made.returncode == 0, made.stderr[-2000:]

    command = clone / ".venv" / "bin" / "dunning"
    assert command.is_file()
    helped = subprocess.run(
        [str(command), "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert helped.returncode == 0, helped.stderr[-2000:]
    assert helped.stdout.startswith("usage: dunning")
    for subcommand in ("invoke", "local", "seed", "loan", "policy"):
        assert subcommand in helped.stdout
    # Editable: the command runs the clone's own packages (tools/dunning_tools, shared/dunning), whatever the
    # working directory.
    where = subprocess.run(
        [
            str(clone / ".venv" / "bin" / "python"),
            "-c",
            "import dunning, dunning_tools.cli; print(dunning_tools.cli.__file__); print(dunning.__file__)",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert [Path(line) for line in where.stdout.split()] == [
        clone / "tools" / "dunning_tools" / "cli.py",
        clone / "shared" / "dunning" / "__init__.py",
    ]
