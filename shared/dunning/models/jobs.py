"""The SQS send job: one borrower, the loans (and stages) the planner found due for them."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class LineSnapshot(BaseModel):
    """What the planner read of a loan: the sender decides from it and re-checks it atomically.

    The sender reads nothing of the loan: its pre-publish transaction ConditionChecks the live
    LoansTable item against `loan` and the CONTROL item against `control` (dal/snapshots.py), so a
    loan changed since planning is caught at the last moment, and only then read again.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    loan: Annotated[
        dict[str, dict[str, Any]],
        Field(description="LoansTable attributes (docs/contract.md#loanstable-item) as attribute values ({'S': ...})"),
    ]
    control: Annotated[
        dict[str, Any], Field(description="the CONTROL item's collection state (LoanControl, JSON); {} when none")
    ] = {}


class JobLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    loan_id: Annotated[str, Field(min_length=1, max_length=128)]
    cycle: Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="due_date being chased")]
    stage: Annotated[str, Field(pattern=r"^[a-z_0-9]+$", max_length=64)]
    snapshot: LineSnapshot | None = None  # absent in jobs of an older planner: the sender reads the loan


class SendJob(BaseModel):
    """What the planner enqueues; the sender re-checks everything in it against live data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    borrower_id: Annotated[str, Field(min_length=1, max_length=128)]
    lines: Annotated[tuple[JobLine, ...], Field(min_length=1, max_length=25)]
    planned_at: AwareDatetime

    @property
    def job_id(self) -> str:
        keys = ",".join(f"{line.loan_id}/{line.cycle}/{line.stage}" for line in self.lines)
        return f"{self.borrower_id}:{keys}"
