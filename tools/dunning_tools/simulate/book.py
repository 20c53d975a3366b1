"""Reading a book: JSON Lines of LoansTable items, as upstream writes them (docs/contract.md#loanstable-item)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any


class InputError(ValueError):
    """Input the simulation cannot use; the message names the file (and line) and what is wrong."""


@dataclass(frozen=True)
class BookItem:
    line: int
    item: dict[str, Any]


def _is_dynamodb_json(item: dict[str, Any]) -> bool:
    value = item.get("loan_id")
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("S", "N")


def read_book(path: Path) -> list[BookItem]:
    """Every item of the book with its line number; InputError for a line that is not an item.

    Numbers become exact decimals (as DynamoDB hands them over), never floats. An item that is a
    JSON object but breaks the contract is kept: the simulation suppresses it with its reason,
    as the real run does. Blank lines are skipped.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the book: {exc.strerror or exc}") from None
    items: list[BookItem] = []
    first_seen: dict[str, int] = {}
    for number, raw_line in enumerate(raw.splitlines(), start=1):
        where = f"{path} line {number}"
        try:
            text = raw_line.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{where}: not UTF-8 text") from None
        if number == 1:
            text = text.removeprefix("\ufeff")
        if not text.strip():
            continue
        try:
            value = json.loads(text, parse_float=Decimal, parse_constant=Decimal)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: not JSON: {exc.msg} (column {exc.colno})") from None
        except RecursionError:
            raise InputError(f"{where}: not JSON: nested too deeply") from None
        if not isinstance(value, dict):
            raise InputError(f"{where}: not a LoansTable item: a JSON object is needed, got {type(value).__name__}")
        if _is_dynamodb_json(value):
            raise InputError(f'{where}: DynamoDB JSON ({{"S": ...}}) is not read: write plain values, one item a line')
        loan_id = value.get("loan_id")
        if isinstance(loan_id, str):
            if loan_id in first_seen:
                shown = loan_id if len(loan_id) <= 64 else loan_id[:64] + "..."
                raise InputError(f"{where}: loan_id {shown!r} is already on line {first_seen[loan_id]}")
            first_seen[loan_id] = number
        items.append(BookItem(number, value))
    if not items:
        raise InputError(f"{path}: the book has no items")
    return items
