"""Fuzzing the LoansTable contract: whatever upstream writes, `parse_loan` accepts it or raises InvalidLoan.

Items are what boto3's deserializer can hand over (str, Decimal, bool, None, sets, lists, maps, bytes),
mixed with near-valid values so the fuzzer reaches deep into the model, not only its first check.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dunning.models.loan import InvalidLoan, Loan, parse_loan

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
    st.binary(max_size=8),
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
            item[name] = draw(DYNAMO_VALUES)
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
    assert isinstance(loan.amount_due, Decimal) and loan.amount_due.is_finite()
