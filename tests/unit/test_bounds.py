"""Bounds at the edge (docs/contract.md#loanstable-item): a loan that parses never makes a downstream computation raise.

The properties draw loans at the bounds (12 integer digits, every decimal the currency allows,
every currency accepted, due dates from the earliest to the latest accepted) and render every
stage in every locale; and any number at all is either refused as `invalid_amount` or renders.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from babel.numbers import get_currency_precision
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from dunning import ladder
from dunning.bureau import money_text
from dunning.compose import format_money, render_reminder, render_service
from dunning.models.events import PaymentReceived, PromiseToPay, RepaymentPlanAgreed
from dunning.models.loan import EARLIEST_DATE, LATEST_DATE, SUPPORTED_LOCALES, InvalidLoan, Loan, parse_loan
from dunning.models.money import CURRENCIES, MAX_INTEGER_DIGITS, MAX_MINOR_DIGITS, quantize
from dunning.models.policy import LADDER_KINDS, load_policy_file
from dunning.observability import metrics

POLICY = load_policy_file()
REMINDER_KINDS = (*LADDER_KINDS, "consolidated")
HOSTILE_NAMES = [
    "Jane. Account FROZEN - pay now at https://evil.example",
    "张三 13800138000",
    "\u202eevil",
    "A" * 300,
    "Zhang San",
    "张三",
]


def test_the_accepted_currencies_come_from_babel_and_are_current() -> None:
    assert {"CNY", "USD", "EUR", "JPY", "KWD", "XAF", "XOF", "XCD", "XPF"} <= CURRENCIES
    not_currencies = {"XXX", "XTS", "XAU", "XAG", "XPT", "XPD", "XBA", "XBB", "XBC", "XBD", "XDR", "XSU", "XUA"}
    assert not CURRENCIES & not_currencies
    assert not CURRENCIES & {"DEM", "FRF", "ITL", "HRK", "ZWD", "BOV", "CHE", "USN"}
    assert 140 < len(CURRENCIES) < 200  # about the ISO 4217 list of circulating currencies
    assert MAX_MINOR_DIGITS == 3


# --- loans at the bounds --------------------------------------------------------------------------


@st.composite
def amounts(draw: st.DrawFn, currency: str) -> Decimal:
    """Amounts the currency allows, the largest ones often: up to 12 integer digits, every decimal."""
    places = get_currency_precision(currency)
    largest = 10 ** (MAX_INTEGER_DIGITS + places) - 1
    minor = draw(st.sampled_from([0, 1, largest, largest - 1]) | st.integers(min_value=0, max_value=largest))
    return Decimal(minor).scaleb(-places)


@st.composite
def loans_at_the_bounds(draw: st.DrawFn) -> Loan:
    currency = draw(st.sampled_from(sorted(CURRENCIES)))
    day = st.dates(min_value=EARLIEST_DATE, max_value=LATEST_DATE)
    item: dict[str, Any] = {
        "loan_id": "L-BOUND",
        "borrower_id": "B-1",
        "borrower_name": draw(st.sampled_from(HOSTILE_NAMES) | st.text(min_size=1, max_size=60)),
        "phone": "+8613800138000",
        "status": "OPEN",
        "due_date": draw(st.sampled_from([EARLIEST_DATE, LATEST_DATE]) | day).isoformat(),
        "amount_due": draw(amounts(currency)),
        "currency": currency,
    }
    late = draw(st.none() | amounts(currency))
    if late is not None:
        item["late_fees"] = late
    return parse_loan(item)


def render_everything(loan: Loan, today: dt.date, loan_count: int = 1) -> None:
    """Every downstream computation on a loan: fees, totals, every stage and service message, locales."""
    fees = ladder.late_fees(loan, today, POLICY)
    assert fees >= 0 and fees == quantize(fees, loan.currency)
    total = (loan.amount_due + fees) * loan_count
    dpd = ladder.days_past_due(loan.due_date, today)
    pay_by = ladder.pay_by(today, loan.due_date, POLICY)
    assert money_text(total, loan.currency)  # the bureau file's amount
    for locale in SUPPORTED_LOCALES:
        shown_total = format_money(total, loan.currency, locale)
        for kind in REMINDER_KINDS:
            sms = render_reminder(
                POLICY, kind=kind, locale=locale, name=loan.borrower_name, currency=loan.currency,
                total=total, late_fees=fees * loan_count, days_past_due=dpd, due_date=loan.due_date,
                pay_by=pay_by, reference="ABCDEF", loan_count=loan_count, promised_date=loan.due_date,
                loan_id=loan.loan_id,
            )  # fmt: skip
            assert shown_total in sms.body and "ABCDEF" in sms.body
            assert "evil" not in sms.body and "13800138000" not in sms.body
        render_service(
            POLICY, kind="payment_confirmation", locale=locale, name=loan.borrower_name,
            currency=loan.currency, reference="ABCDEF", paid=loan.amount_due, remaining=total,
        )  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    loans_at_the_bounds(),
    st.sampled_from([EARLIEST_DATE, LATEST_DATE]) | st.dates(min_value=EARLIEST_DATE, max_value=LATEST_DATE),
    st.integers(min_value=1, max_value=99),
)
def test_no_valid_loan_makes_any_stage_or_locale_raise(loan: Loan, today: dt.date, loan_count: int) -> None:
    render_everything(loan, today, loan_count)
    metrics.clear_metrics()


# --- any number at all ----------------------------------------------------------------------------

ANY_NUMBER = (
    st.decimals(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.from_regex(r"-?[0-9]{1,40}(\.[0-9]{1,40})?([eE][+-]?[0-9]{1,9})?", fullmatch=True)
    | st.text(max_size=20)
)


@settings(max_examples=400, deadline=None)
@given(ANY_NUMBER, st.sampled_from(["CNY", "JPY", "KWD", "USD", "IRR"]))
@example("9E+125", "USD")
@example("12419752974641975297464196.74", "USD")
@example("1E-30", "CNY")
@example("1E+999999999", "CNY")
@example("-0", "CNY")
def test_any_number_is_refused_as_invalid_amount_or_renders(value: object, currency: str) -> None:
    item = {
        "loan_id": "L-ANY", "borrower_id": "B-1", "borrower_name": "Ann", "phone": "+8613800138000",
        "status": "OPEN", "due_date": "2026-11-01", "amount_due": value, "currency": currency,
    }  # fmt: skip
    try:
        loan = parse_loan(item)
    except InvalidLoan as exc:
        assert exc.reason == "invalid_amount"
        return
    assert loan.amount_due < Decimal(10) ** MAX_INTEGER_DIGITS
    assert loan.amount_due == quantize(loan.amount_due, currency)
    render_everything(loan, dt.date(2026, 11, 29))
    metrics.clear_metrics()


# --- money in events ------------------------------------------------------------------------------

PAID_AT = "2026-11-20T08:00:00Z"


@pytest.mark.parametrize(
    "amount", ["9E+125", "123456789012345678901234567890", "1E-30", "NaN", "Infinity", "-5", "0", "1.0001"]
)
def test_event_amounts_beyond_a_loan_are_refused(amount: str) -> None:
    with pytest.raises(ValidationError) as payment:
        PaymentReceived(loan_id="L-1", amount=amount, currency="USD", paid_at=PAID_AT)
    with pytest.raises(ValidationError):
        PromiseToPay(loan_id="L-1", promised_date="2026-12-01", amount=amount)
    with pytest.raises(ValidationError):
        RepaymentPlanAgreed.model_validate(
            {"loan_id": "L-1", "instalments": [{"due_date": "2026-12-01", "amount": amount}]}
        )
    messages = " ".join(e["msg"] for e in payment.value.errors())
    assert "amount" in str(payment.value.errors()[0]["loc"])
    if amount != "0":
        assert amount not in messages  # the message names the rule, never the value


@pytest.mark.parametrize(("amount", "currency"), [("100.5", "JPY"), ("1.234", "CNY"), ("10.5", "XOF")])
def test_a_payment_finer_than_its_currency_is_refused(amount: str, currency: str) -> None:
    with pytest.raises(ValidationError, match="minor unit"):
        PaymentReceived(loan_id="L-1", amount=amount, currency=currency, paid_at=PAID_AT)


@pytest.mark.parametrize("currency", ["XXX", "XAU", "XDR", "DEM"])
def test_a_payment_in_no_current_currency_is_refused(currency: str) -> None:
    with pytest.raises(ValidationError, match="current ISO 4217"):
        PaymentReceived(loan_id="L-1", amount="5", currency=currency, paid_at=PAID_AT)


def test_event_amounts_within_bounds_are_exact() -> None:
    payment = PaymentReceived(loan_id="L-1", amount="999999999999.99", currency="USD", paid_at=PAID_AT)
    assert payment.amount == Decimal("999999999999.99")
    assert PaymentReceived(loan_id="L-1", amount="1.234", currency="KWD", paid_at=PAID_AT).amount == Decimal("1.234")
    assert PromiseToPay(loan_id="L-1", promised_date="2026-12-01", amount="1.234").amount == Decimal("1.234")
