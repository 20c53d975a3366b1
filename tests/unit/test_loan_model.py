"""The LoansTable item contract (DESIGN 4.2): what is accepted, and why the rest is refused."""

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
