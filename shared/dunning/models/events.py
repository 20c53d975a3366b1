"""Events in: loan and borrower events (docs/contract.md#events-in).

The scheduled event is `dunning.models.scheduled`'s, the inbound SMS `dunning.models.inbound`'s: a function
builds the models of the events it takes, not these at every cold start.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
    field_validator,
    model_validator,
)

from dunning.models.loan import IsoDate, PhoneNumber
from dunning.models.money import Amount, check_minor_unit, is_currency
from dunning.models.state import Instalment

LoanId = Annotated[str, Field(min_length=1, max_length=128, description="LoansTable loan_id")]
PositiveMoney = Annotated[
    Amount, Field(gt=0, description="major units, exact decimal (never a float), bounded to what a loan can be")
]
Reason = Annotated[str, Field(min_length=1, max_length=500, description="free text for the audit trail")]


def _timestamp_text(value: Any) -> Any:
    """A timestamp as the contract writes it (ISO-8601 text with its offset), never a number: pydantic would read
    1795000000 as seconds since the epoch, and a producer's bug would pass for a time."""
    if isinstance(value, str | dt.datetime):
        return value
    raise ValueError("must be an ISO-8601 date-time with its offset, as text")


Timestamp = Annotated[AwareDatetime, BeforeValidator(_timestamp_text)]


class _Detail(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class PaymentReceived(_Detail):
    loan_id: LoanId
    amount: PositiveMoney
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    paid_at: Timestamp

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        if not is_currency(value):
            raise ValueError(f"{value!r} is not a current ISO 4217 currency")
        return value

    @model_validator(mode="after")
    def _amount_in_minor_units(self) -> PaymentReceived:
        try:
            check_minor_unit(self.amount, self.currency)
        except ValueError as exc:
            raise ValueError(f"amount {exc}") from None
        return self


class PromiseToPay(_Detail):
    loan_id: LoanId
    promised_date: IsoDate
    amount: PositiveMoney


class GracePeriodGranted(_Detail):
    loan_id: LoanId
    until: IsoDate


class RepaymentPlanAgreed(_Detail):
    loan_id: LoanId
    instalments: Annotated[tuple[Instalment, ...], Field(min_length=1, max_length=120)]

    @model_validator(mode="after")
    def _dates_increase(self) -> RepaymentPlanAgreed:
        dates = [i.due_date for i in self.instalments]
        if dates != sorted(set(dates)):
            raise ValueError("instalments must have strictly increasing due dates")
        return self


class LoanDisputed(_Detail):
    loan_id: LoanId
    reason: Reason


class DisputeResolved(_Detail):
    loan_id: LoanId
    reason: Reason


class ContactOptOut(_Detail):
    phone: PhoneNumber


class ContactOptIn(_Detail):
    phone: PhoneNumber


class BorrowerErasureRequested(_Detail):
    borrower_id: Annotated[str, Field(min_length=1, max_length=128, description="LoansTable borrower_id")]
    phone: PhoneNumber


LoanEventDetail = (
    PaymentReceived
    | PromiseToPay
    | GracePeriodGranted
    | RepaymentPlanAgreed
    | LoanDisputed
    | DisputeResolved
    | ContactOptOut
    | ContactOptIn
    | BorrowerErasureRequested
)


class _LoanEvent(EventBridgeModel):
    """The EventBridge envelope; `time` orders events of one kind for one loan or phone."""

    time: AwareDatetime


class PaymentReceivedEvent(_LoanEvent):
    detail_type: Literal["PaymentReceived"] = Field(alias="detail-type")
    detail: PaymentReceived


class PromiseToPayEvent(_LoanEvent):
    detail_type: Literal["PromiseToPay"] = Field(alias="detail-type")
    detail: PromiseToPay


class GracePeriodGrantedEvent(_LoanEvent):
    detail_type: Literal["GracePeriodGranted"] = Field(alias="detail-type")
    detail: GracePeriodGranted


class RepaymentPlanAgreedEvent(_LoanEvent):
    detail_type: Literal["RepaymentPlanAgreed"] = Field(alias="detail-type")
    detail: RepaymentPlanAgreed


class LoanDisputedEvent(_LoanEvent):
    detail_type: Literal["LoanDisputed"] = Field(alias="detail-type")
    detail: LoanDisputed


class DisputeResolvedEvent(_LoanEvent):
    detail_type: Literal["DisputeResolved"] = Field(alias="detail-type")
    detail: DisputeResolved


class ContactOptOutEvent(_LoanEvent):
    detail_type: Literal["ContactOptOut"] = Field(alias="detail-type")
    detail: ContactOptOut


class ContactOptInEvent(_LoanEvent):
    detail_type: Literal["ContactOptIn"] = Field(alias="detail-type")
    detail: ContactOptIn


class BorrowerErasureRequestedEvent(_LoanEvent):
    detail_type: Literal["BorrowerErasureRequested"] = Field(alias="detail-type")
    detail: BorrowerErasureRequested


LoanEvent = Annotated[
    PaymentReceivedEvent
    | PromiseToPayEvent
    | GracePeriodGrantedEvent
    | RepaymentPlanAgreedEvent
    | LoanDisputedEvent
    | DisputeResolvedEvent
    | ContactOptOutEvent
    | ContactOptInEvent
    | BorrowerErasureRequestedEvent,
    Field(discriminator="detail_type"),
]


class LoanEventEnvelope(RootModel[LoanEvent]):
    """Any contract event, chosen by `detail-type`; an unknown one is an error naming the known ones."""


LOAN_EVENT_TYPES = (
    "PaymentReceived",
    "PromiseToPay",
    "GracePeriodGranted",
    "RepaymentPlanAgreed",
    "LoanDisputed",
    "DisputeResolved",
    "ContactOptOut",
    "ContactOptIn",
    "BorrowerErasureRequested",
)
