"""The estimated SMS price per segment and destination country: a bundled, dated table, or --prices FILE."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dunning.models.money import ExactDecimal
from dunning_tools.simulate.book import InputError

BUNDLED_PRICES = Path(__file__).resolve().parent / "sms_prices.json"

CountryCode = Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2, as phonenumbers names it")]
SegmentPrice = Annotated[ExactDecimal, Field(ge=0, le=10, description="USD per SMS segment")]


class PriceTable(BaseModel):
    """Prices are estimates: `source` says where they come from, `as_of` when, `note` how far to trust them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    as_of: dt.date
    currency: Literal["USD"]
    source: Annotated[str, Field(min_length=1)]
    unit: str = "per SMS segment"
    note: str = ""
    per_segment: dict[CountryCode, SegmentPrice]

    def price(self, country: str) -> Decimal | None:
        return self.per_segment.get(country)


def load_prices(path: Path | None = None) -> PriceTable:
    """The bundled table, or the one in `path`; InputError naming the file and the field when it does not load."""
    source = path or BUNDLED_PRICES
    try:
        data: Any = json.loads(source.read_text(encoding="utf-8"), parse_float=Decimal)
    except OSError as exc:
        raise InputError(f"{source}: cannot read the price table: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{source}: the price table is not JSON: {exc}") from None
    try:
        return PriceTable.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(document)'}: {e['msg']}" for e in exc.errors())
        raise InputError(f"{source}: not a price table: {problems}") from None
