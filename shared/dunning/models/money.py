"""Money helpers: exact decimals, bounded to what a loan can be, quantized to each currency's minor unit.

Currencies and minor units come from Babel (CLDR); nothing here is a hand-kept list.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from typing import Annotated, Any

from babel.core import get_global
from babel.numbers import get_currency_precision, get_territory_currencies
from pydantic import AfterValidator, BeforeValidator

# A trillion major units is beyond any consumer loan even in IRR or VND, and keeps every sum,
# fee and quantize far inside Decimal's 28-digit context (no Overflow, no InvalidOperation).
MAX_INTEGER_DIGITS = 12
_AMOUNT_LIMIT = Decimal(10) ** MAX_INTEGER_DIGITS


def _current_currencies() -> frozenset[str]:
    """ISO 4217 codes that are legal tender in some territory with no end date in CLDR.

    That leaves out XXX/XTS, metals (XAU …), bond and fund units (XBA-XBD, XDR, XSU, XUA, BOV …)
    and historical codes (DEM, FRF, HRK …), and keeps XAF/XOF/XCD/XPF. Clock-free on purpose:
    which currencies exist changes with the Babel (CLDR) release, not with the day a Lambda starts.
    """
    codes: set[str] = set()
    for territory in get_global("territory_currencies"):
        for entry in get_territory_currencies(
            territory,
            start_date=dt.date.min,
            end_date=dt.date.max,
            tender=True,
            non_tender=False,
            include_details=True,
        ):
            if entry["to"] is None:
                codes.add(entry["currency"])
    return frozenset(codes)


CURRENCIES = _current_currencies()
# The most decimal places any accepted currency has (3: BHD, KWD, OMR …): the bound for
# amounts whose currency is not known where they are parsed (a promise, an instalment).
MAX_MINOR_DIGITS = max(get_currency_precision(code) for code in CURRENCIES)


def is_currency(code: str) -> bool:
    """A real, current ISO 4217 currency (see `CURRENCIES`)."""
    return code in CURRENCIES


@lru_cache(maxsize=1024)
def currency_places(currency: str) -> int:
    """Decimal places of the currency's minor unit (2 for CNY/USD, 0 for JPY), Babel's; looked up once per
    code, as every amount checked, summed or rounded asks (the planner: several times per loan)."""
    return get_currency_precision(currency)


@lru_cache(maxsize=64)
def _unit(places: int) -> Decimal:
    """1 scaled to `places` decimals (0.01 for 2); Decimals are immutable, so one serves every caller."""
    return Decimal(1).scaleb(-places)


def minor_unit(currency: str) -> Decimal:
    """The smallest amount of a currency: 0.01 for CNY/USD, 1 for JPY."""
    return _unit(currency_places(currency))


def quantize(amount: Decimal, currency: str) -> Decimal:
    """Round half-up to the currency's minor unit."""
    return amount.quantize(minor_unit(currency), rounding=ROUND_HALF_UP)


def to_decimal(value: Any) -> Decimal:
    """Exact decimal from a DynamoDB number, an int or a numeric string; never from a float.

    Messages never repeat the value: upstream text may be anything, and they reach logs and records.
    """
    if isinstance(value, bool | float):
        raise ValueError("must be an exact decimal (DynamoDB N or numeric string), not a float")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | str):
        try:
            result = Decimal(str(value).strip())
        except (InvalidOperation, ValueError):
            raise ValueError("is not a number") from None
    else:
        raise ValueError(f"must be a number, got {type(value).__name__}")
    if not result.is_finite():
        raise ValueError("must be a finite number")
    return result


def _decimal_places_within(amount: Decimal, places: int) -> bool:
    """True when `amount` has no non-zero digit beyond `places` decimals (1.50 has 1, 1.00 has 0)."""
    return amount.quantize(_unit(places), rounding=ROUND_HALF_UP) == amount


def bounded_amount(amount: Decimal) -> Decimal:
    """An amount a loan can be: not negative, at most MAX_INTEGER_DIGITS integer digits and
    MAX_MINOR_DIGITS decimals (the currency's own minor unit is checked once it is known)."""
    if amount < 0:
        raise ValueError("must not be negative")
    if amount >= _AMOUNT_LIMIT:
        raise ValueError(f"has more than {MAX_INTEGER_DIGITS} integer digits: beyond any real loan")
    if not _decimal_places_within(amount, MAX_MINOR_DIGITS):
        raise ValueError(f"has more than {MAX_MINOR_DIGITS} decimal places: beyond any currency's minor unit")
    return amount.copy_abs()  # -0 is 0: Babel would print "-$0.00"


def check_minor_unit(amount: Decimal, currency: str) -> Decimal:
    """ValueError when `amount` is finer than the currency's minor unit (1.234 CNY, 100.5 JPY)."""
    places = currency_places(currency)
    if not _decimal_places_within(amount, places):
        raise ValueError(f"has more decimal places than {currency}'s minor unit allows ({places})")
    return amount


ExactDecimal = Annotated[Decimal, BeforeValidator(to_decimal)]
# Money from upstream (loans, events): exact, non-negative, bounded. Add `Field(gt=0)` where 0 is no amount.
Amount = Annotated[Decimal, BeforeValidator(to_decimal), AfterValidator(bounded_amount)]
