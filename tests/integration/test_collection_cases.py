"""Collection cases on the moto stack: unreachable loans, broken promises, closing, and `dunning cases`."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import boto3
import pytest

from dunning_tools import cli
from dunning_tools.local import LocalStack, drain_stream
from tests.integration.after_sms_helpers import put_loan, records, state_item
from tests.integration.borrower_helpers import event, send_event
from tests.integration.test_bureau_report import file_bytes, lines, report
from tests.integration.test_escalate import RUN, captured, cases_queue, days_ago, escalate

__all__ = ["cases_queue"]  # the fixture, shared with test_escalate


def kinds(url: str) -> list[tuple[str, str, str]]:
    return [(e["detail-type"], e["detail"]["loan_id"], e["detail"]["reason"]) for e in captured(url)]


def test_an_unreachable_loan_gets_one_case_on_its_first_overdue_day_and_never_again(
    local_stack: LocalStack, cases_queue: str
) -> None:
    put_loan(local_stack, "L-NOPHONE", days_ago(1), phone=None)
    put_loan(local_stack, "L-BADPHONE", days_ago(0), phone="12345")  # due today: not overdue yet
    put_loan(local_stack, "L-BROKEN", days_ago(1), phone="12345", currency="ZZZ")  # broken data, not unreachable

    reports = [escalate(local_stack, RUN + dt.timedelta(days=n)) for n in (0, 0, 1)]

    # L-BADPHONE on its first overdue day, the next one.
    assert [r["opened"] for r in reports] == [{"unreachable": 1}, {}, {"unreachable": 1}]
    # L-BROKEN is recorded when written (LoanChangesFunction) and never in the ladder index escalation reads.
    assert reports[0]["invalid"] == {} and reports[2]["already_open"] == 1
    events = captured(cases_queue)
    assert sorted((e["detail"]["loan_id"], e["detail"]["reason"], e["detail"]["days_past_due"]) for e in events) == [
        ("L-BADPHONE", "unreachable", 1),
        ("L-NOPHONE", "unreachable", 1),
    ]
    nophone = next(e["detail"] for e in events if e["detail"]["loan_id"] == "L-NOPHONE")
    assert (nophone["amount_due"], nophone["reminders_sent"], nophone["last_outcome"]) == ("3000.00", 0, None)
    # A case, not a set-aside: escalation writes no SUPPRESSED record for the unreachable loans.
    # (LoanChangesFunction recorded each bad item once, at intake, when it was written.)
    for loan_id, reason in (
        ("L-NOPHONE", "missing_phone"),
        ("L-BADPHONE", "invalid_phone"),
        ("L-BROKEN", "invalid_phone"),
    ):
        assert [(r["stage"], r["reason"]) for r in records(local_stack, loan_id)] == [("intake", reason)], loan_id


def test_two_broken_promises_in_a_cycle_open_a_case(local_stack: LocalStack, cases_queue: str) -> None:
    put_loan(local_stack, "L-P", days_ago(10))  # due 2026-12-02

    def promise(made: dt.datetime, promised: str) -> None:
        loan_event = event("loan_event_promise_to_pay.json", loan_id="L-P", promised_date=promised)
        loan_event["time"] = made.strftime("%Y-%m-%dT%H:%M:%SZ")
        send_event(local_stack, loan_event, made)

    promise(dt.datetime(2026, 12, 3, 2, 30, tzinfo=dt.UTC), "2026-12-05")
    after_first = escalate(local_stack, dt.datetime(2026, 12, 6, 6, 30, tzinfo=dt.UTC))
    assert after_first["opened"] == {}  # one broken promise: the SMS go on
    control = state_item(local_stack, "LOAN#L-P", "CONTROL")
    assert control is not None and control["broken_promises"] == {"2026-12-05"}

    promise(dt.datetime(2026, 12, 7, 2, 30, tzinfo=dt.UTC), "2026-12-09")
    assert escalate(local_stack, dt.datetime(2026, 12, 8, 6, 30, tzinfo=dt.UTC))["held"] == {"promise_pending": 1}
    assert escalate(local_stack)["opened"] == {"broken_promises": 1}
    assert escalate(local_stack)["already_open"] == 1
    assert kinds(cases_queue) == [("CollectionCaseOpened", "L-P", "broken_promises")]


def test_a_case_closes_once_when_upstream_marks_the_loan_paid_whatever_the_redeliveries(
    local_stack: LocalStack, cases_queue: str
) -> None:
    put_loan(local_stack, "L-35", days_ago(35))
    put_loan(local_stack, "L-U", days_ago(3), phone=None)
    put_loan(local_stack, "L-OPEN", days_ago(40))
    assert escalate(local_stack)["opened"] == {"ladder_exhausted": 2, "unreachable": 1}
    captured(cases_queue)
    drain_stream(local_stack)  # the OPEN writes: nothing closes
    assert captured(cases_queue) == []

    put_loan(local_stack, "L-35", days_ago(35), status="PAID", amount_due="0.00")
    put_loan(local_stack, "L-U", days_ago(3), phone=None, status="WRITTEN_OFF")  # still without a phone
    put_loan(local_stack, "L-OPEN", days_ago(40), amount_due="100.00")  # a part payment: the case stays open
    drain_stream(local_stack)
    local_stack.stream_positions.clear()  # the poller lost its checkpoint: every record comes again
    drain_stream(local_stack)

    closed = [e for e in captured(cases_queue) if e["detail-type"] == "CollectionCaseClosed"]
    assert sorted((e["detail"]["loan_id"], e["detail"]["reason"]) for e in closed) == [
        ("L-35", "paid"),
        ("L-U", "written_off"),
    ]
    detail = next(e["detail"] for e in closed if e["detail"]["loan_id"] == "L-35")
    assert set(detail) == {"loan_id", "borrower_id", "cycle", "reason", "closed_at"}
    assert (detail["borrower_id"], detail["cycle"]) == ("B-L-35", days_ago(35).isoformat())
    case = state_item(local_stack, "LOAN#L-35", f"CASE#{days_ago(35).isoformat()}")
    assert case is not None and (case["close_reason"], case["close_published"]) == ("paid", True)
    still_open = state_item(local_stack, "LOAN#L-OPEN", f"CASE#{days_ago(40).isoformat()}")
    assert still_open is not None and "closed_at" not in still_open


def test_a_payment_that_leaves_the_loan_paid_closes_its_case_and_the_stream_does_not_close_it_again(
    local_stack: LocalStack, cases_queue: str
) -> None:
    put_loan(local_stack, "L-40", days_ago(40))
    escalate(local_stack)
    put_loan(local_stack, "L-40", days_ago(40), status="PAID", amount_due="0.00")
    payment = event(
        "loan_event_payment_received.json", loan_id="L-40", amount="3000.00", paid_at="2026-12-12T07:00:00Z"
    )
    send_event(local_stack, payment, RUN + dt.timedelta(hours=1))
    send_event(local_stack, payment, RUN + dt.timedelta(hours=1))  # redelivered
    drain_stream(local_stack)

    assert kinds(cases_queue) == [
        ("CollectionCaseOpened", "L-40", "ladder_exhausted"),
        ("CollectionCaseClosed", "L-40", "paid"),
    ]


def test_an_unannounced_case_is_announced_before_it_closes(local_stack: LocalStack, cases_queue: str) -> None:
    """Escalation died after recording the case, and the loan was paid before its next run."""
    cycle = days_ago(33).isoformat()
    stored = {"loan_id": "L-33", "reason": "ladder_exhausted", "opened_at": "2026-12-11T06:30:00.000Z"}
    boto3.client("dynamodb").put_item(
        TableName=local_stack.physical_id("StateTable"),
        Item={
            "pk": {"S": "LOAN#L-33"},
            "sk": {"S": f"CASE#{cycle}"},
            "loan_id": {"S": "L-33"},
            "borrower_id": {"S": "B-L-33"},
            "cycle": {"S": cycle},
            "detail": {"S": json.dumps(stored)},
            "published": {"BOOL": False},
        },
    )
    put_loan(local_stack, "L-33", days_ago(33), status="PAID", amount_due="0.00")  # LoansTable's stream drained
    drain_stream(local_stack)  # nothing more: each change is applied once

    assert [(e["detail-type"], e["detail"]["reason"]) for e in captured(cases_queue)] == [
        ("CollectionCaseOpened", "ladder_exhausted"),
        ("CollectionCaseClosed", "paid"),
    ]


# ---------------------------------------------------------------- dunning cases


def cases_cli(stack: LocalStack, capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[int, str, str]:
    code = cli.main(["cases", "--stack-name", stack.name, *flags])
    out, err = capsys.readouterr()
    return code, out, err


def test_dunning_cases_lists_open_and_closed_cases(
    local_stack: LocalStack, cases_queue: str, capsys: pytest.CaptureFixture[str]
) -> None:
    put_loan(local_stack, "L-35", days_ago(35))
    put_loan(local_stack, "L-U", days_ago(2), phone="12345")
    escalate(local_stack)
    put_loan(local_stack, "L-35", days_ago(35), status="CLOSED")
    drain_stream(local_stack)
    capsys.readouterr()

    code, out, err = cases_cli(local_stack, capsys)
    rows: list[dict[str, Any]] = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and err.strip() == "2 case(s)"
    by_loan = {row["loan_id"]: row for row in rows}
    assert by_loan["L-35"] | {"closed_at": ""} == {
        "opened_at": "2026-12-12T06:30:00.000Z",
        "loan_id": "L-35",
        "borrower_id": "B-L-35",
        "cycle": days_ago(35).isoformat(),
        "reason": "ladder_exhausted",
        "days_past_due": 35,
        "amount_due": "3000.00",
        "late_fees": by_loan["L-35"]["late_fees"],
        "currency": "CNY",
        "status": "closed",
        "closed_reason": "settled",
        "closed_at": "",
    }
    assert (by_loan["L-U"]["status"], by_loan["L-U"]["reason"], by_loan["L-U"]["days_past_due"]) == (
        "open",
        "unreachable",
        2,
    )

    code, out, _ = cases_cli(local_stack, capsys, "--open")
    assert code == 0 and [json.loads(line)["loan_id"] for line in out.splitlines()] == ["L-U"]

    code, out, _ = cases_cli(local_stack, capsys, "--open", "--csv")
    header, row = out.splitlines()
    assert header.startswith("opened_at,loan_id,borrower_id,cycle,reason,days_past_due,amount_due")
    assert row.split(",")[1:6] == ["L-U", "B-L-U", days_ago(2).isoformat(), "unreachable", "2"]


def test_dunning_cases_names_what_is_wrong(local_stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["cases", "--stack-name", "no-such-stack"])
    assert code == 2 and "dunning cases: cannot read the cases" in capsys.readouterr().err
    code = cli.main(["cases", "--state-table", "no-such-table"])
    assert code == 2 and "dunning cases: cannot read the cases" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["cases", "--stack-name", ""])
    assert "name the tables: --stack-name" in capsys.readouterr().err


# ---------------------------------------------------------------- bureau codes


def test_the_bureau_file_flags_a_disputed_loan_and_a_kept_plan_and_reruns_byte_identical(
    local_stack: LocalStack,
) -> None:
    for loan_id in ("L-DISPUTED", "L-PLAN", "L-PLAIN"):
        put_loan(local_stack, loan_id, days_ago(45))
    dispute = event("loan_event_dispute.json", loan_id="L-DISPUTED")
    send_event(local_stack, dispute, RUN - dt.timedelta(days=1))
    plan = event(
        "loan_event_repayment_plan.json",
        loan_id="L-PLAN",
        instalments=[{"due_date": "2026-12-20", "amount": "1000.00"}, {"due_date": "2027-01-20", "amount": "2000.00"}],
    )
    send_event(local_stack, plan, RUN - dt.timedelta(days=1))

    report(local_stack)
    first = file_bytes(local_stack, RUN.date())
    report(local_stack)

    assert file_bytes(local_stack, RUN.date()) == first
    by_loan = {line["loan_id"]: line for line in lines(local_stack, RUN.date())}
    assert by_loan["L-DISPUTED"]["compliance_condition_code"] == "XB"
    assert by_loan["L-PLAN"]["special_comment_code"] == "AC" and by_loan["L-PLAN"]["days_past_due"] == 45
    assert "compliance_condition_code" not in by_loan["L-PLAIN"] and "special_comment_code" not in by_loan["L-PLAIN"]
