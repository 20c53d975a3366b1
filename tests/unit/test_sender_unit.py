"""The sender through its public `Sender.send_batch`, on in-memory stores (tests/fakes_send.py, tests/fakes_sms.py).

What it sends, to whom, in how many SMS, and why not: each test reads the outcome, the SMS the fake gateway
sent, and the claims and records the in-memory transactions left. The fake applies the sender's own
transaction entries (claims, caps, opt-out and snapshot checks, records) with their conditions, so a refused
unit takes the path it takes on DynamoDB; tests/integration/test_fakes_agree.py checks the fake against moto.
Races and faults stay in the moto tier: tests/integration/test_send_path_batched.py, test_sender_races.py,
test_faults.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from dunning import ladder
from dunning.dal.aws import from_item, to_item
from dunning.dal.sms import PublishRejected, PublishUncertain
from dunning.dal.snapshots import snapshot_from_item
from dunning.dal.state import control_key
from dunning.models.jobs import JobLine, SendJob
from dunning.models.policy import load_policy_file
from dunning.models.state import ClaimState, LoanControl
from dunning.models.timestamps import utc_iso
from dunning.sender import Sender, SendOutcome
from tests.fakes_send import FakeLoansTable, FakeSendDeliveries, FakeSendState, FakeTables
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


@dataclass
class Run:
    outcome: SendOutcome | Exception
    sms: FakeSms
    state: FakeSendState
    deliveries: FakeSendDeliveries
    sleeps: list[float]

    def records(self, loan_id: str) -> list[dict[str, Any]]:
        return self.deliveries.records().get(loan_id, [])

    def claim(self, job_line: JobLine) -> dict[str, Any]:
        found = self.state.claim((job_line.loan_id, job_line.cycle, job_line.stage))
        assert found is not None
        return found


def send(
    *lines: JobLine,
    now: dt.datetime = NOW,
    sms: FakeSms | None = None,
    opted_out: str | None = None,
    claims: ClaimState = ClaimState.PLANNED,
) -> Run:
    """One job of these lines through `Sender.send_batch`, on in-memory stores holding their PLANNED claims."""
    tables = FakeTables()
    state, deliveries = FakeSendState(tables), FakeSendDeliveries(tables)
    for job_line in lines:
        assert job_line.snapshot is not None
        tables.put("LoansTable", {"loan_id": job_line.loan_id, **from_item(job_line.snapshot.loan)})
        if job_line.snapshot.control:
            tables.put("StateTable", {**from_item(control_key(job_line.loan_id)), **job_line.snapshot.control})
        state.settle((job_line.loan_id, job_line.cycle, job_line.stage), "B-1", claims, now)
    if opted_out:
        tables.put("StateTable", {"pk": state.phone_partition(opted_out), "sk": "OPTOUT"})
    gateway, sleeps = sms or FakeSms(), []
    sender = Sender(
        FakeLoansTable(),
        state,
        deliveries,
        sms=gateway,
        pacer=FakePacer(),
        policy=POLICY,
        retention_days=400,
        sleep=sleeps.append,
        write_units=tables.write_units,
    )
    (outcome,) = sender.send_batch([SendJob(borrower_id="B-1", lines=lines, planned_at=NOW)], now)
    return Run(outcome, gateway, state, deliveries, sleeps)


def test_a_due_line_becomes_one_sms_stating_the_amount_fees_pay_by_and_reference() -> None:
    job_line = line("L-1", 6, "follow_up_6")

    run = send(job_line)

    assert isinstance(run.outcome, SendOutcome) and (run.outcome.sent, run.outcome.messages) == (1, 1)
    ((phone, body, message_id),) = run.sms.sent
    (record,) = run.records("L-1")
    assert phone == "+8613800138000" and record["body"] == body and record["message_id"] == message_id
    assert record["outcome"] == "SENT" and record["late_fees"] == Decimal("3.00")  # 0.05 % a day for 6 days
    assert "CN¥1,003.00" in body and "Dec 15, 2026" in body  # pay by: today + 3
    assert f"ref {record['reference']}" in body and body.startswith("XinFei: Hi Ann Lee,")
    assert (record["encoding"], record["locale"]) == ("GSM-7", "en-US")
    claim = run.claim(job_line)
    assert (claim["state"], claim["message_id"]) == ("SENT", message_id)


def test_a_borrowers_overdue_loans_share_one_sms_and_a_courtesy_reminder_waits_for_tomorrow() -> None:
    courtesy = line("L-3", -3, "courtesy")

    run = send(line("L-1", 1, "overdue_notice"), line("L-2", 3, "follow_up_3"), courtesy)

    assert isinstance(run.outcome, SendOutcome)
    ((_, body, _),) = run.sms.sent
    assert "2 of your loan payments are overdue" in body and "CN¥2,002.00" in body
    assert (run.records("L-2")[0]["late_fees"], run.records("L-1")[0]["late_fees"]) == (
        Decimal("1.50"),
        Decimal("0.50"),
    )
    assert run.outcome.sent == 2 and run.outcome.deferred == {"cap_daily": 1}
    assert (run.claim(courtesy)["state"], run.claim(courtesy)["retry_after"]) == ("DEFERRED", utc_iso(MIDNIGHT))
    assert run.state.wakes == 1  # the planner is told a retry time was set


def test_a_loan_on_another_number_is_not_in_todays_sms() -> None:
    other = line("L-2", 1, "overdue_notice", phone="+8613900139000")

    run = send(line("L-1", 3, "follow_up_3"), other)

    assert [phone for phone, _, _ in run.sms.sent] == ["+8613800138000"]
    assert isinstance(run.outcome, SendOutcome) and run.outcome.deferred == {"cap_daily": 1}
    assert run.claim(other)["retry_after"] == utc_iso(MIDNIGHT)


@pytest.mark.parametrize(
    ("job_line", "reason", "state"),
    [
        (line("L-1", 6, "follow_up_6", status="PAID"), "paid", "SUPPRESSED"),
        (line("L-1", 6, "follow_up_6", status="WRITTEN_OFF"), "written_off", "SUPPRESSED"),
        (line("L-1", 6, "follow_up_3"), "stage_superseded", "SUPPRESSED"),
        (line("L-1", 6, "follow_up_6", control={"dispute_hold": True}), "hold_dispute", "DEFERRED"),
        (line("L-1", 6, "follow_up_6", amount_due="9E+125"), "invalid_amount", "SUPPRESSED"),
        (line("L-1", 6, "follow_up_6", phone="12345"), "invalid_phone", "SUPPRESSED"),
    ],
    ids=["paid", "written_off", "stage_superseded", "dispute", "absurd_amount", "bad_phone"],
)
def test_a_line_that_may_not_go_out_is_settled_with_its_reason_and_no_sms(
    job_line: JobLine, reason: str, state: str
) -> None:
    run = send(job_line)

    assert run.sms.calls == 0
    ((record,), claim) = run.records("L-1"), run.claim(job_line)
    assert (record["outcome"], record["reason"]) == ("SUPPRESSED", reason)  # a SUPPRESSED record goes with it
    assert (claim["state"], claim["reason"]) == (state, reason)


def test_a_line_arriving_outside_the_window_is_deferred_quietly_to_the_window_open() -> None:
    night = dt.datetime(2026, 12, 11, 19, 0, tzinfo=dt.UTC)  # 03:00 in Shanghai, the same business day
    job_line = line("L-1", 6, "follow_up_6")

    run = send(job_line, now=night)

    assert run.sms.calls == 0 and run.records("L-1") == []
    assert isinstance(run.outcome, SendOutcome) and run.outcome.deferred == {"outside_window": 1}
    assert run.claim(job_line)["retry_after"] == utc_iso(dt.datetime(2026, 12, 12, 1, 0, tzinfo=dt.UTC))


def test_a_broken_promise_is_mentioned_in_the_next_reminder() -> None:
    promised = TODAY - dt.timedelta(days=2)
    broken = send(line("L-1", 6, "follow_up_6", control={"promised_date": promised.isoformat()}))
    none_made = send(line("L-1", 6, "follow_up_6"))

    assert "Your promised payment has not arrived." in broken.sms.sent[0][1]
    assert "promise" not in none_made.sms.sent[0][1]


def test_an_opted_out_number_gets_no_sms_and_its_line_is_suppressed() -> None:
    job_line = line("L-1", 6, "follow_up_6")

    run = send(job_line, opted_out="+8613800138000")

    assert run.sms.calls == 0
    assert isinstance(run.outcome, SendOutcome) and run.outcome.suppressed == {"opted_out": 1}
    assert run.claim(job_line)["state"] == "SUPPRESSED"


def test_a_line_whose_claim_is_already_sent_is_not_sent_again() -> None:
    run = send(line("L-1", 6, "follow_up_6"), claims=ClaimState.SENT)

    assert run.sms.calls == 0 and run.records("L-1") == []
    assert isinstance(run.outcome, SendOutcome) and run.outcome.sent == 0


def test_a_throttled_publish_is_retried_paced_with_backoff_and_a_refusal_is_not() -> None:
    throttled = send(line("L-1", 6, "follow_up_6"), sms=FakeSms([PublishRejected("Throttling", retryable=True)] * 2))

    assert throttled.sms.calls == 3 and len(throttled.sms.sent) == 1 and throttled.sleeps == [0.2, 0.4]
    assert throttled.records("L-1")[0]["outcome"] == "SENT"
    job_line = line("L-1", 6, "follow_up_6")
    refused = send(job_line, sms=FakeSms([PublishRejected("InvalidParameter", retryable=False)]))
    assert refused.sms.calls == 1 and refused.sms.sent == []
    assert refused.records("L-1")[0]["outcome"] == "FAILED" and refused.claim(job_line)["state"] == "SUPPRESSED"


def test_a_lost_answer_is_never_published_again_and_is_recorded_uncertain() -> None:
    job_line = line("L-1", 6, "follow_up_6")

    run = send(job_line, sms=FakeSms([PublishUncertain("timeout")]))

    assert run.sms.calls == 1
    assert isinstance(run.outcome, SendOutcome) and run.outcome.uncertain == 1
    assert run.records("L-1")[0]["outcome"] == "UNCERTAIN" and run.claim(job_line)["state"] == "UNCERTAIN"
