"""The LoansTable item contract (docs/contract.md#loanstable-item): what is accepted, and why the rest is refused."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from dunning.models.loan import InvalidLoan, LoanStatus, outstanding, parse_loan

PHONE = "+8613800138000"


def item(**changes: object) -> dict[str, object]:
    values: dict[str, object] = {
        "loan_id": "L-1",
        "borrower_id": "B-1",
        "borrower_name": "张三",
        "phone": PHONE,
        "status": "OPEN",
        "due_date": "2026-11-28",
        "amount_due": Decimal("1234.56"),
        "currency": "CNY",
    }
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


def test_a_valid_item_parses_with_exact_money() -> None:
    loan = parse_loan(item(late_fees=Decimal("3.10"), locale="en-US", timezone="America/New_York", extra="kept out"))
    assert loan.amount_due == Decimal("1234.56")
    assert loan.late_fees == Decimal("3.10")
    assert loan.status is LoanStatus.OPEN
    assert loan.due_date == dt.date(2026, 11, 28)
    assert loan.cycle == "2026-11-28"
    assert outstanding(loan) == Decimal("1237.66")


def test_optional_attributes_may_be_absent() -> None:
    loan = parse_loan(item())
    assert (loan.late_fees, loan.locale, loan.timezone) == (None, None, None)
    assert outstanding(loan) == Decimal("1234.56")


def test_numbers_as_strings_and_ints_are_exact() -> None:
    assert parse_loan(item(amount_due="0.10")).amount_due == Decimal("0.10")
    assert parse_loan(item(amount_due=5000, currency="JPY")).amount_due == Decimal(5000)


def test_phone_is_normalised_to_e164() -> None:
    assert parse_loan(item(phone="+86 138-0013-8000")).phone == PHONE


@pytest.mark.parametrize(
    ("changes", "reason", "field"),
    [
        ({"phone": None}, "missing_phone", "phone"),
        ({"phone": "12345"}, "invalid_phone", "phone"),
        ({"phone": "8613800138000"}, "invalid_phone", "phone"),  # moto takes it; AWS does not
        ({"phone": "+861380013800099"}, "invalid_phone", "phone"),
        ({"phone": 8613800138000}, "invalid_phone", "phone"),
        ({"amount_due": "abc"}, "invalid_amount", "amount_due"),
        ({"amount_due": 1234.56}, "invalid_amount", "amount_due"),  # float: rejected, never rounded
        ({"amount_due": "-1"}, "invalid_amount", "amount_due"),
        ({"amount_due": "NaN"}, "invalid_amount", "amount_due"),
        ({"amount_due": None}, "missing_amount_due", "amount_due"),
        ({"late_fees": 0.5}, "invalid_amount", "late_fees"),
        ({"due_date": "2026-02-30"}, "invalid_due_date", "due_date"),
        ({"due_date": "28/11/2026"}, "invalid_due_date", "due_date"),
        ({"due_date": "2026-11-28T00:00:00"}, "invalid_due_date", "due_date"),
        ({"status": "ACTIVE"}, "invalid_status", "status"),
        ({"status": "open"}, "invalid_status", "status"),
        ({"currency": "XYZ"}, "invalid_currency", "currency"),
        ({"currency": "cny"}, "invalid_currency", "currency"),
        ({"timezone": "Mars/Olympus_Mons"}, "invalid_timezone", "timezone"),
        ({"timezone": ""}, "invalid_timezone", "timezone"),
        ({"locale": "fr-FR"}, "invalid_locale", "locale"),
        ({"borrower_name": None}, "missing_borrower_name", "borrower_name"),
    ],
)
def test_contract_breaches_give_invalid_loan_with_reason(changes: dict[str, object], reason: str, field: str) -> None:
    with pytest.raises(InvalidLoan) as caught:
        parse_loan(item(**changes))
    error = caught.value
    assert error.loan_id == "L-1"
    assert error.reason == reason
    assert field in error.detail
    # Never the phone number itself (log lines and records carry this message).
    for text in (str(error), error.detail):
        assert "13800138000" not in text
        assert "12345" not in text


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        # Money beyond any real loan: valid DynamoDB numbers all the same.
        ({"amount_due": Decimal("9E+125")}, "invalid_amount"),
        ({"amount_due": "9E+125"}, "invalid_amount"),
        ({"amount_due": "123456789012345678901234567890"}, "invalid_amount"),  # 30 digits
        ({"amount_due": Decimal("12419752974641975297464196.74")}, "invalid_amount"),  # 26 digits
        ({"amount_due": Decimal("1000000000000")}, "invalid_amount"),  # 13 integer digits
        ({"amount_due": Decimal("1E-30")}, "invalid_amount"),
        ({"amount_due": "Infinity"}, "invalid_amount"),
        ({"amount_due": "-Infinity"}, "invalid_amount"),
        ({"amount_due": "sNaN"}, "invalid_amount"),
        ({"amount_due": Decimal("-0.01")}, "invalid_amount"),
        ({"amount_due": "1.234"}, "invalid_amount"),  # finer than CNY's fen
        ({"amount_due": "100.5", "currency": "JPY"}, "invalid_amount"),  # JPY has no minor unit
        ({"amount_due": "10.5", "currency": "XAF"}, "invalid_amount"),
        ({"amount_due": "1.0001", "currency": "KWD"}, "invalid_amount"),  # KWD has 3 decimals
        ({"late_fees": "9E+125"}, "invalid_amount"),
        ({"late_fees": "0.001"}, "invalid_amount"),
        ({"late_fees": "NaN"}, "invalid_amount"),
        # Only real, current ISO 4217 currencies.
        ({"currency": "XXX"}, "invalid_currency"),
        ({"currency": "XTS"}, "invalid_currency"),
        ({"currency": "XAU"}, "invalid_currency"),
        ({"currency": "XAG"}, "invalid_currency"),
        ({"currency": "XPT"}, "invalid_currency"),
        ({"currency": "XPD"}, "invalid_currency"),
        ({"currency": "XBA"}, "invalid_currency"),
        ({"currency": "XBD"}, "invalid_currency"),
        ({"currency": "XDR"}, "invalid_currency"),
        ({"currency": "XSU"}, "invalid_currency"),
        ({"currency": "XUA"}, "invalid_currency"),
        ({"currency": "BOV"}, "invalid_currency"),  # a fund code beside a real currency
        ({"currency": "DEM"}, "invalid_currency"),
        ({"currency": "FRF"}, "invalid_currency"),
        ({"currency": "HRK"}, "invalid_currency"),  # replaced by EUR in 2023
        # Due dates: real calendar days written YYYY-MM-DD, nothing else.
        ({"due_date": "2026/11/16"}, "invalid_due_date"),
        ({"due_date": "2026-02-30"}, "invalid_due_date"),
        ({"due_date": "2025-02-29"}, "invalid_due_date"),
        ({"due_date": "20261116"}, "invalid_due_date"),
        ({"due_date": " 2026-11-16"}, "invalid_due_date"),
        ({"due_date": "2026-11-16 "}, "invalid_due_date"),
        ({"due_date": "2026-11-16T00:00:00"}, "invalid_due_date"),
        ({"due_date": "2026-W47-1"}, "invalid_due_date"),  # an ISO week date fromisoformat would take
        ({"due_date": "2026-1-16"}, "invalid_due_date"),
        ({"due_date": "２０２６-１１-１６"}, "invalid_due_date"),  # fullwidth digits
        ({"due_date": "0001-01-01"}, "invalid_due_date"),
        ({"due_date": "9999-12-31"}, "invalid_due_date"),
        ({"due_date": 20261116}, "invalid_due_date"),
    ],
)
def test_values_beyond_what_a_loan_can_be_are_refused_without_echoing_them(
    changes: dict[str, object], reason: str
) -> None:
    with pytest.raises(InvalidLoan) as caught:
        parse_loan(item(**changes))
    assert caught.value.reason == reason
    for value in changes.values():
        if len(str(value)) > 3:  # a currency code is named; a value is never repeated
            assert str(value).strip() not in str(caught.value)


@pytest.mark.parametrize(
    ("changes", "amount"),
    [
        ({"amount_due": Decimal("999999999999.99")}, Decimal("999999999999.99")),  # 12 integer digits
        ({"amount_due": "1234.560"}, Decimal("1234.56")),  # a trailing zero is no extra precision
        ({"amount_due": "5E+3", "currency": "JPY"}, Decimal(5000)),
        ({"amount_due": "100.00", "currency": "JPY"}, Decimal(100)),
        ({"amount_due": "1.234", "currency": "KWD"}, Decimal("1.234")),
        ({"amount_due": "-0"}, Decimal(0)),
        ({"amount_due": "0"}, Decimal(0)),
        ({"amount_due": "500", "currency": "XAF"}, Decimal(500)),  # real currencies starting with X
        ({"amount_due": "500", "currency": "XOF"}, Decimal(500)),
        ({"amount_due": "5.25", "currency": "XCD"}, Decimal("5.25")),
        ({"amount_due": "500", "currency": "XPF"}, Decimal(500)),
        ({"amount_due": "5.25", "currency": "EUR"}, Decimal("5.25")),
    ],
)
def test_amounts_within_bounds_are_exact(changes: dict[str, object], amount: Decimal) -> None:
    loan = parse_loan(item(**changes))
    assert loan.amount_due == amount and not loan.amount_due.is_signed()


def test_the_earliest_and_latest_due_dates_are_accepted() -> None:
    assert parse_loan(item(due_date="1900-01-01")).due_date == dt.date(1900, 1, 1)
    assert parse_loan(item(due_date="2999-12-31")).due_date == dt.date(2999, 12, 31)
    assert parse_loan(item(due_date="2028-02-29")).due_date == dt.date(2028, 2, 29)


def test_any_name_up_to_the_bound_is_kept_for_compose_to_judge() -> None:
    assert parse_loan(item(borrower_name="Jane https://evil.example")).borrower_name == "Jane https://evil.example"
    assert parse_loan(item(borrower_name="A" * 300)).borrower_name == "A" * 300


def test_an_item_without_loan_id_still_gives_a_reason() -> None:
    with pytest.raises(InvalidLoan) as caught:
        parse_loan(item(loan_id=None))
    assert caught.value.reason == "missing_loan_id"
    assert caught.value.loan_id == "<missing loan_id>"


def test_the_first_broken_attribute_names_the_reason_and_all_are_listed() -> None:
    with pytest.raises(InvalidLoan) as caught:
        parse_loan(item(phone="12345", amount_due="abc"))
    assert caught.value.reason == "invalid_phone"
    assert "amount_due" in caught.value.detail
    assert "phone" in caught.value.detail
