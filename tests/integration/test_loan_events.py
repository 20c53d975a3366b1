"""LoanEventsFunction on the moto stack: events from events/*.json change what the planner and sender do."""

from __future__ import annotations

import datetime as dt

import boto3

from dunning_tools.local import LocalStack
from tests.integration.borrower_helpers import (
    LOAN_ID,
    PHONE,
    SHANGHAI,
    event,
    invoke_planner_only,
    local,
    plan_and_send,
    product_state,
    put_loan,
    records,
    send_event,
    sms_sent,
    table_items,
)

PROMISE_PHRASE = "您约定的还款尚未到账"


def test_dispute_holds_every_sms_until_it_is_resolved(local_stack: LocalStack) -> None:
    put_loan(local_stack)
    assert send_event(local_stack, event("loan_event_dispute.json"), local(17, 9))["applied"] is True

    report = plan_and_send(local_stack, local(17))
    assert report["suppressed"] == {"hold_dispute": 1}
    assert sms_sent() == []

    send_event(local_stack, event("loan_event_dispute_resolved.json"), local(18, 9))
    plan_and_send(local_stack, local(18))
    assert len(sms_sent(PHONE)) == 1
    assert [r["reason"] for r in records(local_stack, "overdue_notice") if r["outcome"] == "SUPPRESSED"] == [
        "hold_dispute"
    ]


def test_a_redelivered_or_older_dispute_event_changes_nothing(local_stack: LocalStack) -> None:
    put_loan(local_stack)
    send_event(local_stack, event("loan_event_dispute.json"), local(17, 9))
    send_event(local_stack, event("loan_event_dispute_resolved.json"), local(18, 9))
    # The hold arrives again after its release (EventBridge delivers at least once, in any order).
    again = send_event(local_stack, event("loan_event_dispute.json"), local(18, 9, 30))
    assert again["applied"] is False
    plan_and_send(local_stack, local(18))
    assert len(sms_sent(PHONE)) == 1


def test_broken_promise_pauses_until_the_date_then_the_next_sms_mentions_it(local_stack: LocalStack) -> None:
    put_loan(local_stack)
    send_event(local_stack, event("loan_event_promise_to_pay.json"), local(17, 9))

    assert plan_and_send(local_stack, local(17))["suppressed"] == {"promise_pending": 1}
    plan_and_send(local_stack, local(20))  # the promised date itself: still paused
    assert sms_sent() == []

    plan_and_send(local_stack, local(21))  # the day after, unpaid: reminders resume on their own
    bodies = sms_sent(PHONE)
    assert len(bodies) == 1
    assert PROMISE_PHRASE in bodies[0]


def test_kept_promise_is_not_mentioned_in_later_reminders(local_stack: LocalStack) -> None:
    put_loan(local_stack)
    send_event(local_stack, event("loan_event_promise_to_pay.json"), local(17, 9))
    # The promised 1200 arrives on the 19th; upstream's ledger shows the rest still due.
    put_loan(local_stack, amount_due="1800.00")
    payment = event("loan_event_payment_received.json", amount="1200.00", paid_at="2026-11-19T15:00:00+08:00")
    assert send_event(local_stack, payment, local(19, 15, 1))["confirmation"] == "sent"

    plan_and_send(local_stack, local(21))
    reminders = [b for b in sms_sent(PHONE) if "已收到您的还款" not in b]
    assert len(reminders) == 1
    assert PROMISE_PHRASE not in reminders[0]


def test_grace_period_pauses_until_its_date(local_stack: LocalStack) -> None:
    put_loan(local_stack)
    send_event(local_stack, event("loan_event_grace_period.json"), local(17, 9))
    assert plan_and_send(local_stack, local(25))["suppressed"] == {"grace_period": 1}
    assert sms_sent() == []
    plan_and_send(local_stack, local(26))
    bodies = sms_sent(PHONE)
    assert len(bodies) == 1
    assert PROMISE_PHRASE not in bodies[0]


def test_loan_paid_between_planning_and_sending_is_not_chased(local_stack: LocalStack) -> None:
    put_loan(local_stack)
    assert invoke_planner_only(local_stack, local(17))["jobs_enqueued"] == 1
    put_loan(local_stack, status="PAID")
    plan_and_send(local_stack, local(17, 10, 30))
    assert sms_sent() == []
    assert [r["reason"] for r in records(local_stack, "overdue_notice")] == ["paid"]


def test_payment_confirmed_by_exactly_one_sms_even_when_delivered_twice(local_stack: LocalStack) -> None:
    put_loan(local_stack, amount_due="2500.00", late_fees="12.50")
    payment = event("loan_event_payment_received.json")
    first = send_event(local_stack, payment, local(20, 11, 15))
    second = send_event(local_stack, payment, local(20, 11, 16))

    assert (first["confirmation"], second["confirmation"]) == ("sent", "duplicate")
    bodies = sms_sent(PHONE)
    assert len(bodies) == 1
    assert "¥500.00" in bodies[0] and "¥2,512.50" in bodies[0]
    confirmations = records(local_stack, "payment_confirmation")
    assert [(r["outcome"], r["loan_id"]) for r in confirmations] == [("SENT", LOAN_ID)]
    assert confirmations[0]["body"] == bodies[0]


def test_payment_of_a_paid_off_loan_shows_nothing_remaining(local_stack: LocalStack) -> None:
    put_loan(local_stack, status="PAID")
    send_event(local_stack, event("loan_event_payment_received.json"), local(20, 11, 15))
    assert "剩余应还¥0.00" in sms_sent(PHONE)[0]


def test_payment_confirmation_respects_opt_out(local_stack: LocalStack) -> None:
    put_loan(local_stack)
    send_event(local_stack, event("loan_event_opt_out.json"), local(17, 9))
    result = send_event(local_stack, event("loan_event_payment_received.json"), local(20, 11, 15))
    assert result["confirmation"] == "opted_out"
    assert sms_sent() == []
    assert [r["reason"] for r in records(local_stack, "payment_confirmation")] == ["opted_out"]


def test_opt_out_event_stops_reminders_and_opt_in_allows_them_again(local_stack: LocalStack) -> None:
    put_loan(local_stack)
    send_event(local_stack, event("loan_event_opt_out.json"), local(17, 9))
    send_event(local_stack, event("loan_event_opt_out.json"), local(17, 9, 5))  # redelivered
    assert plan_and_send(local_stack, local(17))["suppressed"] == {"opted_out": 1}
    assert sms_sent() == []

    send_event(local_stack, event("loan_event_opt_in.json"), local(19, 9))
    plan_and_send(local_stack, local(19))
    assert len(sms_sent(PHONE)) == 1


def test_repayment_plan_is_stored_on_the_loan_control(local_stack: LocalStack) -> None:
    put_loan(local_stack)
    assert send_event(local_stack, event("loan_event_repayment_plan.json"), local(17, 11))["applied"] is True
    control = boto3.client("dynamodb").get_item(
        TableName=local_stack.physical_id("StateTable"), Key={"pk": {"S": f"LOAN#{LOAN_ID}"}, "sk": {"S": "CONTROL"}}
    )["Item"]
    assert control["plan_due_date"] == {"S": "2026-11-30"}
    assert [i["M"]["amount"]["N"] for i in control["plan"]["L"]] == ["400.00", "400.00", "400.00"]


def test_malformed_events_are_rejected_with_a_clear_error_and_change_nothing(local_stack: LocalStack) -> None:
    put_loan(local_stack)
    bad = send_event(local_stack, event("loan_event_malformed.json"), local(20, 11))
    assert bad["status"] == "rejected"
    assert "detail.amount" in bad["error"] and "detail.paid_at" in bad["error"]

    unknown = event("loan_event_dispute.json")
    unknown["detail-type"] = "LoanRestructured"
    rejected = send_event(local_stack, unknown, local(20, 11))
    assert rejected["status"] == "rejected"
    # The known types are named; the unknown value is not quoted (a reason never carries input).
    assert "PaymentReceived" in rejected["error"] and "LoanRestructured" not in rejected["error"]

    float_amount = event("loan_event_payment_received.json", amount=500.1)
    assert "not a float" in send_event(local_stack, float_amount, local(20, 11))["error"]
    empty_plan = event("loan_event_repayment_plan.json", instalments=[])
    assert "instalments" in send_event(local_stack, empty_plan, local(20, 11))["error"]
    bad_phone = event("loan_event_opt_out.json", phone="13800138000")
    assert "detail.phone" in send_event(local_stack, bad_phone, local(20, 11))["error"]

    index = [i for i in table_items(local_stack, "StateTable") if i["sk"]["S"] == "CONTROL"]
    assert product_state(local_stack) == []  # the loan's ladder index item, untouched
    assert all("dispute_hold" not in i and "plan" not in i for i in index)
    assert table_items(local_stack, "DeliveriesTable") == []
    assert sms_sent() == []


def test_reminders_follow_an_agreed_repayment_plan(local_stack: LocalStack) -> None:
    # 20 days overdue on the 21st; the plan splits the 3000 due into 1200 on Dec 1 and 1800 on Dec 31.
    put_loan(local_stack, due_date="2026-11-01")
    plan = event(
        "loan_event_repayment_plan.json",
        instalments=[{"due_date": "2026-12-01", "amount": "1200.00"}, {"due_date": "2026-12-31", "amount": "1800.00"}],
    )
    assert send_event(local_stack, plan, local(21, 9))["applied"] is True

    first = plan_and_send(local_stack, local(21))
    assert first["loans_read"] == 0  # the index chases the first instalment (Dec 1), not the old cycle
    for day in range(22, 28):
        plan_and_send(local_stack, local(day))
    assert sms_sent() == []

    plan_and_send(local_stack, local(28))  # three days before the first instalment
    for day in (1, 2):  # the upstream due date has left the window: the index item chases the instalment
        assert plan_and_send(local_stack, dt.datetime(2026, 12, day, 10, tzinfo=SHANGHAI))["lines_enqueued"] == 1
    bodies = sms_sent(PHONE)
    assert len(bodies) == 3
    assert all("¥1,200.00" in body for body in bodies)  # the instalment, no late fees: the plan reset them
    assert all("2026年12月1日" in body for body in bodies[:2])
    assert "逾期1天" in bodies[2]
    assert "¥3,000.00" not in "".join(bodies)
    sent = [r for r in records(local_stack) if r["outcome"] == "SENT"]
    assert [(r["cycle"], r["stage"]) for r in sent] == [
        ("2026-12-01", "courtesy"),
        ("2026-12-01", "due_today"),
        ("2026-12-01", "overdue_notice"),
    ]
    assert all(r["cycle"] == "2026-12-01" for r in records(local_stack))
