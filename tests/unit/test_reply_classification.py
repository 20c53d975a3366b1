"""Reading a reply (docs/contract.md#inbound-sms): opt-out first, then HELP, a reference code, anything else."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dunning.compose import REFERENCE_ALPHABET, parse_reference_code, reference_code, render_reply
from dunning.inbound import due_now, sent_records
from dunning.models.delivery import Outcome, StoredRecord
from dunning.models.loan import Loan
from dunning.models.policy import DEFAULT_POLICY_PATH, Policy, PolicyError, load_policy_file, parse_policy
from dunning.models.state import Instalment, LoanControl
from dunning.replies import Help, OptOut, Other, Reply, Verify, classify_reply
from dunning_tools.policy_lint import lint_policy

POLICY = load_policy_file()
CODE = reference_code("L-1", "2026-11-16", "overdue_notice")


def read(body: str) -> Reply:
    rules = POLICY.replies
    return classify_reply(body, POLICY.opt_out_keywords, rules.help_keywords, rules.verify_keywords)


def test_the_sample_code_is_a_code_with_a_digit() -> None:
    assert len(CODE) == 6 and all(c in REFERENCE_ALPHABET for c in CODE)


@pytest.mark.parametrize(
    "body",
    [
        "{code}",
        "{lower}",
        " {code}. ",
        "ＦＵＬＬ",  # placeholder replaced below with the full-width code
        "VERIFY {code}",
        "verify {lower}",
        "Verify: {code}!",
        "Please verify {code}",
        "核实{code}",
        "核实 {lower}。",
        "验证{code}",
        "请帮我核实一下{code}",
        "核实+{code}",  # the help answer's own wording, copied literally
        "VERIFY {code} please",  # `please` is code-shaped too; the one with a digit wins
    ],
)
def test_a_code_alone_or_after_a_verify_keyword_is_a_request_to_verify(body: str) -> None:
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in CODE)
    text = body.replace("ＦＵＬＬ", full_width).format(code=CODE, lower=CODE.lower())
    reply = read(text)
    assert isinstance(reply, Verify)
    assert reply.code == CODE
    assert reply.prefixed == (text.strip().strip(".") not in (CODE, CODE.lower(), full_width))


@pytest.mark.parametrize(
    "body", ["VERIFY", "verify my loan", "核实", "核实7KX3P0", "验证码是多少", "VERIFY AB3K9Z XY4M7N"]
)
def test_a_verify_keyword_without_one_code_asks_how_to_write_one(body: str) -> None:
    assert read(body) == Verify(code=None, prefixed=True)


def test_a_wrong_but_well_formed_code_is_still_a_request_to_verify() -> None:
    # Whether it was sent to this number is for the records to say, not the reader.
    assert read("VERIFY 22222Z") == Verify("22222Z", prefixed=True)
    assert read("THANKS") == Verify("THANKS", prefixed=False)  # code-shaped: the caller checks the records


@pytest.mark.parametrize(
    ("body", "keyword"),
    [("HELP", "HELP"), ("help", "HELP"), (" Help! ", "HELP"), ("INFO", "INFO"), ("帮助", "帮助"), ("帮助。", "帮助")],
)
def test_a_help_keyword_alone_is_help(body: str, keyword: str) -> None:
    assert read(body) == Help(keyword)


@pytest.mark.parametrize("body", ["STOP", "HELP STOP", "退订", f"VERIFY {CODE} STOP", f"核实{CODE}退订", "CANCEL"])
def test_an_opt_out_keyword_wins_over_everything(body: str) -> None:
    assert isinstance(read(body), OptOut)


@pytest.mark.parametrize(
    "body",
    ["我明天还款，谢谢", "I need help paying", "Who is this?", "I'll pay at the end of the month", "", "ok", "7KX3P"],
)
def test_anything_else_is_other(body: str) -> None:
    assert read(body) == Other()


@given(st.text(max_size=200))
def test_every_reply_reads_as_exactly_one_kind(body: str) -> None:
    assert isinstance(read(body), OptOut | Help | Verify | Other)


def test_a_typed_code_is_normalised_and_a_malformed_one_says_what_is_wrong() -> None:
    assert parse_reference_code(f" {CODE.lower()} ") == CODE
    with pytest.raises(ValueError, match="6 characters, got 5"):
        parse_reference_code("7KX3P")
    with pytest.raises(ValueError, match=r"never 0, O, 1 or I\); not '0', 'O'"):
        parse_reference_code("7KX3O0")


# ---------------------------------------------------------------- the amount a verify answer states

NOW = dt.datetime(2026, 11, 20, 2, tzinfo=dt.UTC)  # 10:00 in Shanghai, 4 days past a 11-16 due date


def loan(**overrides: object) -> Loan:
    values: dict[str, object] = {
        "loan_id": "L-1",
        "borrower_id": "B-1",
        "borrower_name": "王小明",
        "phone": "+8613800138000",
        "status": "OPEN",
        "due_date": dt.date(2026, 11, 16),
        "amount_due": Decimal("3000.00"),
        "currency": "CNY",
        **overrides,
    }
    return Loan.model_validate(values)


def test_due_now_is_the_amount_plus_late_fees_as_the_sender_states_them() -> None:
    due = due_now([(loan(), None)], NOW, POLICY)
    assert due is not None
    # 0.05 % a day for 4 days on 3000.00 = 6.00; pay-by = today + 3 days (the due date has passed).
    assert due.total == Decimal("3006.00")
    assert due.pay_by == dt.date(2026, 11, 23)
    assert due.open_loans == ("L-1",)


def test_due_now_adds_up_the_loans_of_one_sms_and_uses_the_ledgers_fees() -> None:
    second = loan(
        loan_id="L-2", amount_due=Decimal("500.00"), late_fees=Decimal("12.34"), due_date=dt.date(2026, 11, 10)
    )
    due = due_now([(loan(), None), (second, None)], NOW, POLICY)
    assert due is not None
    assert due.total == Decimal("3006.00") + Decimal("512.34")
    assert due.pay_by == dt.date(2026, 11, 23)


def test_a_paid_loan_or_a_fully_paid_plan_has_nothing_due() -> None:
    paid = due_now([(loan(status="PAID"), None)], NOW, POLICY)
    assert paid is not None and paid.total == 0 and paid.pay_by is None
    plan = LoanControl(loan_id="L-1", plan=(Instalment(due_date=dt.date(2026, 12, 1), amount=Decimal("3000.00")),))
    under_plan = due_now([(loan(amount_due=Decimal("0.00")), plan)], NOW, POLICY)
    assert under_plan is not None and under_plan.pay_by is None


def test_under_a_plan_the_next_instalment_is_due_by_its_date() -> None:
    plan = LoanControl(
        loan_id="L-1",
        plan=(
            Instalment(due_date=dt.date(2026, 11, 25), amount=Decimal("1000.00")),
            Instalment(due_date=dt.date(2026, 12, 25), amount=Decimal("2000.00")),
        ),
    )
    due = due_now([(loan(), plan)], NOW, POLICY)
    assert due is not None
    assert (due.total, due.pay_by) == (Decimal("1000.00"), dt.date(2026, 11, 25))  # not yet due: no fees


def test_no_loans_no_answer_about_money() -> None:
    assert due_now([], NOW, POLICY) is None


def test_a_suppressed_record_sent_nothing_to_verify() -> None:
    records = [
        StoredRecord(loan_id="L-1", record_id="r1", outcome=Outcome.SUPPRESSED),
        StoredRecord(loan_id="L-1", record_id="r2", outcome=Outcome.DELIVERED),
    ]
    assert sent_records(records) == [records[1]]


# ---------------------------------------------------------------- the answers' texts


def test_only_a_confirmation_may_show_a_debt() -> None:
    templates = {k: dict(v) for k, v in POLICY.templates.items()}
    templates["verify_unmatched"]["en-US"] = "{brand}: you owe {total} by {pay_by}, ref {reference}. Call {hotline}."
    leaky = POLICY.model_copy(update={"templates": templates})
    with pytest.raises(PolicyError, match=r"templates.verify_unmatched.en-US: unknown placeholder \{total\}"):
        render_reply(leaky, kind="verify_unmatched", locale="en-US")


def test_the_unmatched_answer_names_the_hotline_and_nothing_else() -> None:
    for locale in ("zh-CN", "en-US"):
        body = render_reply(POLICY, kind="verify_unmatched", locale=locale).body
        assert POLICY.hotline in body
        assert not any(ch in body for ch in "¥$") and CODE not in body


def _with(kind: str, locale: str, text: str) -> Policy:
    templates = {k: dict(v) for k, v in POLICY.templates.items()}
    templates[kind][locale] = text
    return POLICY.model_copy(update={"templates": templates})


def test_policy_check_refuses_a_help_answer_without_the_opt_out_line_or_a_confirmation_without_pay_by() -> None:
    no_stop = POLICY.templates["help_reply"]["en-US"].replace(" Reply STOP to opt out", "")
    no_pay_by = POLICY.templates["verify_confirmed"]["zh-CN"].replace("请于{pay_by}前", "请尽快")
    problems = [str(p) for p in lint_policy(_with("help_reply", "en-US", no_stop))]
    problems += [str(p) for p in lint_policy(_with("verify_confirmed", "zh-CN", no_pay_by))]
    assert problems == [
        "templates.help_reply.en-US: missing_element: missing opt-out line (Reply STOP to opt out)",
        "templates.verify_confirmed.zh-CN: missing_element: missing pay-by date",
    ]


def test_policy_check_refuses_a_debt_in_the_answer_to_a_stranger() -> None:
    leaky = POLICY.templates["verify_unmatched"]["zh-CN"].replace("。如有", "，应还{total}。如有")
    (problem,) = lint_policy(_with("verify_unmatched", "zh-CN", leaky))
    assert str(problem).startswith("templates.verify_unmatched.zh-CN: placeholder: unknown placeholder {total}")


def test_reply_keywords_must_be_readable() -> None:
    document = DEFAULT_POLICY_PATH.read_text(encoding="utf-8").replace(
        "help_keywords: [HELP,", 'help_keywords: ["!!!", HELP,'
    )
    with pytest.raises(PolicyError, match=r"replies.help_keywords: .*'!!!' has no letter or digit"):
        parse_policy(document)
