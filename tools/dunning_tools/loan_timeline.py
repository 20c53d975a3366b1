"""`dunning loan LOAN_ID`: one loan's story in time order, from every place the product writes about it.

Reads (keys and one partition Query, never a table scan): the LoansTable item; the loan's
DeliveriesTable records (outcome, reason, stage, cycle; the phone masked, never the body); its
StateTable partition `LOAN#id` (send claims, the CONTROL item with each aspect's event time,
cases, notices); the opt-out of its number (`PHONEHASH#h / OPTOUT`, h the keyed hash computed
with the stack's key as the functions do, and the legacy `PHONE#e164 / OPTOUT`); an erasure of
its borrower; and the lines about it in the ReportsBucket's bureau files. An operator tool: it
never writes (without a phone-hash key item there can be no hashed opt-out; none is made).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from dunning.dal.aws import client, from_item, query_items
from dunning.dal.phone_keys import KEY_ITEM, PhoneKeys
from dunning.dal.state import LEGACY_PHONE_PREFIX, erasure_key, optout_key
from dunning.observability import mask_phone

LOAN_ID_PATTERN = re.compile(r"^[^\s\x00-\x1f\x7f]{1,128}$")
BUREAU_PREFIX = "bureau/"
BUREAU_FILE = "delinquencies.jsonl"
# Order of kinds at the same instant: what happened before what it caused.
_KIND_ORDER = ("loan", "control", "optout", "claim", "record", "case", "notice", "bureau", "erasure", "state")
# CONTROL aspects (`<aspect>_event_at`) and the attributes each sets (dunning.borrower_events).
_ASPECTS = {
    "dispute": ("dispute_hold", "dispute_reason"),
    "pause": ("pause_reason", "paused_until", "promised_date", "promise_amount", "promise_broken"),
    "plan": ("plan", "plan_due_date"),
}


class LoanTimelineError(ValueError):
    """A malformed loan id, or a stack that does not name what the timeline reads."""


@dataclass(frozen=True)
class StackNames:
    """Where a stack keeps what the timeline reads (physical names)."""

    loans_table: str
    deliveries_table: str
    state_table: str
    reports_bucket: str
    phone_hash_key: str  # the KMS key that wraps the phone-hash key; "" when the stack has none


@dataclass(frozen=True)
class Entry:
    at: str  # ISO-8601 UTC, or a date for what only has a date
    kind: str
    text: str
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Timeline:
    loan_id: str
    loan: Mapping[str, Any] | None  # LoansTable item, masked (no name, phone's last 4 digits)
    entries: tuple[Entry, ...]

    @property
    def empty(self) -> bool:
        return self.loan is None and not self.entries

    def lines(self) -> list[str]:
        if self.empty:
            return [f"loan {self.loan_id}: no trace (not in LoansTable, no record, no state, no bureau line)"]
        header = f"loan {self.loan_id}: " + (
            " ".join(f"{key} {value}" for key, value in self.loan.items() if key != "loan_id")
            if self.loan is not None
            else "not in LoansTable"
        )
        return [header, *(f"{entry.at:<24} {entry.kind:<8} {entry.text}" for entry in self.entries)]

    def as_dict(self) -> dict[str, Any]:
        return {
            "loan_id": self.loan_id,
            "loan": dict(self.loan) if self.loan is not None else None,
            "timeline": [{"at": e.at, "kind": e.kind, "text": e.text, **e.detail} for e in self.entries],
        }


def check_loan_id(loan_id: str) -> str:
    if not LOAN_ID_PATTERN.match(loan_id):
        raise LoanTimelineError(
            f"LOAN_ID must be 1 to 128 characters without spaces or control characters, got {loan_id[:140]!r}"
        )
    return loan_id


def stack_names(stack_name: str) -> StackNames:
    """Physical names of a deployed stack, from its outputs and resources (CloudFormation)."""
    cloudformation = client("cloudformation")
    try:
        stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    except Exception as exc:
        raise LoanTimelineError(f"cannot read stack {stack_name}: {exc}") from exc
    outputs = {o["OutputKey"]: str(o.get("OutputValue", "")) for o in stack.get("Outputs", [])}
    key = ""
    for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack_name):
        for resource in page.get("StackResourceSummaries", []):
            if resource.get("LogicalResourceId") == "PhoneHashKey":
                key = str(resource.get("PhysicalResourceId", ""))
    return _names(stack_name, outputs, key)


def _names(stack_name: str, outputs: Mapping[str, str], phone_hash_key: str) -> StackNames:
    wanted = ("LoansTableName", "DeliveriesTableName", "StateTableName", "ReportsBucketName")
    missing = [name for name in wanted if not outputs.get(name)]
    if missing:
        raise LoanTimelineError(f"stack {stack_name} has no output {', '.join(missing)}")
    return StackNames(
        loans_table=outputs["LoansTableName"],
        deliveries_table=outputs["DeliveriesTableName"],
        state_table=outputs["StateTableName"],
        reports_bucket=outputs["ReportsBucketName"],
        phone_hash_key=phone_hash_key,
    )


def loan_timeline(names: StackNames, loan_id: str, bureau_since: dt.date | None = None) -> Timeline:
    """Everything the stack holds about the loan, oldest first. `bureau_since`: first bureau file read."""
    check_loan_id(loan_id)
    dynamodb = client("dynamodb")
    found = dynamodb.get_item(TableName=names.loans_table, Key={"loan_id": {"S": loan_id}}, ConsistentRead=True)
    loan = from_item(found["Item"]) if "Item" in found else None
    records = list(
        query_items(
            TableName=names.deliveries_table,
            KeyConditionExpression="loan_id = :l",
            ExpressionAttributeValues={":l": {"S": loan_id}},
        )
    )
    state = list(
        query_items(
            TableName=names.state_table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"LOAN#{loan_id}"}},
        )
    )
    entries: list[Entry] = [*map(_record_entry, records)]
    for item in state:
        entries.extend(_state_entries(item))
    phone = _phone(loan, records)
    if phone:
        entries.extend(_optout_entries(names, phone))
    borrower_id = str(
        (loan or {}).get("borrower_id") or next((r["borrower_id"] for r in records if r.get("borrower_id")), "")
    )
    if borrower_id:
        entries.extend(_erasure_entries(names, borrower_id))
    entries.extend(_bureau_entries(names, loan_id, bureau_since))
    entries.sort(key=lambda e: (e.at, _KIND_ORDER.index(e.kind), e.text))
    return Timeline(loan_id, _masked_loan(loan) if loan is not None else None, tuple(entries))


# ---------------------------------------------------------------- one entry per item
def _record_entry(record: Mapping[str, Any]) -> Entry:
    phone = mask_phone(str(record["phone"])) if record.get("phone") else "<none>"
    words = [str(record.get("outcome")), str(record.get("stage")), f"cycle {record.get('cycle')}"]
    if record.get("reason"):
        words.append(f"reason {record['reason']}")
    words.append(f"phone {phone}")
    if record.get("reference"):
        words.append(f"ref {record['reference']}")
    if record.get("updated_at") and record.get("updated_at") != record.get("created_at"):
        words.append(f"(updated {_at(record['updated_at'])})")
    detail = {
        key: _plain(record[key])
        for key in (
            "record_id",
            "outcome",
            "reason",
            "stage",
            "cycle",
            "reference",
            "message_id",
            "segments",
            "policy_version",
            "updated_at",
        )
        if record.get(key) is not None
    }
    detail["phone"] = phone
    return Entry(
        _at(record.get("created_at") or str(record.get("record_id", ""))[:20]), "record", " ".join(words), detail
    )


def _state_entries(item: Mapping[str, Any]) -> Iterator[Entry]:
    sk = str(item["sk"])
    if sk.startswith("SEND#"):
        words = [f"{item.get('stage')} cycle {item.get('cycle')}: {item.get('state')}"]
        if item.get("reason"):
            words.append(f"reason {item['reason']}")
        if item.get("retry_after"):
            words.append(f"retry after {item['retry_after']}")
        fields = ("stage", "cycle", "state", "reason", "retry_after", "record_id")
        yield Entry(_at(item.get("updated_at")), "claim", " ".join(words), _fields(item, fields))
    elif sk == "CONTROL":
        yield from _control_entries(item)
    elif sk.startswith("CASE#"):
        text = f"case opened: reason {item.get('reason')} cycle {item.get('cycle')}"
        text += "" if item.get("published") else " (CollectionCaseOpened not yet published)"
        yield Entry(_at(item.get("opened_at")), "case", text, _fields(item, ("cycle", "reason", "published")))
        if item.get("closed_at"):
            reason = item.get("close_reason") or item.get("closed_reason") or ""
            yield Entry(
                _at(item["closed_at"]),
                "case",
                f"case closed: {reason} cycle {item.get('cycle')}".replace(":  ", ": "),
                _fields(item, ("cycle", "close_reason", "closed_reason")),
            )
    elif sk.startswith("NOTICE#"):
        kind = sk.removeprefix("NOTICE#").split("#", 1)[0]
        yield Entry(_at(item.get("updated_at") or item.get("created_at")), "notice", f"{kind} SMS claimed", {})
    else:
        stamp = item.get("updated_at") or item.get("created_at")
        if stamp:
            yield Entry(_at(stamp), "state", sk, {})


def _control_entries(item: Mapping[str, Any]) -> Iterator[Entry]:
    for aspect, attributes in _ASPECTS.items():
        stamp = item.get(f"{aspect}_event_at")
        if not stamp:
            continue
        present = {name: item[name] for name in attributes if item.get(name) not in (None, False, "", [])}
        yield Entry(_at(stamp), "control", _aspect_text(aspect, present), {"aspect": aspect, **_plain(present)})
    for name, value in item.items():
        if name.endswith("_event_at") and name.removesuffix("_event_at") not in _ASPECTS:
            yield Entry(_at(value), "control", f"{name.removesuffix('_event_at')} changed", {})
    if item.get("last_failed_delivery_at"):
        yield Entry(_at(item["last_failed_delivery_at"]), "control", "an SMS of the loan failed", {})


def _aspect_text(aspect: str, present: Mapping[str, Any]) -> str:
    if aspect == "dispute":
        if present.get("dispute_hold"):
            return "dispute: hold on all collection SMS" + (
                f" (reason {present['dispute_reason']})" if present.get("dispute_reason") else ""
            )
        return "dispute resolved: hold released"
    if aspect == "pause":
        if not present:
            return "pause ended"
        words = [f"pause: {present.get('pause_reason', 'paused')}"]
        if present.get("paused_until"):
            words.append(f"until {present['paused_until']}")
        if present.get("promised_date"):
            words.append(
                f"promise {present.get('promise_amount', '')} by {present['promised_date']}".replace("  ", " ")
            )
        if present.get("promise_broken"):
            words.append("(promise broken)")
        return " ".join(words)
    instalments = present.get("plan") or []
    listed = ", ".join(f"{i.get('amount')} on {i.get('due_date')}" for i in instalments if isinstance(i, Mapping))
    return f"repayment plan: {len(instalments)} instalment(s)" + (f": {listed}" if listed else "")


def _optout_entries(names: StackNames, phone: str) -> Iterator[Entry]:
    dynamodb = client("dynamodb")
    partitions = [LEGACY_PHONE_PREFIX + phone]
    has_key = "Item" in dynamodb.get_item(TableName=names.state_table, Key=KEY_ITEM, ConsistentRead=True)
    if has_key and names.phone_hash_key:  # no key item: nothing was ever keyed by hash, and none is made here
        partitions.insert(0, PhoneKeys(names.state_table, names.phone_hash_key).partition(phone))
    for partition in partitions:
        found = dynamodb.get_item(TableName=names.state_table, Key=optout_key(partition), ConsistentRead=True)
        if "Item" in found:
            item = from_item(found["Item"])
            text = f"opt-out of {mask_phone(phone)}"
            if item.get("source"):
                text += f" (source {item['source']})"
            yield Entry(_at(item.get("opted_out_at")), "optout", text, _fields(item, ("source", "source_id")))


def _erasure_entries(names: StackNames, borrower_id: str) -> Iterator[Entry]:
    found = client("dynamodb").get_item(TableName=names.state_table, Key=erasure_key(borrower_id), ConsistentRead=True)
    if "Item" in found:
        item = from_item(found["Item"])
        yield Entry(_at(item.get("requested_at")), "erasure", f"borrower {borrower_id}: contact details erased", {})


def _bureau_entries(names: StackNames, loan_id: str, since: dt.date | None) -> Iterator[Entry]:
    s3 = client("s3")
    arguments: dict[str, Any] = {"Bucket": names.reports_bucket, "Prefix": BUREAU_PREFIX}
    if since is not None:
        # Exclusive, and `~` sorts after every file name: the first key read is that of `since`.
        arguments["StartAfter"] = f"{BUREAU_PREFIX}{(since - dt.timedelta(days=1)).isoformat()}/~"
    for page in s3.get_paginator("list_objects_v2").paginate(**arguments):
        for summary in page.get("Contents", []):
            if not summary["Key"].endswith("/" + BUREAU_FILE):
                continue
            body = s3.get_object(Bucket=names.reports_bucket, Key=summary["Key"])["Body"].read().decode("utf-8")
            for line in body.splitlines():
                if f'"{loan_id}"' not in line:  # cheap pre-filter; the parse decides
                    continue
                row = json.loads(line)
                if row.get("loan_id") != loan_id:
                    continue
                text = (
                    f"bureau {row.get('reporting_date')}: {row.get('status')} {row.get('bucket')}"
                    f" {row.get('days_past_due')} days past due, {row.get('amount_overdue')} {row.get('currency')}"
                )
                extra = {k: v for k, v in row.items() if k not in ("loan_id", "borrower_id")}
                written = summary["LastModified"].astimezone(dt.UTC)
                yield Entry(_at(written), "bureau", text, {"file": summary["Key"], **extra})


# ---------------------------------------------------------------- values
def _phone(loan: Mapping[str, Any] | None, records: list[dict[str, Any]]) -> str:
    if loan is not None and isinstance(loan.get("phone"), str) and loan["phone"]:
        return str(loan["phone"])
    for record in sorted(records, key=lambda r: str(r.get("record_id", "")), reverse=True):
        if record.get("phone"):
            return str(record["phone"])
    return ""


def _masked_loan(loan: Mapping[str, Any]) -> dict[str, Any]:
    shown = {
        key: _plain(loan[key])
        for key in ("loan_id", "borrower_id", "status", "due_date", "amount_due", "late_fees", "currency")
        if loan.get(key) is not None
    }
    shown["phone"] = mask_phone(str(loan["phone"])) if loan.get("phone") else "<none>"
    for key in ("locale", "timezone"):
        if loan.get(key) is not None:
            shown[key] = _plain(loan[key])
    return shown


def _fields(item: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {name: _plain(item[name]) for name in names if item.get(name) is not None}


def _plain(value: Any) -> Any:
    """DynamoDB values as JSON can carry them: Decimal as its exact text, sets as sorted lists."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(_plain(v) for v in value)
    return value


def _at(value: Any) -> str:
    """An instant as ISO-8601 UTC with a Z (as the records write it); text that is no instant as is."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    text = str(value or "")
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    if parsed.tzinfo is None:
        return text
    return parsed.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
