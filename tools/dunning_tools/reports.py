"""Operator reports on the exactly-once guarantee (docs/contract.md#guarantees): UNCERTAIN review, the day's accounting.

Every planned job ends as exactly one of SENT, SUPPRESSED (with a reason), UNCERTAIN, or a message in
the DLQ. `reconcile` lists the send claims of a business day that have not reached such an end.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from zoneinfo import ZoneInfo

from dunning.decisions import REPLAN_AFTER
from dunning.models.delivery import Outcome
from dunning.models.state import FINAL_CLAIM_STATES, ClaimState
from dunning.models.timestamps import utc_iso
from dunning.observability import mask_phone
from dunning_tools.dal import audit


@dataclass(frozen=True)
class UncertainRecord:
    """One UNCERTAIN delivery record: an SMS that may or may not have left, for a person to review."""

    loan_id: str
    cycle: str
    stage: str
    created_at: str
    reason: str
    phone: str  # masked
    record_id: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class OpenClaim:
    """A send claim without an end state: `problem` says which and what happens to it."""

    loan_id: str
    cycle: str
    stage: str
    state: str
    updated_at: str
    problem: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


PROBLEMS = {
    "planned_not_sent": "PLANNED past REPLAN_AFTER: its job was lost or is in the DLQ (replanned while still due)",
    "sending_unresolved": "SENDING past REPLAN_AFTER: the attempt stopped mid-send and no redelivery resolved it",
    "deferred_overdue": "DEFERRED past its retry time without a record and not replanned",
    "final_without_record": "final state but no delivery record is named on the claim",
}


def uncertain(deliveries_table: str, since: dt.date | None = None) -> list[UncertainRecord]:
    """UNCERTAIN records created on or after `since` (all when None), oldest first."""
    rows = [
        UncertainRecord(
            loan_id=str(item["loan_id"]),
            cycle=str(item.get("cycle", "")),
            stage=str(item.get("stage", "")),
            created_at=str(item.get("created_at", "")),
            reason=str(item.get("reason", "")),
            phone=mask_phone(str(item["phone"]) if item.get("phone") else None),
            record_id=str(item["record_id"]),
        )
        for item in audit.records_with_outcome(
            deliveries_table, Outcome.UNCERTAIN.value, since.isoformat() if since else ""
        )
    ]
    return sorted(rows, key=lambda r: (r.created_at, r.loan_id))


def day_bounds(business_date: dt.date, timezone: str) -> tuple[str, str]:
    """The business day as an inclusive range of ISO UTC times (how claims store `updated_at`)."""
    zone = ZoneInfo(timezone)
    start = dt.datetime.combine(business_date, dt.time(0), tzinfo=zone)
    end = dt.datetime.combine(business_date + dt.timedelta(days=1), dt.time(0), tzinfo=zone)
    return utc_iso(start), utc_iso(end - dt.timedelta(milliseconds=1))


def problem_of(claim: dict[str, object], now: dt.datetime) -> str | None:
    """Why a claim has no end state yet (None: it has one, or it is still within its retry time)."""
    state = ClaimState(str(claim["state"]))
    updated_at = dt.datetime.fromisoformat(str(claim["updated_at"]).replace("Z", "+00:00"))
    if state in FINAL_CLAIM_STATES:
        return None if claim.get("record_id") else "final_without_record"
    if state is ClaimState.PLANNED and now - updated_at >= REPLAN_AFTER:
        return "planned_not_sent"
    if state is ClaimState.SENDING and now - updated_at >= REPLAN_AFTER:
        return "sending_unresolved"
    if state is ClaimState.DEFERRED and not claim.get("record_id"):
        retry_after = claim.get("retry_after")
        due = dt.datetime.fromisoformat(str(retry_after).replace("Z", "+00:00")) if retry_after else updated_at
        if now - due >= REPLAN_AFTER:
            return "deferred_overdue"
    return None


def reconcile(state_table: str, business_date: dt.date, timezone: str, now: dt.datetime) -> tuple[int, list[OpenClaim]]:
    """(claims touched that business day, those without an end state), oldest first."""
    start, end = day_bounds(business_date, timezone)
    touched = 0
    open_claims: list[OpenClaim] = []
    for claim in audit.send_claims(state_table, start, end):
        touched += 1
        problem = problem_of(claim, now)
        if problem:
            open_claims.append(
                OpenClaim(
                    loan_id=str(claim["loan_id"]),
                    cycle=str(claim["cycle"]),
                    stage=str(claim["stage"]),
                    state=str(claim["state"]),
                    updated_at=str(claim["updated_at"]),
                    problem=problem,
                )
            )
    return touched, sorted(open_claims, key=lambda c: (c.updated_at, c.loan_id))
