"""Inbound SMS: the two-way SMS message AWS publishes to the inbound topic (docs/contract.md#inbound-sms)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from dunning.models.loan import PhoneNumber


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
