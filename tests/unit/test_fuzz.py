"""Fuzzing the LoansTable contract: whatever upstream writes, `parse_loan` accepts it or raises InvalidLoan.

Items are what boto3's deserializer can hand over (str, Decimal, bool, None, sets, lists, maps, Binary),
mixed with near-valid values so the fuzzer reaches deep into the model, not only its first check.
What is accepted must be a loan the contract allows (docs/contract.md#loanstable-item): junk silently accepted fails
the test, and each hostile value of tests/strategies.py is rejected with the reason its attribute names.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import phonenumbers
import pytest
from boto3.dynamodb.types import Binary
from hypothesis import given, settings
from hypothesis import strategies as st

from dunning.models.loan import InvalidLoan, Loan, LoanStatus, parse_loan
from dunning.models.money import is_currency, minor_unit
from tests.strategies import BOUNDS_AT_PARSE, HOSTILE_VALUES, Hostile, valid_item

ATTRIBUTES = (
    "loan_id",
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
NEAR_VALID: dict[str, list[Any]] = {
    "loan_id": ["L-1", "", " ", "x" * 300],
    "borrower_id": ["B-1", ""],
    "borrower_name": ["张三", "", "Jane\nRoe"],
    "phone": ["+8613800138000", "8613800138000", "12345", "+1202555014", "+999999999999999", "+86 138 0013 8000"],
    "status": ["OPEN", "PAID", "CLOSED", "WRITTEN_OFF", "open", "UNKNOWN"],
    "due_date": ["2026-11-28", "2026-02-30", "28/11/2026", "2026-11-28T00:00:00", ""],
    "amount_due": [Decimal("1500.00"), Decimal("-1"), Decimal("0"), Decimal("NaN"), Decimal("1E+40"), "abc", "12.3"],
    "currency": ["CNY", "USD", "JPY", "XYZ", "cny", ""],
    "late_fees": [Decimal("3.10"), Decimal("-0.01"), Decimal("Infinity"), "1.5"],
    "locale": ["zh-CN", "en-US", "fr-FR", ""],
    "timezone": ["Asia/Shanghai", "America/New_York", "Mars/Olympus_Mons", "UTC", ""],
}
DYNAMO_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=40),
    st.decimals(allow_nan=True, allow_infinity=True, places=None),
    st.binary(max_size=8).map(Binary),  # boto3 hands a DynamoDB B attribute over as Binary
)
DYNAMO_VALUES = st.recursive(
    DYNAMO_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3), st.frozensets(st.text())
    ),
    max_leaves=6,
)


@st.composite
def loan_items(draw: st.DrawFn) -> dict[str, Any]:
    item: dict[str, Any] = {}
    for name in ATTRIBUTES:
        choice = draw(st.sampled_from(("near_valid", "near_valid", "random", "absent")))
        if choice == "near_valid":
            item[name] = draw(st.sampled_from(NEAR_VALID[name]))
        elif choice == "random":
            # loan_id is the table's partition key: always a string (S) when DynamoDB hands the item over.
            item[name] = draw(st.text(max_size=40) if name == "loan_id" else DYNAMO_VALUES)
    item.update(draw(st.dictionaries(st.text(max_size=8), DYNAMO_VALUES, max_size=2)))  # unknown attributes
    return item


@settings(max_examples=400, deadline=None)
@given(loan_items())
def test_parse_loan_accepts_or_raises_invalid_loan_only(item: dict[str, Any]) -> None:
    try:
        loan = parse_loan(item)
    except InvalidLoan as exc:
        assert exc.reason and exc.loan_id  # safe to record: a reason, never the raw value
        return
    assert isinstance(loan, Loan)
    assert_within_contract(loan, item)


def assert_within_contract(loan: Loan, item: dict[str, Any]) -> None:
    """What docs/contract.md#loanstable-item allows, checked independently of the model: an accepted item is no junk."""
    for name in ("loan_id", "borrower_id", "borrower_name", "phone", "status", "due_date", "currency"):
        assert isinstance(item[name], str), f"{name} accepted from a {type(item[name]).__name__}"
    assert loan.loan_id == item["loan_id"] and loan.borrower_id == item["borrower_id"]
    assert loan.status in LoanStatus and loan.status.value == item["status"]
    assert phonenumbers.is_valid_number(phonenumbers.parse(loan.phone)) and loan.phone.startswith("+")
    assert loan.due_date.isoformat() == item["due_date"]  # a real calendar day, written YYYY-MM-DD
    assert is_currency(loan.currency) and loan.currency == item["currency"]
    for amount in (loan.amount_due, loan.late_fees):
        if amount is None:
            continue
        assert isinstance(amount, Decimal) and amount.is_finite() and amount >= 0
        if BOUNDS_AT_PARSE:  # what a loan can be: at most 12 integer digits, the currency's minor unit
            assert amount < Decimal(10) ** 12
            assert amount == amount.quantize(minor_unit(loan.currency))


BASE = valid_item("L-1", 0, 3, Decimal("1500.00"))


@pytest.mark.parametrize("hostile", HOSTILE_VALUES, ids=repr)
def test_each_hostile_value_is_rejected_with_the_reason_its_attribute_names(hostile: Hostile) -> None:
    item = hostile.apply(BASE)
    if hostile.reason is None:  # a name parsing may accept: what is printed is decided when composing
        try:
            parse_loan(item)
        except InvalidLoan as exc:
            assert exc.reason == "invalid_borrower_name"
        return
    with pytest.raises(InvalidLoan) as raised:
        parse_loan(item)
    assert (raised.value.loan_id, raised.value.reason) == ("L-1", hostile.reason)


def test_the_base_item_of_the_hostile_catalogue_is_valid() -> None:
    assert_within_contract(parse_loan(BASE), BASE)
