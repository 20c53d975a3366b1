"""In-memory stores behind the Sender's Protocols (`dunning.dal.ports`), for the unit tier.

The Sender builds its transaction entries with the repositories' own builders (pure: they read nothing), so the
fakes keep those builders and replace only what touches AWS: `FakeTables` holds the items of every table in
DynamoDB's attribute-value form and `FakeTables.write_units` is `dal.transact.write_units` in memory. Each
unit is written whole or refused whole; an entry's ConditionExpression is evaluated as a Python predicate on
the item as it is (a small evaluator for the grammar our builders use: AND/OR/NOT, parentheses, comparisons,
IN, attribute_exists/attribute_not_exists), and its UpdateExpression is applied (SET with values, other
attributes and if_not_exists; REMOVE). A refused entry reports the item found when it asked for ALL_OLD, as
DynamoDB's CancellationReasons do. tests/integration/test_fakes_agree.py checks the answers against moto's.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from dunning.dal.aws import Written, from_item, to_item
from dunning.dal.deliveries import DeliveriesRepository
from dunning.dal.ladder import LadderRepository
from dunning.dal.phone_keys import PhoneHasher, PhoneKeys
from dunning.dal.state import ClaimKey, StateRepository, claim_key, control_key, erasure_key
from dunning.dal.transact import MAX_ITEMS, Refused, Unit
from dunning.models.delivery import DeliveryRecord, StoredRecord
from dunning.models.state import ClaimState, SendClaim

Item = dict[str, dict[str, Any]]
_TOKEN = re.compile(r"\s*(<=|>=|<>|[=<>(),]|[#:]?[A-Za-z_][A-Za-z0-9_]*)")


def phone_keys() -> PhoneKeys:
    """PhoneKeys with a fixed key, so no KMS: numbers hash as the deployed functions hash them with that key."""
    keys = PhoneKeys("StateTable", "alias/test")
    keys._hasher = PhoneHasher(b"k" * 32)
    return keys


def _key_of(table: str, item: Item) -> tuple[str, str]:
    """(table, key): StateTable is keyed by pk/sk, DeliveriesTable by loan_id/record_id, LoansTable by loan_id."""
    names = ("pk", "sk") if "pk" in item else ("loan_id", "record_id") if "record_id" in item else ("loan_id",)
    return table, repr([(n, item[n]) for n in names])


def item_key(entry: Any) -> tuple[str, str]:
    ((op, request),) = entry.items()
    return _key_of(request["TableName"], request["Item"] if op == "Put" else request["Key"])


def _plain(value: dict[str, Any]) -> Any:
    ((kind, raw),) = value.items()
    return Decimal(raw) if kind == "N" else raw


class _Expression:
    """One ConditionExpression or UpdateExpression, its names and values resolved."""

    def __init__(self, text: str, names: dict[str, str], values: dict[str, Any]) -> None:
        self.tokens = [t for t in _TOKEN.findall(text) if t]
        if "".join(self.tokens) != re.sub(r"\s+", "", text):
            raise ValueError(f"expression outside the fake's grammar: {text!r}")
        self.names, self.values, self.at = names, values, 0

    def _next(self) -> str:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def _peek(self) -> str | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def _name(self, token: str) -> str:
        return self.names[token] if token.startswith("#") else token

    def _operand(self, item: Item) -> dict[str, Any] | None:
        token = self._next()
        if token.startswith(":"):
            return dict(self.values[token])
        if token == "if_not_exists":
            self._next()  # (
            existing = self._operand(item)
            self._next()  # ,
            default = self._operand(item)
            self._next()  # )
            return existing if existing is not None else default
        return item.get(self._name(token))

    # ---------------------------------------------------------------- conditions
    def holds(self, item: Item) -> bool:
        self.at = 0
        result = self._or(item)
        if self._peek() is not None:
            raise ValueError(f"unparsed condition from {self._peek()!r}")
        return result

    def _or(self, item: Item) -> bool:
        result = self._and(item)
        while self._peek() == "OR":
            self._next()
            right = self._and(item)
            result = result or right
        return result

    def _and(self, item: Item) -> bool:
        result = self._term(item)
        while self._peek() == "AND":
            self._next()
            right = self._term(item)
            result = result and right
        return result

    def _term(self, item: Item) -> bool:
        token = self._peek()
        if token == "NOT":
            self._next()
            return not self._term(item)
        if token == "(":
            self._next()
            result = self._or(item)
            self._next()  # )
            return result
        if token in ("attribute_exists", "attribute_not_exists"):
            self._next()
            self._next()  # (
            present = self._name(self._next()) in item
            self._next()  # )
            return present if token == "attribute_exists" else not present
        left = self._operand(item)
        op = self._next()
        if op == "IN":
            self._next()  # (
            options = [self._operand(item)]
            while self._next() == ",":
                options.append(self._operand(item))
            return left is not None and left in options
        right = self._operand(item)
        if left is None or right is None:
            return op == "<>" and left != right
        a, b = _plain(left), _plain(right)
        return {"=": a == b, "<>": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]

    # ---------------------------------------------------------------- updates
    def apply(self, item: Item) -> Item:
        self.at = 0
        new = dict(item)
        while (clause := self._peek()) is not None:
            self._next()
            while True:
                name = self._name(self._next())
                if clause == "SET":
                    self._next()  # =
                    value = self._operand(item)  # every SET reads the item as it was
                    if value is None:
                        raise ValueError(f"SET {name} from an absent attribute")
                    new[name] = value
                elif clause == "REMOVE":
                    new.pop(name, None)
                else:
                    raise ValueError(f"update clause outside the fake's grammar: {clause}")
                if self._peek() != ",":
                    break
                self._next()
        return new


@dataclass
class FakeTables:
    """Every table's items by (table, key), as `dal.transact.item_key` names them; counts the calls made."""

    items: dict[tuple[str, str], Item] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)

    def put(self, table: str, item: dict[str, Any]) -> None:
        """Write an item (plain values) as another writer would: an opt-out, a cap, a CONTROL item."""
        raw = to_item(item)
        self.items[_key_of(table, raw)] = raw

    def get(self, table: str, key: Item) -> dict[str, Any] | None:
        raw = self.items.get(_key_of(table, key))
        return from_item(raw) if raw is not None else None

    def write_units(self, units: Sequence[Unit], sleep: Callable[[float], None] = lambda _: None) -> list[Refused]:
        """`dal.transact.write_units`: each unit all or nothing, the refused ones with what they found."""
        refused: list[Refused] = []
        pending = [u for u in units if u.items]
        for unit in pending:
            if len(unit.items) > MAX_ITEMS:
                raise ValueError(f"a unit of {len(unit.items)} writes cannot be one transaction (max {MAX_ITEMS})")
        size = 0
        for unit in pending:  # as many transactions as write_units makes when nothing is refused
            if size == 0 or size + len(unit.items) > MAX_ITEMS:
                self.calls["TransactWriteItems"] += 1
                size = 0
            size += len(unit.items)
        for unit in pending:
            found = self._refusals(unit)
            if found:
                refused.append(Refused(unit, found))
                continue
            for entry in unit.items:
                self._apply(entry)
        return refused

    def _refusals(self, unit: Unit) -> dict[int, dict[str, Any] | None]:
        found: dict[int, dict[str, Any] | None] = {}
        for index, entry in enumerate(unit.items):
            ((_, request),) = entry.items()
            condition = request.get("ConditionExpression")
            if condition is None:
                continue
            current = self.items.get(item_key(entry), {})
            expression = _Expression(
                condition, request.get("ExpressionAttributeNames", {}), request.get("ExpressionAttributeValues", {})
            )
            if not expression.holds(current):
                wants_old = request.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD"
                found[index] = from_item(current) if wants_old and current else None
        return found

    def _apply(self, entry: Any) -> None:
        ((op, request),) = entry.items()
        at = item_key(entry)
        if op == "Put":
            self.items[at] = dict(request["Item"])
        elif op == "Delete":
            self.items.pop(at, None)
        elif op == "Update":
            current = self.items.get(at) or dict(request["Key"])
            expression = _Expression(
                request["UpdateExpression"],
                request.get("ExpressionAttributeNames", {}),
                request.get("ExpressionAttributeValues", {}),
            )
            self.items[at] = {**expression.apply(current), **request["Key"]}


class FakeSendState(StateRepository):
    """`SenderState`: StateRepository's entry builders, its single writes made through FakeTables."""

    def __init__(self, tables: FakeTables, table: str = "StateTable") -> None:
        super().__init__(table, phone_keys())
        self.tables = tables
        self.wakes = 0

    def _write_one(self, entry: Any) -> tuple[bool, dict[str, Any] | None]:
        self.tables.calls["single write"] += 1
        refused = self.tables.write_units([Unit(None, [entry])])
        return (not refused), (refused[0].found.get(0) if refused else None)

    def move_claim(
        self, key: ClaimKey, to: ClaimState, now: dt.datetime, from_state: ClaimState, **extra: Any
    ) -> tuple[bool, SendClaim | None]:
        ok, found = self._write_one(self.claim_update(key, to, now, from_state, **extra))
        return ok, SendClaim.model_validate(found) if found else None

    def move_claim_with(
        self,
        writes: list[Any],
        key: ClaimKey,
        to: ClaimState,
        now: dt.datetime,
        from_state: ClaimState,
        **extra: Any,
    ) -> tuple[bool, SendClaim | None]:
        refused = self.tables.write_units([Unit(key, [*writes, self.claim_update(key, to, now, from_state, **extra)])])
        if not refused:
            return True, None
        found = refused[0].found.get(len(writes))
        return False, SendClaim.model_validate(found) if found else None

    def settle(
        self,
        key: ClaimKey,
        borrower_id: str,
        state: ClaimState,
        now: dt.datetime,
        *,
        reason: str | None = None,
        retry_after: dt.datetime | None = None,
        record_id: str | None = None,
        message_id: str | None = None,
        only_from: tuple[ClaimState, ...] | None = None,
    ) -> bool:
        values = {"reason": reason, "record_id": record_id, "message_id": message_id, "retry_after": retry_after}
        put = self.settle_put(key, borrower_id, state, now, only_from or tuple(ClaimState), **values)
        if not only_from:
            for name in ("ConditionExpression", "ExpressionAttributeNames", "ExpressionAttributeValues"):
                put["Put"].pop(name, None)  # type: ignore[misc]
        return self._write_one(put)[0]

    def wake_planner(self, bucket: int | None = None) -> None:
        self.wakes += 1

    def claim(self, key: ClaimKey) -> dict[str, Any] | None:
        return self.tables.get(self.table, claim_key(*key))


class FakeLadderIndex(LadderRepository):
    """`LadderRepository` (the ladder index: CONTROL items ordered by stream sequence), its own conditional writes
    made through FakeTables; `item` and `erased` read them there."""

    def __init__(self, tables: FakeTables, table: str = "StateTable") -> None:
        super().__init__(table)
        self.tables = tables

    def _write(self, write: Any, *, return_new: bool = False) -> Written:
        ((op, request),) = write.items()
        refused = self.tables.write_units(
            [Unit(None, [{op: {**request, "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}])]
        )
        if refused:
            return Written(False, refused[0].found.get(0))
        return Written(True, self.tables.get(self.table, request["Key"]) if return_new else None)

    def item(self, loan_id: str) -> dict[str, Any] | None:
        return self.tables.get(self.table, control_key(loan_id))

    def erased(self, borrower_id: str) -> bool:
        return self.tables.get(self.table, erasure_key(borrower_id)) is not None


class FakeSendDeliveries(DeliveriesRepository):
    """`SenderDeliveries`: DeliveriesRepository's entry builder, its put and get made on FakeTables."""

    def __init__(self, tables: FakeTables, table: str = "DeliveriesTable") -> None:
        super().__init__(table)
        self.tables = tables

    def put(self, record: DeliveryRecord) -> None:
        self.tables.calls["PutItem"] += 1
        self.tables.write_units([Unit(None, [self.put_item_request(record)])])

    def get(self, loan_id: str, record_id: str) -> StoredRecord | None:
        self.tables.calls["GetItem"] += 1
        found = self.tables.get(self.table, {"loan_id": {"S": loan_id}, "record_id": {"S": record_id}})
        return StoredRecord.model_validate(found) if found is not None else None

    def records(self) -> dict[str, list[dict[str, Any]]]:
        """Every record, by loan id."""
        found: dict[str, list[dict[str, Any]]] = {}
        for (table, _), raw in sorted(self.tables.items.items()):
            if table == self.table:
                item = from_item(raw)
                found.setdefault(str(item["loan_id"]), []).append(item)
        return found


@dataclass
class FakeLoansTable:
    """`SenderLoans`: only LoansTable's name (the sender's ConditionChecks name it; items live in FakeTables)."""

    table: str = "LoansTable"
