"""Money and dates as a borrower reads them, per locale (Babel CLDR data)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from babel.dates import format_date as _babel_date
from babel.numbers import format_currency

from dunning.models.loan import Locale
from dunning.models.money import quantize


def babel_locale(locale: Locale) -> str:
    """`zh-CN` -> `zh_CN`: Babel's spelling of a BCP 47 tag."""
    return locale.replace("-", "_")


def format_money(amount: Decimal, currency: str, locale: Locale) -> str:
    """`¥1,234,567.89` (zh-CN), `$1,234.50` or `CN¥8.00` (en-US), `¥1,235` for JPY.

    Rounds half-up to the currency's minor unit first: Babel itself would round half-even.
    """
    if not isinstance(amount, Decimal):
        raise TypeError(f"money must be a Decimal, got {type(amount).__name__}")
    if not amount.is_finite():
        raise ValueError("money must be a finite Decimal")
    return format_currency(quantize(amount, currency), currency, locale=babel_locale(locale))


def format_date(day: dt.date, locale: Locale) -> str:
    """`2026年12月1日` (zh-CN) or `Dec 1, 2026` (en-US): short, with the year, never all-numeric."""
    return _babel_date(day, format="medium", locale=babel_locale(locale))
