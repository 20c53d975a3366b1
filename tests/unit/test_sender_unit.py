"""The sender's decisions, without the transaction store: what it sends, to whom, in how many SMS, and why not.

`Sender._prepare` decides a job's lines from the loans the planner read (their snapshots) and composes the
SMS, before any write: it reads nothing and calls no AWS (the repositories only build the transaction
entries it will write). Publishing is checked against the in-memory gateway (tests/fakes_sms.py). The
transactions themselves (claims, caps, opt-out and snapshot checks, records) are the moto tier's:
tests/integration/test_send_path_batched.py, test_sender_races.py, test_faults.py.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from dunning import ladder
from dunning.dal.aws import to_item
from dunning.dal.deliveries import DeliveriesRepository
from dunning.dal.loans import LoansRepository
from dunning.dal.sms import PublishRejected, PublishUncertain
from dunning.dal.snapshots import snapshot_from_item
from dunning.dal.state import StateRepository
from dunning.models.jobs import JobLine, SendJob
from dunning.models.policy import load_policy_file
from dunning.models.state import LoanControl
from dunning.sender import Sender, _Job, _Settle, _Sms
from tests.fakes_sms import FakePacer, FakeSms

POLICY = load_policy_file()
NOW = dt.datetime(2026, 12, 12, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai
TODAY = ladder.business_date(NOW, POLICY)
MIDNIGHT = dt.datetime(2026, 12, 12, 16, 0, tzinfo=dt.UTC)  # the borrower's next local day


def line(loan_id: str, days_past_due: int, stage: str, control: dict[str, Any] | None = None, **item: Any) -> JobLine:
    """A job line as the planner enqueues it: the loan as it read it (its snapshot)."""
    cycle = (TODAY - dt.timedelta(days=days_past_due)).isoformat()
    upstream = {
        "loan_id": loan_id,
        "borrower_id": "B-1",
        "borrower_name": "Ann Lee",
        "phone": "+8613800138000",
        "status": "OPEN",
        "due_date": cycle,
        "amount_due": Decimal("1000.00"),
        "currency": "CNY",
        "locale": "en-US",
        **item,
    }
    held = LoanControl.model_validate({"loan_id": loan_id, **control}) if control else None
    return JobLine(loan_id=loan_id, cycle=cycle, stage=stage, snapshot=snapshot_from_item(to_item(upstream), held))


def sender(sms: FakeSms | None = None, pacer: FakePacer | None = None, sleeps: list[float] | None = None) -> Sender:
    return Sender(
        LoansRepository("LoansTable"),
        StateRepository("StateTable"),
        DeliveriesRepository("DeliveriesTable"),
        sms=sms or FakeSms(),
        pacer=pacer or FakePacer(),
        policy=POLICY,
        retention_days=400,
        sleep=(sleeps if sleeps is not None else []).append,
    )


def decide(*lines: JobLine, now: dt.datetime = NOW) -> tuple[list[_Sms], dict[str, _Settle]]:
    job = SendJob(borrower_id="B-1", lines=lines, planned_at=NOW)
    work = sender()._prepare(_Job(job), job.lines, {}, now)
    return [w for w in work if isinstance(w, _Sms)], {w.key[0]: w for w in work if isinstance(w, _Settle)}


def test_a_due_line_becomes_one_sms_stating_the_amount_fees_pay_by_and_reference() -> None:
    (sms,), settled = decide(line("L-1", 6, "follow_up_6"))

    assert settled == {}
    assert [e.line.loan_id for e in sms.group] == ["L-1"]
    message = sms.message
    assert message.late_fees == {"L-1": Decimal("3.00")}  # 0.05 % a day for 6 days
    assert "CN¥1,003.00" in message.body and "Dec 15, 2026" in message.body  # pay by: today + 3
    assert f"ref {message.reference}" in message.body and message.body.startswith("XinFei: Hi Ann Lee,")
    assert (message.encoding, message.segments, message.locale) == ("GSM-7", sms.parts, "en-US")
    assert sms.day == TODAY and sms.tomorrow == MIDNIGHT


def test_a_borrowers_overdue_loans_share_one_sms_and_a_courtesy_reminder_waits_for_tomorrow() -> None:
    (sms,), settled = decide(
        line("L-1", 1, "overdue_notice"), line("L-2", 3, "follow_up_3"), line("L-3", -3, "courtesy")
    )

    assert [e.line.loan_id for e in sms.group] == ["L-2", "L-1"]  # the most overdue leads
    assert "2 of your loan payments are overdue" in sms.message.body and "CN¥2,002.00" in sms.message.body
    assert sms.message.late_fees == {"L-2": Decimal("1.50"), "L-1": Decimal("0.50")}
    assert (settled["L-3"].reason, settled["L-3"].retry_after) == ("cap_daily", MIDNIGHT)


def test_a_loan_on_another_number_is_not_in_todays_sms() -> None:
    (sms,), settled = decide(line("L-1", 3, "follow_up_3"), line("L-2", 1, "overdue_notice", phone="+8613900139000"))

    assert [e.line.loan_id for e in sms.group] == ["L-1"]
    assert (settled["L-2"].reason, settled["L-2"].retry_after) == ("cap_daily", MIDNIGHT)


@pytest.mark.parametrize(
    ("job_line", "reason", "retry_after"),
    [
        (line("L-1", 6, "follow_up_6", status="PAID"), "paid", None),
        (line("L-1", 6, "follow_up_6", status="WRITTEN_OFF"), "written_off", None),
        (line("L-1", 6, "follow_up_3"), "stage_superseded", None),
        (line("L-1", 6, "follow_up_6", control={"dispute_hold": True}), "hold_dispute", MIDNIGHT),
        (line("L-1", 6, "follow_up_6", amount_due="9E+125"), "invalid_amount", None),
        (line("L-1", 6, "follow_up_6", phone="12345"), "invalid_phone", None),
    ],
    ids=["paid", "written_off", "stage_superseded", "dispute", "absurd_amount", "bad_phone"],
)
def test_a_line_that_may_not_go_out_is_settled_with_its_reason_and_no_sms(
    job_line: JobLine, reason: str, retry_after: dt.datetime | None
) -> None:
    smses, settled = decide(job_line)

    assert smses == []
    assert (settled["L-1"].reason, settled["L-1"].retry_after) == (reason, retry_after)
    assert not settled["L-1"].quiet  # a SUPPRESSED record goes with it


def test_a_line_arriving_outside_the_window_is_deferred_quietly_to_the_window_open() -> None:
    night = dt.datetime(2026, 12, 11, 19, 0, tzinfo=dt.UTC)  # 03:00 in Shanghai, the same business day

    smses, settled = decide(line("L-1", 6, "follow_up_6"), now=night)

    assert smses == []
    assert settled["L-1"].reason == "outside_window" and settled["L-1"].quiet
    assert settled["L-1"].retry_after == dt.datetime(2026, 12, 12, 1, 0, tzinfo=dt.UTC)


def test_a_broken_promise_is_mentioned_in_the_next_reminder() -> None:
    promised = TODAY - dt.timedelta(days=2)
    (broken,), _ = decide(line("L-1", 6, "follow_up_6", control={"promised_date": promised.isoformat()}))
    (none_made,), _ = decide(line("L-1", 6, "follow_up_6"))

    assert "Your promised payment has not arrived." in broken.message.body
    assert "promise" not in none_made.message.body


def test_a_throttled_publish_is_retried_paced_with_backoff_and_a_refusal_is_not() -> None:
    sms, pacer, sleeps = FakeSms([PublishRejected("Throttling", retryable=True)] * 2), FakePacer(), []

    message_id = sender(sms, pacer, sleeps)._publish("+8613800138000", "body", 2)

    assert message_id == "msg-1" and sms.calls == 3
    assert pacer.waited == [2, 2, 2] and sleeps == [0.2, 0.4]
    refused = FakeSms([PublishRejected("InvalidParameter", retryable=False)])
    with pytest.raises(PublishRejected):
        sender(refused)._publish("+8613800138000", "body", 1)
    assert refused.calls == 1 and refused.sent == []


def test_a_lost_answer_is_never_published_again() -> None:
    sms = FakeSms([PublishUncertain("timeout")])

    with pytest.raises(PublishUncertain):
        sender(sms)._publish("+8613800138000", "body", 1)

    assert sms.calls == 1
