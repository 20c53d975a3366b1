"""The contract lives in the repo: every citation resolves, and docs/contract.md names what the template defines.

- Every relative link of every tracked Markdown file points at an existing file and, with an
  `#anchor`, at an existing heading of it (GitHub's slugs).
- Every `docs/<page>.md[#anchor]` cited anywhere (code comments, docstrings, the template, Markdown)
  resolves the same way, from the repository root.
- No tracked file outside docs/ cites the team's design brief, which is not in the repository.
- docs/contract.md names every template parameter, output, function, table, queue, bus, bucket,
  topic and state machine, and every loan event type the product accepts.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse

from dunning.models.events import LOAN_EVENT_TYPES

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTRACT = REPO_ROOT / "docs" / "contract.md"
TEXT_SUFFIXES = {".md", ".py", ".yaml", ".yml", ".toml", ".txt", ".cfg", ".json", ".sh", ""}
SKIPPED_DIRS = {".git", ".aws-sam", ".demo", ".dunning", "__pycache__", ".pytest_cache", ".mypy_cache"}

FENCE = re.compile(r"^ {0,3}(```|~~~)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CITATION = re.compile(r"(?<![\w./-])docs/[\w./-]+?\.md(?:#[\w-]+)?")
# Built in two parts so that this file does not cite it itself.
DESIGN_BRIEF = re.compile("DESIGN" + r"(?:\.md|\s*§|\s+\d|\s+section)")
CONTRACT_RESOURCE_TYPES = {
    "AWS::Serverless::Function",
    "AWS::Serverless::StateMachine",
    "AWS::Serverless::LayerVersion",
    "AWS::DynamoDB::Table",
    "AWS::SQS::Queue",
    "AWS::Events::EventBus",
    "AWS::S3::Bucket",
    "AWS::SNS::Topic",
}


def _tracked_files() -> list[Path]:
    """The repository's files: git's list (tracked, and new files not ignored), else a walk of the tree."""
    try:
        listing = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=REPO_ROOT,
            capture_output=True,
            check=True,
        ).stdout.decode("utf-8")
        names = [name for name in listing.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):  # no git (an exported tree): every file but the tooling's
        names = []
        for folder, dirs, files in os.walk(REPO_ROOT):
            dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS and not d.startswith(".venv")]
            names += [os.path.relpath(os.path.join(folder, name), REPO_ROOT) for name in files]
    return sorted(REPO_ROOT / name for name in names if (REPO_ROOT / name).is_file())


FILES = _tracked_files()
MARKDOWN = [path for path in FILES if path.suffix == ".md"]
TEXT = [path for path in FILES if path.suffix in TEXT_SUFFIXES]


def _relative(path: Path) -> str:
    """The path from the repository root (as given, for a file outside it)."""
    return path.relative_to(REPO_ROOT).as_posix() if path.is_relative_to(REPO_ROOT) else str(path)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = INLINE_CODE.sub(lambda m: m.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading: its text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    kept = "".join(ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in "LNM")
    return kept.replace(" ", "-")


def _prose(text: str) -> list[str]:
    """The Markdown's lines outside fenced code blocks."""
    lines: list[str] = []
    fence: str | None = None
    for line in text.splitlines():
        found = FENCE.match(line)
        if found and (fence is None or found.group(1) == fence):
            fence = found.group(1) if fence is None else None
            continue
        if fence is None:
            lines.append(line)
    return lines


@functools.cache
def anchors(path: Path) -> frozenset[str]:
    """Every anchor of a Markdown file's headings (repeats get -1, -2, ... as on GitHub)."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for line in _prose(path.read_text(encoding="utf-8")):
        heading = HEADING.match(line)
        if heading is None:
            continue
        base = slug(heading.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return frozenset(found)


def problem(target: str, base: Path, source: Path) -> str | None:
    """Why a relative link or citation does not resolve (None when it does)."""
    path_part, _, anchor = target.partition("#")
    destination = (base / path_part).resolve() if path_part else source
    if not destination.exists():
        return f"{target}: no such file"
    if anchor:
        if destination.suffix != ".md":
            return f"{target}: an anchor into a file that is not Markdown"
        if anchor not in anchors(destination):
            return f"{target}: no heading with anchor #{anchor} in {_relative(destination)}"
    return None


def _links(path: Path) -> list[str]:
    targets: list[str] = []
    for line in _prose(path.read_text(encoding="utf-8")):
        without_code = INLINE_CODE.sub("", line)
        targets += LINK.findall(without_code)
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t, flags=re.IGNORECASE)]


# ---------------------------------------------------------------- the checker itself


def test_slugs_follow_github() -> None:
    assert slug("Write order of one send (`dunning.sender`)") == "write-order-of-one-send-dunningsender"
    assert slug("Personal data: erasure and retention") == "personal-data-erasure-and-retention"
    assert slug("Policy (`shared/dunning/default_policy.yaml`)") == "policy-shareddunningdefault_policyyaml"
    assert slug("DeliveriesTable record") == "deliveriestable-record"


def test_a_broken_link_or_anchor_is_reported(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## Same\n\n## Same\n\n```\n## Not a heading\n```\n", encoding="utf-8")
    assert problem("page.md#same-1", tmp_path, page) is None
    assert problem("#title", tmp_path, page) is None
    assert problem("page.md#not-a-heading", tmp_path, page) == (
        f"page.md#not-a-heading: no heading with anchor #not-a-heading in {page}"
    )
    assert problem("missing.md", tmp_path, page) == "missing.md: no such file"


def test_links_in_code_are_not_links(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("[a](a.md) `[b](b.md)`\n```\n[c](c.md)\n```\n[d](https://example.com) [e](#x)\n", encoding="utf-8")
    assert _links(page) == ["a.md", "#x"]


def test_the_repository_is_listed() -> None:
    names = {_relative(path) for path in FILES}
    assert {"README.md", "template.yaml", "docs/contract.md", "tests/unit/test_docs.py"} <= names


# ---------------------------------------------------------------- the repository


@pytest.mark.parametrize("page", MARKDOWN, ids=_relative)
def test_every_relative_link_resolves(page: Path) -> None:
    broken = [p for target in _links(page) if (p := problem(target, page.parent, page))]
    assert broken == [], f"{_relative(page)}: {broken}"


def test_every_docs_citation_resolves() -> None:
    broken = []
    for path in TEXT:
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            for target in CITATION.findall(line):
                reason = problem(target, REPO_ROOT, path)
                if reason:
                    broken.append(f"{_relative(path)}:{number}: {reason}")
    assert broken == []


def test_the_code_cites_the_docs() -> None:
    cited = {
        target
        for path in TEXT
        if not path.name.startswith("test_docs")
        for target in CITATION.findall(path.read_text(encoding="utf-8", errors="replace"))
    }
    assert {"docs/contract.md#loanstable-item", "docs/contract.md#deliveriestable-record"} <= cited


def test_nothing_outside_docs_cites_the_design_brief() -> None:
    citing = [
        f"{_relative(path)}:{number}"
        for path in TEXT
        if _relative(path).split("/")[0] != "docs"
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if DESIGN_BRIEF.search(line)
    ]
    assert citing == [], "cite docs/contract.md or docs/architecture.md instead"


# ---------------------------------------------------------------- docs/contract.md names what the template defines


@functools.cache
def _template() -> dict[str, Any]:
    parsed: dict[str, Any] = yaml_parse((REPO_ROOT / "template.yaml").read_text(encoding="utf-8"))
    return parsed


def _named_in_contract() -> set[str]:
    return set(re.findall(r"`([^`\s]+)`", CONTRACT.read_text(encoding="utf-8")))


def test_the_contract_names_every_parameter_and_output() -> None:
    template, named = _template(), _named_in_contract()
    assert sorted(set(template["Parameters"]) - named) == []
    assert sorted(set(template["Outputs"]) - named) == []


def test_the_contract_names_every_function_table_queue_bus_bucket_topic_and_state_machine() -> None:
    resources = _template()["Resources"]
    contract = {
        name
        for name, resource in resources.items()
        if isinstance(resource, dict) and resource.get("Type") in CONTRACT_RESOURCE_TYPES
    }
    assert "SendRemindersFunction" in contract
    assert sorted(contract - _named_in_contract()) == []


def test_the_contract_names_every_loan_event_type() -> None:
    assert sorted(set(LOAN_EVENT_TYPES) - _named_in_contract()) == []
