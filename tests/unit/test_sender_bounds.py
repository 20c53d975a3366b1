"""SENDING_HELD_FOR against the template: a live sender's claim is never resolved, a dead one's always is."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from dunning.sender import ROUND_SECONDS, SECONDS_LEFT_AFTER_ROUND, SENDING_HELD_FOR
from dunning_tools.local.language_extensions import load_template

TEMPLATE: dict[str, Any] = load_template(Path(__file__).resolve().parents[2] / "template.yaml")
SENDER = TEMPLATE["Resources"]["SendRemindersFunction"]["Properties"]


def test_a_sender_is_stopped_well_before_its_claim_counts_as_abandoned() -> None:
    timeout = int(SENDER.get("Timeout", TEMPLATE["Globals"]["Function"]["Timeout"]))
    # A sender writes SENDING at or after its invocation starts; Lambda stops it `timeout` later.
    # The rest is the margin for clock skew between hosts.
    assert dt.timedelta(seconds=timeout) + dt.timedelta(seconds=30) <= SENDING_HELD_FOR


def test_a_job_handed_back_for_a_held_claim_comes_back_after_the_bound() -> None:
    # RetryLater -> partial batch failure -> redelivered after the visibility timeout: by then the claim
    # is final or past the bound, so a job is never handed back again for the same holder (no DLQ).
    queue = TEMPLATE["Resources"]["ReminderQueue"]["Properties"]
    assert dt.timedelta(seconds=int(queue["VisibilityTimeout"])) > SENDING_HELD_FOR


def test_a_round_ends_well_inside_the_senders_timeout() -> None:
    # A round starts only with its publishing time plus a margin left, so it never runs into the timeout
    # (a sender stopped mid-round leaves the round's claims SENDING: UNCERTAIN on retry).
    timeout = int(SENDER.get("Timeout", TEMPLATE["Globals"]["Function"]["Timeout"]))
    assert timeout / 2 > ROUND_SECONDS + SECONDS_LEFT_AFTER_ROUND
