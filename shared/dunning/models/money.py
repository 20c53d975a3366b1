"""Money helpers: exact decimals, quantized to each currency's minor unit (ISO 4217 via Babel)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Annotated, Any

from babel.numbers import get_currency_precision, list_currencies
from pydantic import BeforeValidator

_KNOWN_CURRENCIES = frozenset(list_currencies())


def is_currency(code: str) -> bool:
    return code in _KNOWN_CURRENCIES


def minor_unit(currency: str) -> Decimal:
    """The smallest amount of a currency: 0.01 for CNY/USD, 1 for JPY."""
    return Decimal(1).scaleb(-get_currency_precision(currency))


def quantize(amount: Decimal, currency: str) -> Decimal:
    """Round half-up to the currency's minor unit."""
    return amount.quantize(minor_unit(currency), rounding=ROUND_HALF_UP)


def to_decimal(value: Any) -> Decimal:
    """Exact decimal from a DynamoDB number, an int or a numeric string; never from a float."""
    if isinstance(value, bool | float):
        raise ValueError("must be an exact decimal (DynamoDB N or numeric string), not a float")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | str):
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation:
            raise ValueError(f"{str(value)[:20]!r} is not a number") from None
    else:
        raise ValueError(f"must be a number, got {type(value).__name__}")
    if not result.is_finite():
        raise ValueError("must be a finite number")
    return result


ExactDecimal = Annotated[Decimal, BeforeValidator(to_decimal)]
