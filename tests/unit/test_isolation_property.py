"""Property: for any book, adding one hostile item changes no other loan's outcome (pure core).

A book is planned and composed the way the services do it (parse_loan, the verdict, late fees, one
consolidated SMS per borrower), with the services' isolation: a loan whose handling raises a loan
fault (records.is_loan_fault) is set aside, never its neighbours. The outcome of a loan is its
verdict, and for a loan due now the exact SMS its borrower gets.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dunning import decisions, ladder
from dunning.compose import ReminderContext, reference_code, render_reminder
from dunning.models.loan import InvalidLoan, Loan, parse_loan
from dunning.models.policy import load_policy_file
from dunning.records import UNPROCESSABLE, is_loan_fault
from tests.strategies import ABSURD_AMOUNTS, NOW, TODAY, hostile_items, valid_books, valid_item

POLICY = load_policy_file()
Outcome = tuple[Any, ...]


def plan_book(items: list[dict[str, Any]]) -> dict[str, Outcome]:
    """Every loan's outcome at NOW, by loan id."""
    outcomes: dict[str, Outcome] = {}
    due: dict[str, list[tuple[Loan, ladder.Stage, Decimal]]] = defaultdict(list)
    for item in items:
        loan_id = str(item["loan_id"])
        try:
            loan = parse_loan(item)
        except InvalidLoan as exc:
            outcomes[loan_id] = ("set_aside", exc.reason)
            continue
        try:
            verdict = decisions.evaluate(loan, None, NOW, POLICY, opted_out=False)
            if isinstance(verdict, decisions.Due):
                due[loan.borrower_id].append((loan, verdict.stage, ladder.late_fees(loan, TODAY, POLICY)))
            else:
                outcomes[loan_id] = (type(verdict).__name__, getattr(verdict, "reason", None) or verdict.why)
        except Exception as exc:
            assert is_loan_fault(exc), exc
            outcomes[loan_id] = ("set_aside", UNPROCESSABLE)
    for group in due.values():
        try:
            body = compose(group)
        except Exception as exc:
            assert is_loan_fault(exc), exc
            outcomes.update({loan.loan_id: ("set_aside", UNPROCESSABLE) for loan, _, _ in group})
            continue
        outcomes.update({loan.loan_id: ("Due", stage.id, body) for loan, stage, _ in group})
    return outcomes


def compose(group: list[tuple[Loan, ladder.Stage, Decimal]]) -> str:
    """The borrower's one SMS for their loans due now, as the sender consolidates it."""
    first, stage, _ = group[0]
    earliest = min(loan.due_date for loan, _, _ in group)
    reminder = ReminderContext(
        kind="consolidated" if len(group) > 1 else stage.kind,
        locale=first.locale or POLICY.default_locale,
        name=first.borrower_name,
        currency=first.currency,
        total=sum((loan.amount_due + fees for loan, _, fees in group), Decimal(0)),
        late_fees=sum((fees for _, _, fees in group), Decimal(0)),
        days_past_due=max(ladder.days_past_due(loan.due_date, TODAY) for loan, _, _ in group),
        due_date=earliest,
        pay_by=ladder.pay_by(TODAY, earliest, POLICY),
        reference=reference_code(first.loan_id, first.cycle, stage.id),
        loan_count=len(group),
    )
    return render_reminder(POLICY, reminder).body


@settings(max_examples=200, deadline=None)
@given(book=valid_books(), hostile=hostile_items())
def test_a_hostile_item_of_its_own_borrower_changes_no_other_loans_outcome(
    book: list[dict[str, Any]], hostile: dict[str, Any]
) -> None:
    before = plan_book(book)
    after = plan_book([*book[: len(book) // 2], hostile, *book[len(book) // 2 :]])
    assert {k: v for k, v in after.items() if k != hostile["loan_id"]} == before
    assert hostile["loan_id"] in after  # set aside or handled, never dropped without an outcome


@settings(max_examples=200, deadline=None)
@given(book=valid_books(), hostile=st.integers(0, 3).flatmap(lambda b: hostile_items(borrower=b)))
def test_a_rejected_item_of_a_borrower_with_other_loans_changes_none_of_theirs(
    book: list[dict[str, Any]], hostile: dict[str, Any]
) -> None:
    after = plan_book([hostile, *book])
    if after[hostile["loan_id"]][0] != "set_aside":
        return  # a loan that parses (e.g. a name that is only withheld) legitimately joins its borrower's SMS
    assert {k: v for k, v in after.items() if k != hostile["loan_id"]} == plan_book(book)


def test_the_issues_absurd_amounts_are_set_aside_and_their_borrowers_other_loan_still_gets_its_sms() -> None:
    neighbour = valid_item("L-0", 1, 1, Decimal("500.00"))
    for amount in ABSURD_AMOUNTS:
        absurd = valid_item("L-ABSURD", 1, 1, amount)
        outcomes = plan_book([absurd, neighbour])
        assert outcomes["L-ABSURD"] in {("set_aside", "invalid_amount"), ("set_aside", UNPROCESSABLE)}
        assert outcomes["L-0"] == plan_book([neighbour])["L-0"]
        assert outcomes["L-0"][:2] == ("Due", "overdue_notice")
