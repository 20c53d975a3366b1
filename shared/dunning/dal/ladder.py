"""The ladder index: StateTable's loan CONTROL items, indexed by bucket and chased due date (GSI `LadderIndex`).

A loan's CONTROL item (`LOAN#id / CONTROL`) carries the product's per-loan state (holds, pauses,
plan, case, failure hint). LoanChangesFunction adds upstream's attributes from LoansTable's stream
(`COPIED`, plus `DERIVED`: the number's region and zones) with UpdateItem SET, so the product's
attributes survive, and index attributes present only while the loan is OPEN and valid (or valid
but for its phone: then flagged `unreachable`, for escalation):
`ladder_bucket` (4 digits, `sharding.bucket_of(borrower_id)`) and `ladder_due` (`due_date#loan_id`,
the date the planner chases: the next unpaid instalment's under a plan), and `ladder_part` (2 digits,
`sharding.partition_key`). `LadderIndex` (HASH ladder_part, RANGE ladder_due, projection ALL) is
sparse: only those items are in it, and no key holds more than 1/64 of the open book.

Contact details (`CONTACT`: the number and the name, what the sender needs to compose) ride on the
item while the loan is in the index and its number is valid, so that the planner's job carries the
whole loan and the sender reads nothing; the index projects ALL, so they are in LadderIndex too
(StateTable and its indexes are encrypted at rest; the number is never a key). `contact_of` (the
borrower id) marks an item holding them and keys the sparse `ContactIndex` (KEYS_ONLY), which is
how an erasure finds them (`erase_contact`). They are never copied onto the item of a borrower with
an erasure on record (`BORROWER#id / ERASED`): an item that does not hold them yet checks that first.

Writes are ordered by the stream record's sequence number (`upstream_seq`, zero-padded to 40
digits so that strings compare like numbers): an older or replayed record changes nothing. The
backfill writes with the lowest sequence (`BACKFILL_SEQ`) and only where no stream write has landed.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dunning.dal.aws import conditional_write, dynamodb, from_item, to_item
from dunning.dal.state import control_key, erasure_key

if TYPE_CHECKING:
    from dunning.dal.aws import RawItem, Write, Written

LADDER_INDEX = "LadderIndex"
SEQ_WIDTH = 40  # DynamoDB stream sequence numbers have 21 to 40 digits
BACKFILL_SEQ = "0" * SEQ_WIDTH  # below every stream record: any stream write wins over the backfill
# Upstream attributes the index item carries, enough to decide a reminder without LoansTable
# (docs/contract.md#loanstable-item).
COPIED = ("borrower_id", "status", "due_date", "amount_due", "currency", "late_fees", "locale", "timezone")
DERIVED = ("phone_region", "phone_zones", "unreachable")  # loan_changes.index_values
INDEX_ATTRIBUTES = ("ladder_bucket", "ladder_part", "ladder_due")
CONTACT = ("phone", "borrower_name")  # what the sender composes with (docs/contract.md#loanstable-item)
CONTACT_OF = "contact_of"  # the borrower id, on an item holding CONTACT: ContactIndex's key
CONTACT_INDEX = "ContactIndex"
LEAVING = (*COPIED, *DERIVED, *INDEX_ATTRIBUTES, *CONTACT, CONTACT_OF)


def sequence(stream_sequence_number: str) -> str:
    """A stream SequenceNumber as a string that sorts like the number."""
    if not stream_sequence_number.isdigit() or len(stream_sequence_number) > SEQ_WIDTH:
        raise ValueError(f"not a DynamoDB stream sequence number: {stream_sequence_number[:50]!r}")
    return stream_sequence_number.rjust(SEQ_WIDTH, "0")


def ladder_due(due_date: str, loan_id: str) -> str:
    return f"{due_date}#{loan_id}"


@dataclass(frozen=True)
class Cursor:
    """Where a shard run resumes: the index partition it was reading, the index's LastEvaluatedKey in it
    (None: from its start), and what the run carries over (`extra`, plain JSON). Opaque to callers."""

    partition: int
    start_key: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> str:
        body = {"p": self.partition, "k": self.start_key, "x": self.extra}
        return base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":"), sort_keys=True).encode()).decode()

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            body = json.loads(base64.urlsafe_b64decode(text.encode()))
            partition, key, extra = body["p"], body["k"], body["x"]
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise ValueError("cursor is not one a shard run returned") from None
        if not isinstance(partition, int) or not (key is None or isinstance(key, dict)) or not isinstance(extra, dict):
            raise ValueError("cursor is not one a shard run returned")
        return cls(partition, key, extra)


@dataclass(frozen=True)
class Page:
    """Index items as stored, not models: they carry upstream's copied values, and a broken one must reach
    the planner, escalation or bureau to be set aside with its reason (as `dal.loans.get_many`)."""

    items: list[dict[str, Any]]
    next_key: dict[str, Any] | None  # None: the bucket's range is done


def _older(written: Any, seq: str) -> bool:
    """Whether an item written at sequence `written` (None: never by a stream record) is older than `seq`."""
    if seq == BACKFILL_SEQ:
        return written is None
    return written is None or str(written) < seq


class LadderRepository:
    def __init__(self, table: str) -> None:
        self.table = table

    # ---------------------------------------------------------------- reads (planner, escalation, bureau)
    def page(
        self,
        partition: str,
        first: str,
        last: str,
        start_key: dict[str, Any] | None,
        limit: int,
        *,
        due_on_or_before: str | None = None,
    ) -> Page:
        """One page of a partition's index items with first <= ladder_due <= last (`last`: up to every loan id).

        `due_on_or_before`: only items whose upstream `due_date` is on or before it (a filter: the page
        may come back empty with a next key).
        """
        request: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": LADDER_INDEX,
            "KeyConditionExpression": "ladder_part = :p AND ladder_due BETWEEN :first AND :last",
            "ExpressionAttributeValues": {":p": {"S": partition}, ":first": {"S": first}, ":last": {"S": last}},
            "Limit": limit,
        }
        if due_on_or_before is not None:
            request["FilterExpression"] = "due_date <= :due"
            request["ExpressionAttributeValues"][":due"] = {"S": due_on_or_before}
        if start_key:
            request["ExclusiveStartKey"] = start_key
        response = dynamodb().query(**request)
        return Page([from_item(i) for i in response.get("Items", [])], response.get("LastEvaluatedKey") or None)

    def item(self, loan_id: str) -> dict[str, Any] | None:
        """The loan's CONTROL item as it is now (a consistent read), None when there is none.

        Raw, like a page's items: it carries upstream's values, which the caller validates loan by loan.
        """
        found = dynamodb().get_item(TableName=self.table, Key=control_key(loan_id), ConsistentRead=True)
        return from_item(found["Item"]) if "Item" in found else None

    # ---------------------------------------------------------------- writes (LoanChangesFunction, backfill)
    def enter(
        self,
        loan_id: str,
        values: dict[str, Any],
        removes: tuple[str, ...],
        seq: str,
        contact: dict[str, str] | None = None,
        *,
        new: bool = False,
    ) -> dict[str, Any] | None:
        """Write a loan's upstream values (SET `values`, REMOVE `removes`) if `seq` is newer than the item's.

        `contact` (phone and name) rides along unless the borrower's contact details were erased: an
        item already holding this borrower's contact takes it in the one conditional write; any other
        (a new loan, a loan back in the index, another borrower) is written once the erasure item is
        checked (one GetItem; first, for a `new` item: an INSERT or the backfill). Without `contact` the
        item's contact details go. Returns the item as it now is, or None when a newer (or the same) change
        was applied already.
        """
        sets = {**values, "loan_id": loan_id}
        plain_removes = (*removes, *CONTACT, CONTACT_OF)
        if contact is None:
            return self._ordered_update(loan_id, sets, plain_removes, seq)
        borrower_id = str(values["borrower_id"])
        with_contact = {**sets, **contact, CONTACT_OF: borrower_id}
        if not new:
            written, old = self._ordered_update_holding(loan_id, with_contact, removes, seq, borrower_id)
            if written is not None:
                return written
            if old is not None and not _older(old.get("upstream_seq"), seq):
                return None  # a newer (or the same) change was applied already
        if self.erased(borrower_id):
            return self._ordered_update(loan_id, sets, plain_removes, seq)
        return self._ordered_update(loan_id, with_contact, removes, seq)

    def erased(self, borrower_id: str) -> bool:
        """Whether the borrower's contact details were erased (the erasure's evidence item exists)."""
        found = dynamodb().get_item(
            TableName=self.table, Key=erasure_key(borrower_id), ConsistentRead=True, ProjectionExpression="pk"
        )
        return "Item" in found

    def holding_contact(self, borrower_id: str) -> list[str]:
        """The loan ids whose CONTROL items hold the borrower's contact details (ContactIndex, keys only)."""
        loan_ids: list[str] = []
        request: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": CONTACT_INDEX,
            "KeyConditionExpression": "#of = :b",
            "ExpressionAttributeNames": {"#of": CONTACT_OF},
            "ExpressionAttributeValues": {":b": {"S": borrower_id}},
        }
        while True:
            response = dynamodb().query(**request)
            loan_ids += [str(i["pk"]["S"]).removeprefix("LOAN#") for i in response.get("Items", [])]
            if not response.get("LastEvaluatedKey"):
                return loan_ids
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def erase_contact(self, loan_id: str, borrower_id: str) -> bool:
        """Remove the borrower's contact details from the loan's CONTROL item (only if they are that borrower's)."""
        names = {f"#c{i}": name for i, name in enumerate((*CONTACT, CONTACT_OF))}
        names["#of"] = CONTACT_OF
        written = self._write(
            {
                "Update": {
                    "TableName": self.table,
                    "Key": control_key(loan_id),
                    "UpdateExpression": "REMOVE " + ", ".join(n for n in names if n != "#of"),
                    "ConditionExpression": "#of = :b",
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": {":b": {"S": borrower_id}},
                }
            }
        )
        return written.ok

    def leave(self, loan_id: str, seq: str) -> bool:
        """The loan is no longer OPEN and valid (or was deleted): out of the index, upstream values gone."""
        return self._ordered_update(loan_id, {"loan_id": loan_id}, LEAVING, seq) is not None

    def _ordered_update(
        self, loan_id: str, sets: dict[str, Any], removes: tuple[str, ...], seq: str
    ) -> dict[str, Any] | None:
        return self._update(loan_id, sets, removes, seq, None)[0]

    def _ordered_update_holding(
        self, loan_id: str, sets: dict[str, Any], removes: tuple[str, ...], seq: str, borrower_id: str
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """`_ordered_update`, only on an item that already holds this borrower's contact details.

        Returns (the item written, None), or (None, the item as found when the condition failed).
        """
        return self._update(loan_id, sets, removes, seq, borrower_id)

    def _update(
        self, loan_id: str, sets: dict[str, Any], removes: tuple[str, ...], seq: str, holding: str | None
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        names = {"#seq": "upstream_seq"}
        values: RawItem = {":seq": {"S": seq}}
        assignments = ["#seq = :seq"]
        for i, (name, value) in enumerate(sorted(sets.items())):
            names[f"#s{i}"] = name
            values[f":s{i}"] = to_item({"v": value})["v"]
            assignments.append(f"#s{i} = :s{i}")
        expression = "SET " + ", ".join(assignments)
        gone = [name for name in dict.fromkeys(removes) if name not in sets]
        if gone:
            names.update({f"#r{i}": name for i, name in enumerate(gone)})
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(gone)))
        # The backfill only fills what no stream write has written; a stream record only what is older.
        condition = (
            "attribute_not_exists(#seq)" if seq == BACKFILL_SEQ else "(attribute_not_exists(#seq) OR #seq < :seq)"
        )
        if holding is not None:
            names["#holder"] = CONTACT_OF
            values[":holder"] = {"S": holding}
            condition += " AND #holder = :holder"
        written = self._write(
            {
                "Update": {
                    "TableName": self.table,
                    "Key": control_key(loan_id),
                    "UpdateExpression": expression,
                    "ConditionExpression": condition,
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": values,
                }
            },
            return_new=True,
        )
        return (written.item, None) if written.ok else (None, written.item)

    def _write(self, write: Write, *, return_new: bool = False) -> Written:
        """Every write of the index is one conditional write (`dal.aws.conditional_write`); the unit tier's
        fake (`tests/fakes_send.FakeLadderIndex`) makes it in memory, the repository's own requests unchanged."""
        return conditional_write(write, return_new=return_new)

    def follow(self, item: dict[str, Any], due: str) -> bool:
        """Set `ladder_due` to what `item` (the CONTROL item as last written) chases, unless it changed since.

        Guarded by the inputs it was computed from (the upstream sequence and the plan's event time):
        whoever changed them since computes it again from the newer item.
        """
        names = {"#due": "ladder_due", "#seq": "upstream_seq", "#plan": "plan_event_at", "#b": "ladder_bucket"}
        values: RawItem = {":due": {"S": due}}
        conditions = ["attribute_exists(#b)"]
        for name, placeholder in (("upstream_seq", "#seq"), ("plan_event_at", "#plan")):
            if item.get(name) is None:
                conditions.append(f"attribute_not_exists({placeholder})")
            else:
                values[f":{name}"] = {"S": str(item[name])}
                conditions.append(f"{placeholder} = :{name}")
        return self._write(
            {
                "Update": {
                    "TableName": self.table,
                    "Key": control_key(str(item["loan_id"])),
                    "UpdateExpression": "SET #due = :due",
                    "ConditionExpression": " AND ".join(conditions),
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": values,
                }
            }
        ).ok
