"""The layer's lock: shared/requirements.txt is compiled from requirements.in with hashes, and the dev
virtualenv runs exactly its pins (what the tests ran on is what `sam build` ships)."""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCK = REPO_ROOT / "shared" / "requirements.txt"
SOURCE = REPO_ROOT / "shared" / "requirements.in"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>\S+)$")
HASH = re.compile(r"^--hash=sha256:[0-9a-f]{64}$")


def _lock_entries(text: str) -> dict[str, tuple[str, list[str]]]:
    """{canonical name: (version, [--hash=...])} from a pip-compile lock; any other line is an error."""
    entries: dict[str, tuple[str, list[str]]] = {}
    logical = re.sub(r"\\\n", " ", text)  # join the continuation lines of each requirement
    for line in logical.splitlines():
        code = line.split("#", 1)[0].strip()
        if not code:
            continue
        requirement, *options = code.split()
        pin = PIN.match(requirement)
        if not pin:
            raise ValueError(f"not an exact pin: {line!r}")
        if not options or not all(HASH.match(option) for option in options):
            raise ValueError(f"no sha256 hashes: {line!r}")
        entries[canonicalize_name(pin["name"])] = (pin["version"], options)
    return entries


def _source_requirements() -> list[Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in SOURCE.read_text(encoding="utf-8").splitlines())
    return [Requirement(line) for line in lines if line]


def test_every_locked_package_is_an_exact_pin_with_hashes() -> None:
    entries = _lock_entries(LOCK.read_text(encoding="utf-8"))
    assert entries
    # pydantic-core is compiled: the lock holds a wheel per platform, Lambda's arm64 python3.13 among them.
    assert len(entries["pydantic-core"][1]) > 10


@pytest.mark.parametrize(
    ("broken", "reason"),
    [
        ("pydantic>=2.11\n", "not an exact pin"),
        ("pydantic==2.13.5\n", "no sha256 hashes"),
        ("pydantic==2.13.5 \\\n    --hash=md5:abc\n", "no sha256 hashes"),
    ],
)
def test_the_lock_parser_refuses_a_range_and_a_pin_without_hashes(broken: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        _lock_entries(broken)


def test_the_lock_pins_every_requirement_of_requirements_in_within_its_range() -> None:
    entries = _lock_entries(LOCK.read_text(encoding="utf-8"))
    for requirement in _source_requirements():
        locked_version, _ = entries[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(locked_version), (requirement, locked_version)


def test_the_dev_virtualenv_runs_the_locked_versions() -> None:
    for name, (locked_version, _) in _lock_entries(LOCK.read_text(encoding="utf-8")).items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = "not installed"
        assert installed == locked_version, f"{name}: {installed} here, {locked_version} in {LOCK.name} (make env)"


def test_dev_requirements_do_not_include_the_hashed_lock() -> None:
    # pip turns on --require-hashes for a whole file that includes a hashed one: the Makefile installs
    # the lock first and passes its pins to the dev install as constraints instead.
    includes = [
        line
        for line in (REPO_ROOT / "requirements-dev.txt").read_text(encoding="utf-8").splitlines()
        if line.startswith(("-r", "-c"))
    ]
    assert not [line for line in includes if "shared/requirements.txt" in line], includes
