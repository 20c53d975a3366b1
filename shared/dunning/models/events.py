"""Events in: the scheduled event, loan and borrower events, inbound SMS (docs/contract.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, RootModel, field_validator, model_validator

from dunning.models.loan import IsoDate, PhoneNumber
from dunning.models.money import Amount, check_minor_unit, is_currency
from dunning.models.state import Instalment

MAX_SHARDS = 1024  # the ladder index's buckets (dunning.sharding): a shard is a set of whole buckets


class ShardDetail(BaseModel):
    """The shard contract (docs/contract.md#shard-contract): `{"shard": i, "shards": n}` works on that shard alone.

    Without `shard` the run covers every shard in one invocation. `cursor` resumes a shard run
    that stopped near its time limit (the state machine passes back the cursor it returned);
    `assemble` asks the bureau report to join the shards' parts into the day's file.
    """

    model_config = ConfigDict(extra="ignore")

    shard: Annotated[int | None, Field(ge=0, description="0 <= shard < shards; absent: every shard")] = None
    shards: Annotated[int, Field(ge=1, le=MAX_SHARDS, description="how many shards the book is cut into")] = 1
    cursor: Annotated[str | None, Field(max_length=4096, description="where a stopped shard run resumes")] = None
    assemble: Annotated[bool, Field(description="bureau only: join the shards' parts")] = False

    @model_validator(mode="after")
    def _shard_in_range(self) -> ShardDetail:
        if self.shard is not None and self.shard >= self.shards:
            raise ValueError(f"shard must be below shards ({self.shards})")
        if self.cursor is not None and self.shard is None and self.shards != 1:
            raise ValueError("a cursor resumes one shard: give shard too")
        return self


class ScheduledEvent(EventBridgeModel):
    """An EventBridge Scheduler event; `time` (the scheduled time) is the run's clock.

    `version` is optional: the Scheduler's Input (template.yaml) carries it, but the event
    `sam local generate-event cloudwatch scheduled-event` prints has none, and neither changes the run.
    """

    version: str = "0"
    time: AwareDatetime
    detail: ShardDetail = ShardDetail()


# ---------------------------------------------------------------- loan and borrower events (docs/contract.md#events-in)

LoanId = Annotated[str, Field(min_length=1, max_length=128, description="LoansTable loan_id")]
PositiveMoney = Annotated[
    Amount, Field(gt=0, description="major units, exact decimal (never a float), bounded to what a loan can be")
]
Reason = Annotated[str, Field(min_length=1, max_length=500, description="free text for the audit trail")]


class _Detail(BaseModel):
    # defer_build: a function builds the validators of the events it parses, at the first one, not all
    # of them at cold start (issue 11: scheduled functions import this module for ScheduledEvent alone).
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)


class PaymentReceived(_Detail):
    loan_id: LoanId
    amount: PositiveMoney
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    paid_at: AwareDatetime

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

    model_config = ConfigDict(defer_build=True)

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

    model_config = ConfigDict(defer_build=True)


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


# ---------------------------------------------------------------- inbound SMS (two-way SMS through SNS)


class InboundSms(BaseModel):
    """The two-way SMS message AWS End User Messaging / SNS publishes to the inbound topic."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    # The wire names of the AWS message.
    originationNumber: PhoneNumber
    destinationNumber: Annotated[str, Field(min_length=1, max_length=32)]
    messageBody: Annotated[str, Field(max_length=1600)]
    inboundMessageId: Annotated[str, Field(min_length=1, max_length=128)]
    messageKeyword: str | None = None
    previousPublishedMessageId: str | None = None
