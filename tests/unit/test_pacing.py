"""Pacing every SMS of the stack together to the origination identity's rate (issue 11, deliverable 5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dunning.dal.sms import Pacer
from dunning.settings import Settings
from dunning_tools.local.language_extensions import load_template

TEMPLATE: dict[str, Any] = load_template(Path(__file__).resolve().parents[2] / "template.yaml")
RESOURCES = TEMPLATE["Resources"]


def settings(mps: int, senders: int, share: int) -> Settings:
    return Settings.model_validate(
        {
            "LOANS_TABLE": "l",
            "DELIVERIES_TABLE": "d",
            "STATE_TABLE": "s",
            "REMINDER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/q",
            "QUARANTINE_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/quarantine",
            "MAX_PARTS_PER_SECOND": str(mps),
            "SENDER_CONCURRENCY": str(senders),
            "NOTICE_SHARE_PERCENT": str(share),
        }
    )


@given(st.integers(1, 1000), st.integers(2, 100), st.integers(1, 50))
def test_the_senders_and_the_notices_share_the_identitys_rate(mps: int, senders: int, share: int) -> None:
    s = settings(mps, senders, share)
    assert s.sender_parts_per_second > 0 and s.notice_parts_per_second > 0
    assert senders * s.sender_parts_per_second + s.notice_parts_per_second == pytest.approx(mps)


def test_a_notice_share_beyond_half_the_rate_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="NOTICE_SHARE_PERCENT"):
        settings(20, 2, 60)


def test_the_pacer_spaces_parts_at_its_rate() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = Pacer(0.5, clock=lambda: now[0], sleep=sleep)  # a long code's share: one part every 2 s
    pacer.wait(2)  # the first SMS goes at once
    pacer.wait(1)  # the next waits for the 2 parts before it
    pacer.wait(1)
    assert slept == [4.0, 2.0]
    with pytest.raises(ValueError, match="positive"):
        Pacer(0)


def test_the_template_runs_at_most_the_senders_the_pace_is_split_between() -> None:
    env = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert env["MAX_PARTS_PER_SECOND"] == {"Ref": "MaxPartsPerSecond"}
    assert env["SENDER_CONCURRENCY"] == {"Ref": "SenderReservedConcurrency"}
    assert env["NOTICE_SHARE_PERCENT"] == {"Ref": "NoticeSharePercent"}
    sender = RESOURCES["SendRemindersFunction"]["Properties"]
    assert sender["ReservedConcurrentExecutions"] == {"Ref": "SenderReservedConcurrency"}
    assert sender["Events"]["Jobs"]["Properties"]["ScalingConfig"]["MaximumConcurrency"] == {
        "Ref": "SenderReservedConcurrency"
    }
    share = TEMPLATE["Parameters"]["NoticeSharePercent"]
    assert (share["MinValue"], share["MaxValue"]) == (1, 50)  # the settings' bounds


def test_reminders_and_notices_are_paced_to_their_shares() -> None:
    from dunning import service

    s = settings(20, 2, 10).model_copy(
        update={"phone_hash_key": "arn:aws:kms:us-east-1:123456789012:key/k", "event_bus_name": "dunning-bus"}
    )
    assert service.sender(s).pacer.parts_per_second == pytest.approx(9.0)  # 90 % of 20, split by 2 senders
    notices = service.borrower_events(s).notices
    assert notices.pacer is not None and notices.pacer.parts_per_second == pytest.approx(2.0)
