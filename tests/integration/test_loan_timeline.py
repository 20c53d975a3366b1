"""`dunning loan LOAN_ID` on a small story driven through the real functions: a reminder, a promise, an
opt-out, a case and a bureau line, printed in time order, line by line."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
import time_machine

from dunning_tools.cli import main
from dunning_tools.local import LocalStack, invoke
from tests.conftest import EVENTS_DIR, RunHours, scheduled_event

PHONE = "+8613800138001"
LOAN = {
    "loan_id": "LN-TIMELINE-1",
    "borrower_id": "BR-TIMELINE",
    "borrower_name": "王芳",
    "phone": PHONE,
    "status": "OPEN",
    "due_date": "2026-11-01",
    "amount_due": "1000.00",
    "currency": "CNY",
    "locale": "zh-CN",
    "timezone": "Asia/Shanghai",
}


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def loan_event(name: str, time: str, detail: dict[str, Any]) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))
    event.update(time=time, detail=detail, id=f"{name}-{time}")
    return event


def run_function(stack: LocalStack, function: str, event: dict[str, Any], when: str) -> Any:
    with time_machine.travel(at(when), tick=False):
        return invoke(stack, function, event)


@pytest.fixture
def story(local_stack: LocalStack, seed_loans: Any, run_hours: RunHours) -> LocalStack:
    seed_loans({**LOAN, "amount_due": Decimal("1000.00")})
    run_hours(local_stack, at("2026-11-04T02:00:00Z"), 1, fires=1)  # +3 days, 10:00 in Shanghai: follow-up
    promise = {"loan_id": LOAN["loan_id"], "promised_date": "2026-11-10", "amount": "500.00"}
    run_function(
        local_stack,
        "LoanEventsFunction",
        loan_event("loan_event_promise_to_pay.json", "2026-11-05T03:00:00Z", promise),
        "2026-11-05T03:00:05Z",
    )
    run_function(
        local_stack,
        "LoanEventsFunction",
        loan_event("loan_event_opt_out.json", "2026-11-12T03:00:00Z", {"phone": PHONE}),
        "2026-11-12T03:00:05Z",
    )
    run_function(local_stack, "EscalateFunction", scheduled_event(at("2026-11-13T06:00:00Z")), "2026-11-13T06:00:00Z")
    run_function(
        local_stack, "BureauReportFunction", scheduled_event(at("2026-12-02T06:00:00Z")), "2026-12-02T06:00:00Z"
    )
    return local_stack


def reference_of(stack: LocalStack, loan_id: str) -> str:
    records = boto3.client("dynamodb").query(
        TableName=stack.physical_id("DeliveriesTable"),
        KeyConditionExpression="loan_id = :l",
        ExpressionAttributeValues={":l": {"S": loan_id}},
    )["Items"]
    return str(next(r["reference"]["S"] for r in records if r["outcome"]["S"] == "SENT"))


def test_the_timeline_tells_the_loans_story_in_time_order(
    story: LocalStack, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUNNING_LOCAL_DIR", str(tmp_path))  # no local server here: the stack is named
    assert main(["loan", LOAN["loan_id"], "--stack-name", story.name, "--bureau-days", "0"]) == 0
    reference = reference_of(story, LOAN["loan_id"])
    assert capsys.readouterr().out.splitlines() == [
        "loan LN-TIMELINE-1: borrower_id BR-TIMELINE status OPEN due_date 2026-11-01 amount_due 1000.00"
        " currency CNY phone ***8001 locale zh-CN timezone Asia/Shanghai",
        "2026-11-04T02:00:00Z     claim    follow_up_3 cycle 2026-11-01: SENT",
        f"2026-11-04T02:00:00Z     record   SENT follow_up_3 cycle 2026-11-01 phone ***8001 ref {reference}",
        "2026-11-05T03:00:00Z     control  pause: promise_pending until 2026-11-10 promise 500.00 by 2026-11-10",
        "2026-11-12T03:00:05Z     optout   opt-out of ***8001 (source event)",
        "2026-11-13T06:00:00Z     case     case opened: reason opted_out cycle 2026-11-01",
        "2026-12-02T06:00:00Z     bureau   bureau 2026-12-02: DELINQUENT M2 31 days past due, 1000.00 CNY",
    ]

    assert main(["loan", LOAN["loan_id"], "--stack-name", story.name, "--bureau-days", "0", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [entry["kind"] for entry in shown["timeline"]] == [
        "claim",
        "record",
        "control",
        "optout",
        "case",
        "bureau",
    ]
    text = json.dumps(shown, ensure_ascii=False)
    assert PHONE not in text and LOAN["borrower_name"] not in text  # masked phone, no name, no body
    assert "body" not in shown["timeline"][1]


def test_bureau_files_before_the_window_are_not_read(story: LocalStack, capsys: pytest.CaptureFixture[str]) -> None:
    with time_machine.travel(at("2026-12-10T00:00:00Z"), tick=False):
        assert main(["loan", LOAN["loan_id"], "--stack-name", story.name, "--bureau-days", "7"]) == 0
    assert "bureau" not in capsys.readouterr().out
    with time_machine.travel(at("2026-12-10T00:00:00Z"), tick=False):
        assert main(["loan", LOAN["loan_id"], "--stack-name", story.name, "--bureau-days", "8"]) == 0
    assert "bureau 2026-12-02: DELINQUENT" in capsys.readouterr().out


def test_a_loan_without_trace_says_so(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUNNING_LOCAL_DIR", str(tmp_path))
    assert main(["loan", "LN-NOWHERE", "--stack-name", local_stack.name]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        "loan LN-NOWHERE: no trace (not in LoansTable, no record, no state, no bureau line)"
    ]
    assert "no trace of loan LN-NOWHERE" in captured.err


@pytest.mark.parametrize("loan_id", ["", "two words", "tab\there", "x" * 129])
def test_a_malformed_loan_id_is_a_clear_error(loan_id: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["loan", loan_id, "--stack-name", "any"])
    assert exited.value.code == 2
    assert "LOAN_ID must be 1 to 128 characters without spaces or control characters" in capsys.readouterr().err
