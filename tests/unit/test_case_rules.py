"""The rules around collection cases (docs/contract.md#events-out, docs/contract.md#bureau-file): unreachable loans,
broken promises, plans, disputes and grace periods, closing reasons, the bureau's Metro 2 codes, `dunning cases`."""

from __future__ import annotations

import datetime as dt
import io
import json
from decimal import Decimal
from typing import Any

import pytest

from dunning.borrower_events import superseded_broken_promise
from dunning.bureau import Reported, plan_report
from dunning.case_closing import closed_detail, closing_reason
from dunning.chased import effective_loan
from dunning.escalation import (
    NO_FAILURES,
    CycleHistory,
    broken_promises,
    escalation_reason,
    held_back,
    plan_is_current,
)
from dunning.models.loan import InvalidLoan, Loan, UnreachableLoan, parse_loan, parse_unreachable
from dunning.models.policy import load_policy_file
from dunning.models.state import CollectionCase, LoanControl
from dunning_tools.case_report import case_row, write_csv, write_json_lines

POLICY = load_policy_file()
TODAY = dt.date(2026, 12, 12)
NOW = dt.datetime(2026, 12, 12, 6, 30, tzinfo=dt.UTC)


def item(days_past_due: int, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "loan_id": "L-1",
        "borrower_id": "B-1",
        "borrower_name": "张三",
        "phone": "+8613800138000",
        "status": "OPEN",
        "due_date": (TODAY - dt.timedelta(days=days_past_due)).isoformat(),
        "amount_due": Decimal("1000.00"),
        "currency": "CNY",
        **overrides,
    }
    return {key: value for key, value in values.items() if value is not None}


def loan(days_past_due: int, **overrides: Any) -> Loan:
    return parse_loan(item(days_past_due, **overrides))


def unreachable(days_past_due: int, **overrides: Any) -> UnreachableLoan | None:
    broken = item(days_past_due, **overrides)
    with pytest.raises(InvalidLoan) as refused:
        parse_loan(broken)
    return parse_unreachable(broken, refused.value)


def control(**values: Any) -> LoanControl:
    return LoanControl.model_validate({"loan_id": "L-1", **values})


def reason(seen: Loan, ctl: LoanControl | None = None, **kwargs: Any) -> str | None:
    history: CycleHistory = kwargs.pop("history", NO_FAILURES)
    return escalation_reason(seen, history, TODAY, POLICY, opted_out=kwargs.pop("opted_out", False), control=ctl)


# ---------------------------------------------------------------- unreachable


@pytest.mark.parametrize(
    ("phone", "fault"),
    [
        (None, "missing_phone"),
        ("12345", "invalid_phone"),
        ("8613800138000", "invalid_phone"),  # no '+': not E.164
        ("+862161234567", "invalid_phone"),  # a Shanghai landline: valid, but no SMS reaches it
        ("+8640012345678", "invalid_phone"),  # not a number of any plan
    ],
)
def test_an_item_valid_but_for_its_phone_is_unreachable(phone: str | None, fault: str) -> None:
    found = unreachable(3, phone=phone)
    assert found is not None
    assert (found.phone, found.phone_fault, found.amount_due, found.cycle) == (
        "",
        fault,
        Decimal("1000.00"),
        item(3)["due_date"],
    )


@pytest.mark.parametrize(
    "broken",
    [
        {"amount_due": "abc"},
        {"currency": "ZZZ"},
        {"due_date": "2026/11/16"},
        {"borrower_id": None},
        {"timezone": "Mars/Olympus"},
    ],
)
def test_a_bad_phone_with_anything_else_broken_is_broken_data_not_unreachable(broken: dict[str, Any]) -> None:
    assert unreachable(3, phone="12345", **broken) is None


def test_a_mobile_number_still_parses() -> None:
    assert loan(3, phone="+12125550143").phone == "+12125550143"  # US numbers do not tell mobiles apart


def test_an_item_whose_fault_is_not_its_phone_is_never_unreachable() -> None:
    broken = item(3, amount_due="abc")
    with pytest.raises(InvalidLoan) as refused:
        parse_loan(broken)
    assert parse_unreachable(broken, refused.value) is None


def test_an_unreachable_loan_goes_to_collectors_from_its_first_overdue_day() -> None:
    assert [reason(found) for found in (unreachable(d, phone="12345") for d in (-3, 0)) if found] == [None, None]
    first_day = unreachable(1, phone="12345")
    assert first_day is not None and reason(first_day) == "unreachable"
    long_past = unreachable(45, phone=None)
    assert long_past is not None and reason(long_past) == "unreachable"  # named for why the ladder never ran


def test_an_unreachable_loan_paid_or_under_a_kept_plan_is_not_handed_over() -> None:
    paid = unreachable(5, phone="12345", status="PAID")
    assert paid is not None and reason(paid) is None
    planned = unreachable(40, phone="12345")
    assert planned is not None
    ctl = control(plan=[{"due_date": (TODAY + dt.timedelta(days=10)).isoformat(), "amount": "1000.00"}])
    assert reason(effective_loan(planned, ctl), ctl) is None
    assert isinstance(effective_loan(planned, ctl), UnreachableLoan)


# ---------------------------------------------------------------- broken promises


def test_one_broken_promise_is_left_to_the_sms_and_a_second_one_opens_a_case() -> None:
    overdue = loan(10)
    first = TODAY - dt.timedelta(days=6)
    second = TODAY - dt.timedelta(days=2)
    one = control(promised_date=first.isoformat())
    assert broken_promises(one, overdue, TODAY) == {first}
    assert reason(overdue, one) is None
    two = control(promised_date=second.isoformat(), broken_promises={first.isoformat()})
    assert broken_promises(two, overdue, TODAY) == {first, second}
    assert reason(overdue, two) == "broken_promises"


def test_the_same_broken_promise_counts_once_and_a_pending_one_not_at_all() -> None:
    overdue = loan(10)
    first = TODAY - dt.timedelta(days=6)
    remembered_and_current = control(promised_date=first.isoformat(), broken_promises={first.isoformat()})
    assert reason(overdue, remembered_and_current) is None
    pending = control(promised_date=TODAY.isoformat(), broken_promises={first.isoformat()})
    assert broken_promises(pending, overdue, TODAY) == {first}  # the promised day itself is not over yet
    assert reason(overdue, pending) is None


def test_promises_about_an_earlier_instalment_do_not_count_for_this_cycle() -> None:
    overdue = loan(10)
    earlier = [(TODAY - dt.timedelta(days=n)).isoformat() for n in (40, 20)]  # before this cycle's due date
    ctl = control(broken_promises=set(earlier), promised_date=(TODAY - dt.timedelta(days=3)).isoformat())
    assert len(broken_promises(ctl, overdue, TODAY)) == 1
    assert reason(overdue, ctl) is None


def test_a_new_promise_or_grace_keeps_the_promise_it_replaces_only_if_that_one_was_broken() -> None:
    promised = dt.date(2026, 11, 20)
    ctl = control(promised_date=promised.isoformat())
    assert superseded_broken_promise(ctl, dt.date(2026, 11, 21)) == promised
    assert superseded_broken_promise(ctl, promised) is None  # the promised day is not over
    assert superseded_broken_promise(control(), dt.date(2026, 11, 21)) is None
    assert superseded_broken_promise(None, dt.date(2026, 11, 21)) is None


# ---------------------------------------------------------------- plans, disputes, grace periods


def test_a_loan_on_a_current_plan_is_not_handed_over_for_ladder_exhausted() -> None:
    upstream = loan(45)  # the original instalment is far past the ladder
    assert reason(upstream) == "ladder_exhausted"
    ctl = control(
        plan=[
            {"due_date": (TODAY - dt.timedelta(days=20)).isoformat(), "amount": "400.00"},
            {"due_date": (TODAY + dt.timedelta(days=10)).isoformat(), "amount": "600.00"},
        ]
    )
    # Upstream's balance is 600.00: the first instalment was paid, the next is not due yet.
    kept = loan(45, amount_due=Decimal("600.00"))
    assert plan_is_current(kept, ctl, TODAY)
    assert reason(effective_loan(kept, ctl), ctl) is None


def test_a_plan_whose_instalment_is_itself_past_the_ladder_is_handed_over() -> None:
    ctl = control(plan=[{"due_date": (TODAY - dt.timedelta(days=31)).isoformat(), "amount": "1000.00"}])
    behind = loan(60)
    assert not plan_is_current(behind, ctl, TODAY)
    seen = effective_loan(behind, ctl)
    assert (reason(seen, ctl), seen.cycle) == ("ladder_exhausted", (TODAY - dt.timedelta(days=31)).isoformat())


@pytest.mark.parametrize(
    ("values", "hold"),
    [
        ({"dispute_hold": True}, "hold_dispute"),
        ({"paused_until": (TODAY + dt.timedelta(days=5)).isoformat(), "pause_reason": "grace_period"}, "grace_period"),
        ({"paused_until": TODAY.isoformat(), "pause_reason": "grace_period"}, "grace_period"),
    ],
)
def test_a_dispute_or_a_running_grace_period_holds_back_even_a_loan_past_the_ladder(
    values: dict[str, Any], hold: str
) -> None:
    assert reason(loan(45)) == "ladder_exhausted"
    assert held_back(control(**values), TODAY) == hold


def test_an_ended_grace_period_or_a_resolved_dispute_holds_nothing() -> None:
    ended = control(paused_until=(TODAY - dt.timedelta(days=1)).isoformat(), pause_reason="grace_period")
    assert held_back(ended, TODAY) is None
    assert held_back(control(dispute_hold=False, dispute_event_at="2026-12-01T00:00:00Z"), TODAY) is None


# ---------------------------------------------------------------- closing


@pytest.mark.parametrize(
    ("status", "expected"), [("PAID", "paid"), ("CLOSED", "settled"), ("WRITTEN_OFF", "written_off"), ("OPEN", None)]
)
def test_closing_reasons_follow_upstream_status(status: str, expected: str | None) -> None:
    assert closing_reason(loan(40, status=status)) == expected


def test_the_closed_detail_has_the_contract_keys() -> None:
    case = CollectionCase(loan_id="L-1", borrower_id="B-1", cycle="2026-11-01", opened_at=NOW, detail="{}")
    assert closed_detail(case, "paid", NOW) == {
        "loan_id": "L-1",
        "borrower_id": "B-1",
        "cycle": "2026-11-01",
        "reason": "paid",
        "closed_at": "2026-12-12T06:30:00.000Z",
    }


# ---------------------------------------------------------------- bureau codes


def lines(controls: dict[str, LoanControl], delinquent: list[Loan] | None = None) -> list[dict[str, Any]]:
    plan = plan_report(TODAY, delinquent or [loan(45)], {}, {}, POLICY, controls)
    return [json.loads(line.to_json()) for line in plan.lines]


def test_a_disputed_loan_is_flagged_xb_and_a_resolved_dispute_xh() -> None:
    (disputed,) = lines({"L-1": control(dispute_hold=True, dispute_event_at="2026-12-01T00:00:00Z")})
    assert disputed["compliance_condition_code"] == "XB" and disputed["status"] == "DELINQUENT"
    (resolved,) = lines({"L-1": control(dispute_hold=False, dispute_event_at="2026-12-05T00:00:00Z")})
    assert resolved["compliance_condition_code"] == "XH"


def test_a_loan_on_a_current_plan_is_reported_as_paying_under_an_agreement_without_re_aging() -> None:
    ctl = control(plan=[{"due_date": (TODAY + dt.timedelta(days=10)).isoformat(), "amount": "1000.00"}])
    (line,) = lines({"L-1": ctl})
    assert line["special_comment_code"] == "AC"
    assert (line["days_past_due"], line["amount_overdue"], line["bucket"]) == (45, "1000.00", "M2")
    behind = control(plan=[{"due_date": (TODAY - dt.timedelta(days=3)).isoformat(), "amount": "1000.00"}])
    assert "special_comment_code" not in lines({"L-1": behind})[0]


def test_lines_without_a_code_keep_the_contract_keys_and_bytes() -> None:
    plain = plan_report(TODAY, [loan(45)], {}, {}, POLICY)
    with_empty_control = plan_report(TODAY, [loan(45)], {}, {}, POLICY, {"L-1": control()})
    assert plain.lines[0].to_json() == with_empty_control.lines[0].to_json()
    assert list(json.loads(plain.lines[0].to_json())) == [
        "loan_id",
        "borrower_id",
        "reporting_date",
        "days_past_due",
        "bucket",
        "amount_overdue",
        "currency",
        "first_delinquency_date",
        "status",
    ]


def test_a_settled_correction_of_a_disputed_loan_keeps_the_flag() -> None:
    known = Reported(
        loan_id="L-1",
        borrower_id="B-1",
        currency="CNY",
        first_delinquency_date=dt.date(2026, 10, 1),
        reported_since=dt.date(2026, 10, 31),
    )
    paid = {"L-1": {"loan_id": "L-1", "status": "PAID", "due_date": "2026-10-01"}}
    plan = plan_report(TODAY, [], {"L-1": known}, paid, POLICY, {"L-1": control(dispute_hold=True)})
    (line,) = [json.loads(line.to_json()) for line in plan.lines]
    assert (line["status"], line["compliance_condition_code"]) == ("SETTLED", "XB")


# ---------------------------------------------------------------- dunning cases rows


CASE_ITEM = {
    "pk": "LOAN#L-1",
    "sk": "CASE#2026-11-01",
    "loan_id": "L-1",
    "cycle": "2026-11-01",
    "borrower_id": "B-1",
    "reason": "unreachable",
    "opened_at": "2026-11-02T06:30:00.000Z",
    "detail": json.dumps({"days_past_due": 1, "amount_due": "1000.00", "late_fees": "0.50", "currency": "CNY"}),
    "published": True,
}


def test_a_case_row_says_open_until_closed_and_why_it_closed() -> None:
    row = case_row(CASE_ITEM)
    assert (row.status, row.days_past_due, row.amount_due, row.closed_reason) == ("open", 1, "1000.00", "")
    closed = case_row({**CASE_ITEM, "closed_at": "2026-11-20T01:00:00.000Z", "close_reason": "paid"})
    assert (closed.status, closed.closed_reason, closed.closed_at) == ("closed", "paid", "2026-11-20T01:00:00.000Z")


def test_a_case_with_an_unreadable_detail_is_still_listed() -> None:
    row = case_row({**CASE_ITEM, "detail": "{not json"})
    assert (row.loan_id, row.reason, row.days_past_due, row.amount_due) == ("L-1", "unreachable", None, "")


def test_rows_print_as_json_lines_or_csv_with_a_header() -> None:
    rows = [case_row(CASE_ITEM)]
    out = io.StringIO()
    write_json_lines(rows, out)
    assert json.loads(out.getvalue())["loan_id"] == "L-1"
    out = io.StringIO()
    write_csv(rows, out)
    header, first = out.getvalue().splitlines()
    assert header.split(",")[:5] == ["opened_at", "loan_id", "borrower_id", "cycle", "reason"]
    assert first.startswith("2026-11-02T06:30:00.000Z,L-1,B-1,2026-11-01,unreachable,1,1000.00,")
