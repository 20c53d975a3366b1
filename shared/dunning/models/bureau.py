"""The credit-bureau reported set as the product keeps it (StateTable `BUREAU#REPORTED / LOAN#id`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from dunning.models.loan import IsoDate


class Reported(BaseModel):
    """A loan in the reported set (StateTable `BUREAU#REPORTED / LOAN#id`)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    loan_id: str
    borrower_id: str
    currency: str
    first_delinquency_date: IsoDate
    reported_since: IsoDate
    settled_on: IsoDate | None = None

    def to_entry(self) -> dict[str, Any]:
        values = self.model_dump(mode="json")
        return {key: value for key, value in values.items() if value is not None}
