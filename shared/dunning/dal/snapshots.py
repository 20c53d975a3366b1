"""A loan as the planner read it, and the ConditionChecks that prove it is still so when the SMS leaves.

The planner puts the loan's LoansTable attributes (as LoanChangesFunction copied them onto the
loan's CONTROL item, contact details included) and its CONTROL state into the job line
(`LineSnapshot`); the sender decides from them without reading, and its pre-publish
TransactWriteItems checks, in the same atomic write that takes the claims, that the live LoansTable
item still holds exactly those attributes and that the CONTROL item's collection state (holds,
pauses, plan, case) has not changed. A check that fails means the loan changed since planning: the
sender reads it again (`read_live`, one BatchGetItem for every such loan of the batch) and decides
again from what it read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from enum import Enum
from typing import TYPE_CHECKING, Any, cast

from dunning.dal.aws import batch_get_tables, to_item
from dunning.models.jobs import LineSnapshot
from dunning.models.loan import Loan
from dunning.models.state import LoanControl

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import ConditionCheckTypeDef

    from dunning.dal.aws import Key, RawItem, Write

# The LoansTable attributes an SMS depends on (docs/contract.md#loanstable-item; loan_id is the key).
LOAN_ATTRIBUTES = (
    "borrower_id",
    "borrower_name",
    "phone",
    "status",
    "due_date",
    "amount_due",
    "currency",
    "late_fees",
    "locale",
    "timezone",
)
# CONTROL attributes whose change may change a send decision: each aspect's last event time
# (dispute, pause, plan: `StateRepository.update_control` sets it with every change of the
# aspect), the case escalation opened, and a kept promise the payment handler cleared.
CONTROL_GUARDS = ("dispute_event_at", "pause_event_at", "plan_event_at", "case_cycle", "promised_date")
# What the sender needs of the CONTROL item to decide and compose (never the case's detail).
_CONTROL_NOT_CARRIED = {"last_failed_delivery_at", "case_detail"}


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def snapshot_of(loan: Loan, control: LoanControl | None) -> LineSnapshot:
    """The job line's snapshot of a validated loan (upstream's, never the plan's instalment) and its control."""
    values = {name: _plain(getattr(loan, name)) for name in LOAN_ATTRIBUTES if getattr(loan, name) is not None}
    return LineSnapshot(loan=to_item(values), control=control_values(control))


def snapshot_from_index(item: Mapping[str, Any], control: LoanControl | None) -> LineSnapshot | None:
    """The snapshot of a ladder index item (its loan's CONTROL item, `dal.ladder`), None when it holds no
    contact details (an erased borrower's, or one written before they were kept): the sender reads that loan."""
    if not (item.get("phone") and item.get("borrower_name")):
        return None
    # Built, not validated again: to_item always answers the attribute values LineSnapshot declares, and
    # control_values a validated control's dump (the planner makes one for every loan it finds due).
    loan = cast("dict[str, dict[str, Any]]", to_item(item, LOAN_ATTRIBUTES))
    return LineSnapshot.model_construct(loan=loan, control=control_values(control))


def snapshot_from_item(raw: Mapping[str, Any], control: LoanControl | None) -> LineSnapshot:
    """The snapshot of a live LoansTable item as read (DynamoDB attribute values, types kept) and its control."""
    return LineSnapshot(
        loan={name: raw[name] for name in LOAN_ATTRIBUTES if name in raw}, control=control_values(control)
    )


def control_values(control: LoanControl | None) -> dict[str, Any]:
    if control is None:
        return {}
    return control.model_dump(mode="json", exclude_none=True, exclude=_CONTROL_NOT_CARRIED)


def loan_unchanged(table: str, loan_id: str, snapshot: LineSnapshot) -> Write:
    """A TransactWriteItems ConditionCheck: the live loan item holds exactly the snapshot's attributes."""
    return _condition_check(table, {"loan_id": {"S": loan_id}}, LOAN_ATTRIBUTES, snapshot.loan)


def control_unchanged(table: str, key: RawItem, snapshot: LineSnapshot) -> Write:
    """A ConditionCheck: the CONTROL item's guards are as the snapshot saw them (absent item: all absent)."""
    guards = {name: {"S": str(snapshot.control[name])} for name in CONTROL_GUARDS if name in snapshot.control}
    return _condition_check(table, key, CONTROL_GUARDS, guards)


def _condition_check(
    table: str, key: RawItem, attributes: tuple[str, ...], expected: Mapping[str, dict[str, Any]]
) -> Write:
    names: dict[str, str] = {}
    values: dict[str, Any] = {}  # the snapshot's attribute values, as carried in the job
    terms: list[str] = []
    for i, name in enumerate(attributes):
        names[f"#a{i}"] = name
        if name in expected:
            values[f":v{i}"] = expected[name]
            terms.append(f"#a{i} = :v{i}")
        else:
            terms.append(f"attribute_not_exists(#a{i})")
    check: ConditionCheckTypeDef = {
        "TableName": table,
        "Key": key,
        "ConditionExpression": " AND ".join(terms),
        "ExpressionAttributeNames": names,
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    if values:
        check["ExpressionAttributeValues"] = values
    return {"ConditionCheck": check}


def read_live(
    loans_table: str, state_table: str, loan_ids: list[str], control_key: Callable[[str], Key]
) -> tuple[dict[str, RawItem], dict[str, RawItem]]:
    """Live LoansTable items and CONTROL items of these loans, strongly consistent, in one BatchGetItem per 50 loans.

    Returns (raw loan items by id, raw CONTROL items by loan id), as DynamoDB attribute values.
    """
    ids = list(dict.fromkeys(loan_ids))
    found = batch_get_tables(
        {
            loans_table: [{"loan_id": {"S": loan_id}} for loan_id in ids],
            state_table: [control_key(loan_id) for loan_id in ids],
        }
    )
    loans = {str(item["loan_id"]["S"]): item for item in found[loans_table]}
    controls = {str(item["pk"]["S"]).removeprefix("LOAN#"): item for item in found[state_table]}
    return loans, controls
