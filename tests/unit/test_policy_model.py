"""The policy document: the bundled one loads; a broken one is refused, naming the field."""

from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from dunning.models.policy import (
    DEFAULT_POLICY_PATH,
    SAFE_LOADER,
    Policy,
    PolicyError,
    load_policy_file,
    parse_policy,
)

DOCUMENT: dict[str, Any] = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))


def test_bundled_policy_loads_with_the_designed_values() -> None:
    policy = load_policy_file()
    assert policy.business_timezone == "Asia/Shanghai"
    assert (policy.send_window.start, policy.send_window.end) == (dt.time(9), dt.time(20))
    assert (policy.caps.per_borrower_per_day, policy.caps.per_borrower_per_7_days) == (1, 4)
    assert policy.late_fee.daily_rate == Decimal("0.0005")
    assert policy.late_fee.cap_rate == Decimal("0.24")
    assert policy.ladder.escalation_day == 30
    assert policy.pay_by_days == 3
    assert set(policy.country_windows) == {"US", "CN"}
    assert "退订" in policy.opt_out_keywords


def broken(path: str, value: Any) -> str:
    """The default document with `path` (dotted) set to value, or removed when value is ...; as YAML."""
    document = copy.deepcopy(DOCUMENT)
    *parents, last = path.split(".")
    node = document
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is ...:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return yaml.safe_dump(document, allow_unicode=True)


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        ("late_fee.daily_rate", 0.0005, "late_fee.daily_rate"),  # unquoted YAML number: a float
        ("late_fee.cap_rate", "2", "late_fee.cap_rate"),
        ("send_window.start", "21:00", "send_window"),
        ("ladder.stages.1.day", -5, "ladder"),
        ("ladder.follow_up.last_day", 31, "ladder"),
        ("caps.per_borrower_per_day", 0, "caps.per_borrower_per_day"),
        ("brand", {"zh-CN": "信飞"}, "brand"),
        ("templates.follow_up", {"zh-CN": "x"}, "templates.follow_up.en-US"),
        ("default_timezone", "Asia/Atlantis", "default_timezone"),
        ("default_locale", "fr-FR", "default_locale"),
        ("hotline", "call us", "hotline"),
        ("max_segments", ..., "max_segments"),
        ("surprise", True, "surprise"),  # unknown keys are refused, not ignored
        ("country_windows.us", {"start": "08:00", "end": "21:00"}, "country_windows"),
    ],
)
def test_broken_documents_are_refused_naming_the_field(path: str, value: Any, named: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(broken(path, value), "my-policy.yaml")
    message = str(caught.value)
    assert message.startswith("my-policy.yaml: ")
    assert named in message


def test_the_policy_reads_with_libyaml_as_with_pure_python() -> None:
    """PyYAML's wheels carry libyaml (the layer's too): the policy is read with its loader, to the same document."""
    text = DEFAULT_POLICY_PATH.read_text(encoding="utf-8")
    assert SAFE_LOADER is yaml.CSafeLoader
    assert yaml.load(text, Loader=SAFE_LOADER) == DOCUMENT
    assert parse_policy(text) == Policy.model_validate(DOCUMENT)


def test_a_document_asking_for_python_objects_is_refused() -> None:
    with pytest.raises(PolicyError, match="not valid YAML"):
        parse_policy("version: !!python/object/apply:os.getcwd []\n", "p.yaml")


def test_not_yaml_or_not_a_mapping_is_refused() -> None:
    with pytest.raises(PolicyError, match="not valid YAML"):
        parse_policy("ladder: [unclosed", "p.yaml")
    with pytest.raises(PolicyError, match="must be a YAML mapping"):
        parse_policy("- just\n- a list\n", "p.yaml")


def test_a_missing_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy_file(tmp_path / "absent.yaml")
