"""`Fn::ForEach` of the AWS::LanguageExtensions transform, expanded as CloudFormation expands it.

template.yaml writes its families of alike resources (a log group and two alarms per function)
once, as `Fn::ForEach` loops. CloudFormation expands them before the SAM transform runs; the local
tools do not: aws-sam-translator and moto reject a resource that is a list, checkov skips it (and
stops applying Globals), and the tests read the template's resources directly. So each of them
reads the template through `load_template`, which expands the loops first.

The expansion follows CloudFormation's rules for what it supports, and refuses the rest with an
error naming the loop: a loop in `Conditions`, `Resources` or `Outputs` (loops nested in a loop's
fragment included), over a literal list of strings; in the fragment's keys and `Fn::Sub` strings `${Id}`
becomes the item and `&{Id}` the item without its non-alphanumeric characters, `{"Ref": "Id"}` becomes
the item, and other strings are left as written; an expanded key that already exists is an error.
A collection given by a parameter (`!Ref SomeList`) and a loop inside a resource's properties are not
supported here.

`main(["template.yaml", "OUT.json"])` writes the expanded template (what `make validate` gives checkov).
"""

from __future__ import annotations

import copy
import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from samtranslator.yaml_helper import yaml_parse

TRANSFORM = "AWS::LanguageExtensions"
FOREACH_PREFIX = "Fn::ForEach::"
# The template sections whose entries a loop may generate (here; CloudFormation also allows properties).
EXPANDED_SECTIONS = ("Conditions", "Resources", "Outputs")
_IDENTIFIER = re.compile(r"^[A-Za-z0-9]+$")


class LanguageExtensionsError(ValueError):
    """A `Fn::ForEach` the expansion cannot apply (or CloudFormation would reject)."""


def load_template(path: str | Path) -> dict[str, Any]:
    """The SAM template at `path`, parsed, with its `Fn::ForEach` loops expanded."""
    return expand(yaml_parse(Path(path).read_text(encoding="utf-8")))


def expand(template: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the template with every `Fn::ForEach` expanded and AWS::LanguageExtensions dropped.

    A template without the transform is returned as a copy, unchanged, unless it holds a loop.
    """
    expanded: dict[str, Any] = copy.deepcopy(dict(template))
    transforms = _transforms(expanded.get("Transform"))
    if TRANSFORM not in transforms:
        if _loops_in(expanded):
            raise LanguageExtensionsError(f"the template uses Fn::ForEach without the {TRANSFORM} transform")
        return expanded
    reserved = set(expanded.get("Parameters") or {})
    for section in EXPANDED_SECTIONS:
        if section in expanded:
            expanded[section] = _expand_section(expanded[section], (), reserved)
    left = _loops_in(expanded)
    if left:
        raise LanguageExtensionsError(
            f"Fn::ForEach is expanded here only in {', '.join(EXPANDED_SECTIONS)}; found {', '.join(sorted(left))}"
        )
    rest = [name for name in transforms if name != TRANSFORM]
    if not rest:
        expanded.pop("Transform", None)
    else:
        expanded["Transform"] = rest[0] if len(rest) == 1 else rest
    return expanded


def _transforms(transform: object) -> list[str]:
    if transform is None:
        return []
    if isinstance(transform, str):
        return [transform]
    if isinstance(transform, list) and all(isinstance(name, str) for name in transform):
        return list(transform)
    raise LanguageExtensionsError(f"Transform must be a name or a list of names, not {transform!r}")


def _expand_section(section: object, identifiers: tuple[str, ...], reserved: set[str]) -> dict[str, Any]:
    if not isinstance(section, dict):
        raise LanguageExtensionsError(f"a section or loop fragment must be a mapping, not {section!r}")
    result: dict[str, Any] = {}
    for key, value in section.items():
        if not key.startswith(FOREACH_PREFIX):
            _merge(result, {key: value}, key)
            continue
        identifier, collection, fragment = _loop(key, value, identifiers, reserved)
        for item in collection:
            body = _substitute(fragment, identifier, item)
            _merge(result, _expand_section(body, (*identifiers, identifier), reserved), key)
    return result


def _loop(key: str, value: object, outer: tuple[str, ...], reserved: set[str]) -> tuple[str, list[str], Any]:
    """A loop's identifier, collection and fragment, checked as CloudFormation checks them."""
    if not isinstance(value, list) or len(value) != 3:
        raise LanguageExtensionsError(f"{key}: expected [identifier, collection, fragment], got {value!r}")
    identifier, collection, fragment = value
    if not isinstance(identifier, str) or not _IDENTIFIER.match(identifier):
        raise LanguageExtensionsError(f"{key}: the identifier must be alphanumeric, not {identifier!r}")
    if identifier in outer or identifier in reserved:
        raise LanguageExtensionsError(f"{key}: the identifier {identifier!r} is already a loop identifier or parameter")
    if not isinstance(collection, list) or not all(isinstance(item, str) for item in collection):
        raise LanguageExtensionsError(
            f"{key}: the collection must be a literal list of strings here (a parameter's list is not expanded "
            f"locally), not {collection!r}"
        )
    if not isinstance(fragment, dict):
        raise LanguageExtensionsError(f"{key}: the fragment must be a mapping, not {fragment!r}")
    return identifier, collection, fragment


def _substitute(node: Any, identifier: str, item: str) -> Any:
    """The loop's item put in for its identifier where CloudFormation puts it (and cfn-lint checks it).

    In keys and in `Fn::Sub` strings, `${identifier}` becomes the item and `&{identifier}` the item without
    its non-alphanumeric characters; `{"Ref": identifier}` becomes the item. Other strings are left as written.
    """
    if isinstance(node, list):
        return [_substitute(entry, identifier, item) for entry in node]
    if not isinstance(node, dict):
        return node
    if node == {"Ref": identifier}:
        return item
    result: dict[Any, Any] = {}
    for key, value in node.items():
        if key == "Fn::Sub" and isinstance(value, str):
            result[key] = _put_in(value, identifier, item)
        elif key == "Fn::Sub" and isinstance(value, list) and value and isinstance(value[0], str):
            result[key] = [_put_in(value[0], identifier, item), *_substitute(value[1:], identifier, item)]
        else:
            new_key = _put_in(key, identifier, item) if isinstance(key, str) else key
            result[new_key] = _substitute(value, identifier, item)
    return result


def _put_in(text: str, identifier: str, item: str) -> str:
    alphanumeric = re.sub(r"[^A-Za-z0-9]", "", item)
    return text.replace("${" + identifier + "}", item).replace("&{" + identifier + "}", alphanumeric)


def _merge(result: dict[str, Any], entries: Mapping[str, Any], source: str) -> None:
    clashes = sorted(set(result) & set(entries))
    if clashes:
        raise LanguageExtensionsError(f"{source}: {', '.join(clashes)} defined twice")
    result.update(entries)


def _loops_in(node: Any, path: str = "") -> set[str]:
    """Where `Fn::ForEach` keys are left in the node (dotted paths)."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and key.startswith(FOREACH_PREFIX):
                found.add(where)
            found |= _loops_in(value, where)
    elif isinstance(node, list):
        for index, entry in enumerate(node):
            found |= _loops_in(entry, f"{path}[{index}]")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """`main([TEMPLATE, OUT.json])` (arguments from the command line by default): write the expanded template."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if len(arguments) != 2:
        print("usage: TEMPLATE OUT.json (the template with its Fn::ForEach loops expanded)", file=sys.stderr)
        return 2
    source, target = (Path(argument) for argument in arguments)
    try:
        expanded = load_template(source)
    except (OSError, LanguageExtensionsError) as exc:
        print(f"{source}: {exc}", file=sys.stderr)
        return 1
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(expanded, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
