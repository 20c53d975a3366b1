"""The product's own state per loan (StateTable): send claims and the loan's collection controls."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from dunning.models.loan import IsoDate
from dunning.models.money import Amount


class ClaimState(StrEnum):
    PLANNED = "PLANNED"  # a job is on the queue
    DEFERRED = "DEFERRED"  # not now (window, cap, pause); plan again from retry_after
    SENDING = "SENDING"  # written just before Publish: finding it on a retry means "maybe sent"
    SENT = "SENT"
    SUPPRESSED = "SUPPRESSED"  # final for this stage
    UNCERTAIN = "UNCERTAIN"  # Publish outcome unknown: never resent automatically


FINAL_CLAIM_STATES = frozenset({ClaimState.SENT, ClaimState.SUPPRESSED, ClaimState.UNCERTAIN})


class SendClaim(BaseModel):
    """At most one SMS per (loan, cycle, stage): this item is the guard."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    loan_id: str
    cycle: str
    stage: str
    state: ClaimState
    updated_at: AwareDatetime
    retry_after: AwareDatetime | None = None
    reason: str | None = None
    record_id: str | None = None
    message_id: str | None = None


class Instalment(BaseModel):
    """One instalment of an agreed repayment plan (RepaymentPlanAgreed)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    due_date: IsoDate
    amount: Annotated[Amount, Field(gt=0)]  # currency unknown here: bounded to the finest minor unit


class LoanControl(BaseModel):
    """Holds and pauses set by borrower events (LoanEventsFunction); absent means none."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    loan_id: str
    dispute_hold: bool = False
    paused_until: dt.date | None = None
    pause_reason: str | None = None  # promise_pending or grace_period
    promised_date: dt.date | None = None
    promise_amount: Decimal | None = None
    promise_broken: bool = False
    # Promised dates that passed unkept (a string set, added idempotently when escalation or the next
    # promise or grace finds the promise broken); escalation counts those of the cycle it chases.
    broken_promises: frozenset[IsoDate] = frozenset()
    case_cycle: str | None = None  # cycle handed to human collectors: no more collection SMS
    case_detail: str | None = None  # the CollectionCaseOpened detail (JSON) written with case_cycle
    plan_due_date: dt.date | None = None
    plan: tuple[Instalment, ...] = ()  # agreed repayment plan, earliest instalment first
    # Set when an SMS of the loan failed (carrier FAILED or rejected by SNS): escalation reads
    # the delivery history only for such loans, or when it opens a case.
    last_failed_delivery_at: dt.datetime | None = None
    # When each aspect last changed (`update_control`, as written: the sender's ConditionCheck compares
    # them); a dispute_event_at without dispute_hold is a resolved dispute (the bureau's XH).
    dispute_event_at: str | None = None
    pause_event_at: str | None = None
    plan_event_at: str | None = None


class CollectionCase(BaseModel):
    """A loan cycle handed to human collectors (StateTable `LOAN#id / CASE#cycle`, `dal.cases`).

    `detail` and `close_detail` hold the CollectionCaseOpened / CollectionCaseClosed details as JSON;
    `published` and `close_published` turn true once that event is on the bus.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    loan_id: str
    cycle: str
    borrower_id: str
    reason: str | None = None
    opened_at: AwareDatetime | None = None  # always written; no reader needs it, so an item without it still closes
    detail: str
    published: bool = False
    published_at: AwareDatetime | None = None
    closed_at: AwareDatetime | None = None
    close_reason: str | None = None
    close_detail: str | None = None
    close_published: bool = False
    close_published_at: AwareDatetime | None = None


class PlannerAgenda(BaseModel):
    """When a planner segment must read the book again (StateTable `PLANNER / AGENDA#...`).

    Written at the end of a complete run: `wake_at` is the first instant at which that run's
    answer could change (a borrower's window opens, a deferral or a stale plan expires, the
    business day turns, or the longest sleep allowed ends). `poke_version` is the version of
    `PLANNER / POKE` read before that run: a borrower event or a send-time deferral bumps it,
    so the next fire reads again.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    wake_at: AwareDatetime
    read_at: AwareDatetime
    poke_version: int = 0
