"""The policy's version on the audit trail: a content hash of the validated document."""

from __future__ import annotations

import datetime as dt

import pytest

from dunning.dal.deliveries import DeliveriesRepository
from dunning.models.delivery import DeliveryRecord, Outcome
from dunning.models.policy import DEFAULT_POLICY_PATH, parse_policy

TEXT = DEFAULT_POLICY_PATH.read_text(encoding="utf-8")
NOW = dt.datetime(2026, 11, 17, 2, 0, tzinfo=dt.UTC)


def test_the_same_policy_written_differently_has_the_same_version() -> None:
    bundled = parse_policy(TEXT).digest
    assert bundled.startswith("sha256:") and len(bundled) == len("sha256:") + 16
    reworded = "# a comment the lender added\n" + TEXT.replace("pay_by_days: 3", "pay_by_days:    3")
    assert reworded != TEXT
    assert parse_policy(reworded).digest == bundled


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("pay_by_days: 3", "pay_by_days: 4"),
        ("max_pause_days: 90", "max_pause_days: 60"),
    ],
)
def test_any_change_that_can_change_a_decision_changes_the_version(old: str, new: str) -> None:
    assert old in TEXT
    assert parse_policy(TEXT.replace(old, new)).digest != parse_policy(TEXT).digest


def _record() -> DeliveryRecord:
    return DeliveryRecord(
        loan_id="L-1",
        record_id="2026-11-17T02:00:00Z#2026-11-16#overdue_notice",
        cycle="2026-11-16",
        stage="overdue_notice",
        outcome=Outcome.SUPPRESSED,
        reason="opted_out",
        created_at=NOW,
        updated_at=NOW,
        expires_at=1,
    )


def test_the_repository_stamps_the_version_on_what_it_writes_and_keeps_one_already_named() -> None:
    stamped = DeliveriesRepository("table", "sha256:0123456789abcdef").put_item_request(_record())
    assert stamped["Put"]["Item"]["policy_version"] == {"S": "sha256:0123456789abcdef"}
    named = _record().model_copy(update={"policy_version": "sha256:fedcba9876543210"})
    kept = DeliveriesRepository("table", "sha256:0123456789abcdef").put_item_request(named)
    assert kept["Put"]["Item"]["policy_version"] == {"S": "sha256:fedcba9876543210"}
    assert "policy_version" not in DeliveriesRepository("table").put_item_request(_record())["Put"]["Item"]
