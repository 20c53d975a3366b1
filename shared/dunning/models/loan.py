"""The LoansTable item (docs/contract.md#loanstable-item): written upstream, validated here before anything uses it."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from dunning.models.money import Amount, check_minor_unit, is_currency

Locale = Literal["zh-CN", "en-US"]
SUPPORTED_LOCALES: tuple[Locale, ...] = ("zh-CN", "en-US")


class LoanStatus(StrEnum):
    OPEN = "OPEN"
    PAID = "PAID"
    CLOSED = "CLOSED"
    WRITTEN_OFF = "WRITTEN_OFF"


def e164(value: Any) -> str:
    """A valid mobile-capable E.164 number; AWS rejects numbers without '+', so do we."""
    if not isinstance(value, str) or not value.startswith("+"):
        raise ValueError("must be an E.164 phone number starting with '+'")
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise ValueError("is not a parseable phone number") from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError("is not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


# What an SMS can reach: a mobile, or a number whose plan does not tell mobiles apart (US, CA, ...).
_MOBILE_TYPES = frozenset({phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE})


def mobile(value: Any) -> str:
    """A valid E.164 number that can receive SMS (not a landline, toll-free or premium-rate number)."""
    number = e164(value)
    if phonenumbers.number_type(phonenumbers.parse(number, None)) not in _MOBILE_TYPES:
        raise ValueError("is not a mobile number (an SMS cannot reach it)")
    return number


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# Far beyond any loan's due date, and far enough from date.min/max that the ladder's date
# arithmetic (days to a few years either way) can never overflow.
EARLIEST_DATE = dt.date(1900, 1, 1)
LATEST_DATE = dt.date(2999, 12, 31)


def iso_date(value: Any) -> dt.date:
    """A real calendar day written strictly YYYY-MM-DD (ASCII digits; no week dates, times or spaces)."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        day = value
    elif isinstance(value, str) and _ISO_DATE.fullmatch(value):
        try:
            day = dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError("is not a real calendar day (YYYY-MM-DD)") from None
    else:
        raise ValueError("must be a date written YYYY-MM-DD")
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise ValueError(f"must be between {EARLIEST_DATE} and {LATEST_DATE}")
    return day


def iana_zone(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("must be an IANA time zone name")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("is not an IANA time zone name") from None
    return value


PhoneNumber = Annotated[str, BeforeValidator(e164)]
MobileNumber = Annotated[str, BeforeValidator(mobile)]
IsoDate = Annotated[dt.date, BeforeValidator(iso_date)]
TimeZoneName = Annotated[str, BeforeValidator(iana_zone)]


class Loan(BaseModel):
    """One loan as upstream wrote it. Unknown attributes are ignored (upstream owns the item)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    loan_id: Annotated[str, Field(min_length=1, max_length=128)]
    borrower_id: Annotated[str, Field(min_length=1, max_length=128)]
    # Any text up to a bound: what is printable in an SMS is decided at compose time (printable_name).
    borrower_name: Annotated[str, Field(min_length=1, max_length=1000)]
    phone: MobileNumber
    status: LoanStatus
    due_date: IsoDate
    # Before the amounts: their minor-unit check needs it.
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    amount_due: Amount
    late_fees: Amount | None = None
    locale: Locale | None = None
    timezone: TimeZoneName | None = None

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        if not is_currency(value):
            raise ValueError(f"{value!r} is not a current ISO 4217 currency")
        return value

    @field_validator("amount_due", "late_fees")
    @classmethod
    def _in_minor_units(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        currency = info.data.get("currency")
        if value is None or currency is None:  # an invalid currency is reported on its own
            return value
        return check_minor_unit(value, currency)

    @property
    def cycle(self) -> str:
        """The delinquency being chased: one cycle per unpaid due date."""
        return self.due_date.isoformat()


class InvalidLoan(Exception):
    """A LoansTable item that breaks the contract; carries a reason safe to log and record."""

    def __init__(self, loan_id: str, reason: str, detail: str) -> None:
        super().__init__(f"loan {loan_id}: {reason}: {detail}")
        self.loan_id = loan_id
        self.reason = reason
        self.detail = detail


_REASON_BY_FIELD = {
    "phone": "invalid_phone",
    "amount_due": "invalid_amount",
    "late_fees": "invalid_amount",
    "due_date": "invalid_due_date",
    "status": "invalid_status",
    "currency": "invalid_currency",
    "timezone": "invalid_timezone",
    "locale": "invalid_locale",
}


def parse_loan(item: dict[str, Any]) -> Loan:
    """Validate a LoansTable item; raise InvalidLoan naming the first broken attribute."""
    loan_id = str(item.get("loan_id") or "<missing loan_id>")[:128]
    try:
        return Loan.model_validate(item)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "item"
        missing = first["type"] == "missing"
        reason = f"missing_{field}" if missing else _REASON_BY_FIELD.get(field, f"invalid_{field}")
        fields = ", ".join(sorted({str(e["loc"][0]) for e in exc.errors() if e["loc"]}))
        # The message never echoes the value itself: it may be a phone number or a name.
        raise InvalidLoan(loan_id, reason, f"{first['msg']} (attributes: {fields})") from None


# The reasons of an item whose only fault may be its phone: the SMS cannot reach the borrower.
UNREACHABLE_REASONS = frozenset({"invalid_phone", "missing_phone"})


class UnreachableLoan(Loan):
    """A loan item valid in every attribute but its phone (missing, unparseable, not a mobile).

    No SMS can reach it, so it goes to human collectors (docs/contract.md#loanstable-item). `phone` is always empty:
    the broken value is never carried on.
    """

    phone: Literal[""] = ""
    phone_fault: Annotated[str, Field(description="invalid_phone or missing_phone")]


def parse_unreachable(item: dict[str, Any], invalid: InvalidLoan) -> UnreachableLoan | None:
    """The loan of an item `parse_loan` refused for its phone alone; None when anything else is wrong too."""
    if invalid.reason not in UNREACHABLE_REASONS:
        return None
    try:
        return UnreachableLoan.model_validate({**item, "phone": "", "phone_fault": invalid.reason})
    except ValidationError:
        return None


def outstanding(loan: Loan) -> Decimal:
    return loan.amount_due + (loan.late_fees or Decimal(0))
