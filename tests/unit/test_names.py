"""Borrower names in an SMS: upstream text is data, never message content (docs/contract.md#loanstable-item)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import unicodedata
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dunning.compose import printable_name, render_reminder, render_service
from dunning.compose.names import MAX_NAME_LENGTH, NAME_MARKS, name_problem
from dunning.models.loan import Locale
from dunning.models.policy import load_policy_file
from dunning.observability import metrics

POLICY = load_policy_file()
PHISHING = "Jane. Account FROZEN - pay now at https://evil.example"

HOSTILE = [
    (PHISHING, "too_long"),
    ("Pay at https://evil.example", "not_a_name_character"),
    ("张三 13800138000", "digits"),
    ("www.x.cn", "looks_like_a_link"),
    ("evil.example", "looks_like_a_link"),
    ("t.co", "looks_like_a_link"),
    ("jane@evil.example", "not_a_name_character"),
    ("Jane https://t.co/x", "not_a_name_character"),
    ("Jane evil.example/pay", "not_a_name_character"),
    ("Bob\u200b", "control_or_invisible_characters"),
    ("\u202eevil", "control_or_invisible_characters"),
    ("Ann\u00adLee", "control_or_invisible_characters"),  # soft hyphen
    ("Ann\nLee", "control_or_invisible_characters"),
    ("Ann\tLee", "control_or_invisible_characters"),
    ("Ann\u2028Lee", "control_or_invisible_characters"),
    ("\u3164", "control_or_invisible_characters"),  # Hangul filler: a letter that prints as nothing
    ("\ue000Ann", "control_or_invisible_characters"),  # private use
    ("A" * 300, "too_long"),
    ("Jean " * 20, "too_long"),
    ("a b c d e f g", "too_many_words"),
    ("<script>", "not_a_name_character"),
    ("<b>Ann</b>", "not_a_name_character"),
    ("Call 400-800-1234", "digits"),
    ("Ｊａｎｅ１", "digits"),  # fullwidth: NFKC makes it Jane1
    ("Jane ①", "digits"),
    ("一三八零零一三八零零零", "digits"),  # a phone number in Chinese numerals
    ("Ann #1", "not_a_name_character"),
    ("Ann, pay now!", "not_a_name_character"),
    ("Ann: call us", "not_a_name_character"),
    ("{hotline}", "not_a_name_character"),
    ("$100 Ann", "not_a_name_character"),
    ("Ann 😀", "not_a_name_character"),
    ("Jane - pay now", "stray_mark"),
    ("-Ann", "stray_mark"),
    ("Ann--Lee", "stray_mark"),
    ("Smith-", "stray_mark"),
    ("...", "stray_mark"),
    ("\u0301Ann", "stray_mark"),  # a combining accent on nothing
    ("", "empty"),
    ("   ", "empty"),
    ("\u3000", "empty"),
]

LEGITIMATE = [
    ("张三", "张三"),
    ("欧阳娜娜", "欧阳娜娜"),
    ("Zhang San", "Zhang San"),
    ("ZHANG SAN", "ZHANG SAN"),
    ("O'Brien", "O'Brien"),
    ("O\u2019Brien", "O'Brien"),  # typographic apostrophe: printed as the GSM-7 one
    ("Jean-Luc Picard", "Jean-Luc Picard"),
    ("María José", "María José"),
    ("Mari\u0301a Jose\u0301", "María José"),  # decomposed accents are composed (NFKC)
    ("李·明", "李·明"),
    ("约翰·史密斯", "约翰·史密斯"),
    ("ジョン・スミス", "ジョン・スミス"),
    ("Nguyễn Văn A", "Nguyễn Văn A"),
    ("Dr. Smith", "Dr. Smith"),
    ("J.R.R. Tolkien", "J.R.R. Tolkien"),
    ("Zoë Łukasz", "Zoë Łukasz"),
    ("Μαρία Παπαδοπούλου", "Μαρία Παπαδοπούλου"),
    ("Иван Петров", "Иван Петров"),
    ("김민준", "김민준"),
    ("محمد علي", "محمد علي"),
    ("देवनागरी नाम", "देवनागरी नाम"),  # vowel signs are combining marks after letters
    ("Ｊａｎｅ", "Jane"),  # fullwidth letters: NFKC
    ("  Ann \u3000 Lee ", "Ann Lee"),  # spaces tidied
    ("María de los Ángeles García", "María de los Ángeles García"),
    ("王五", "王五"),  # a numeral in a name is a letter of the name
    ("A" * MAX_NAME_LENGTH, "A" * MAX_NAME_LENGTH),
]


@pytest.mark.parametrize(("raw", "reason"), HOSTILE)
def test_hostile_or_broken_names_are_withheld_with_a_reason(raw: str, reason: str) -> None:
    assert printable_name(raw) is None
    assert name_problem(raw) == reason


@pytest.mark.parametrize(("raw", "printed"), LEGITIMATE)
def test_legitimate_names_are_printed(raw: str, printed: str) -> None:
    assert name_problem(raw) is None
    assert printable_name(raw) == printed


def test_one_character_over_the_bound_is_withheld() -> None:
    assert printable_name("A" * (MAX_NAME_LENGTH + 1)) is None


# --- in the SMS -----------------------------------------------------------------------------------


def reminder(locale: Locale, name: str, **overrides: Any) -> str:
    values: dict[str, Any] = {
        "kind": "follow_up",
        "locale": locale,
        "name": name,
        "currency": "CNY",
        "total": Decimal("1250.40"),
        "late_fees": Decimal("12.30"),
        "days_past_due": 6,
        "due_date": dt.date(2026, 11, 28),
        "pay_by": dt.date(2026, 12, 7),
        "reference": "ABCDEF",
        "loan_id": "L-PHISH",
    }
    values.update(overrides)
    return render_reminder(POLICY, **values).body


@pytest.mark.parametrize(("raw", "reason"), [h for h in HOSTILE if h[1] != "empty"])
@pytest.mark.parametrize("locale", ["zh-CN", "en-US"])
def test_a_withheld_name_leaves_a_natural_greeting_and_nothing_of_the_name(
    raw: str, reason: str, locale: Locale
) -> None:
    body = reminder(locale, raw)
    greeting = "XinFei: Hi there, your loan" if locale == "en-US" else "【信飞】您好，您的借款"
    assert body.startswith(greeting)
    for piece in ("http", "evil", "13800138000", "FROZEN", "<", "400-800", "\u200b", "\u202e", "Jane"):
        assert piece not in body


def test_a_withheld_name_is_counted_and_logged_with_the_loan_never_the_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics.clear_metrics()
    caplog.set_level(logging.WARNING)
    reminder("en-US", PHISHING)
    assert metrics.metric_set["NameWithheld"]["Value"] == [1.0]
    (record,) = [r for r in caplog.records if "withheld" in r.getMessage()]
    assert (record.__dict__["loan_id"], record.__dict__["reason"]) == ("L-PHISH", "too_long")
    logged = json.dumps({k: str(v) for k, v in record.__dict__.items()})
    assert "evil" not in logged and "Jane" not in logged
    metrics.clear_metrics()


def test_a_printable_name_or_no_name_at_all_is_not_counted() -> None:
    metrics.clear_metrics()
    assert "Hi Zhang San," in reminder("en-US", "Zhang San")
    render_service(POLICY, kind="opt_out_confirmation", locale="en-US", name="", currency="CNY", reference="")
    assert "NameWithheld" not in metrics.metric_set


def test_payment_confirmation_withholds_the_name_too() -> None:
    sms = render_service(
        POLICY, kind="payment_confirmation", locale="en-US", name=PHISHING, currency="USD",
        reference="ABCDEF", paid=Decimal("5"), remaining=Decimal("0"),
    )  # fmt: skip
    assert sms.body.startswith("XinFei: Hi there, we received") and "evil" not in sms.body
    metrics.clear_metrics()


def test_the_policy_words_the_greeting_without_a_name() -> None:
    templates = {k: dict(v) for k, v in POLICY.templates.items()}
    templates["follow_up"]["en-US"] = templates["follow_up"]["en-US"].replace("Hi {name},", "Dear {name},")
    fragments = {**POLICY.fragments, "no_name": {"zh-CN": "", "en-US": "customer"}}
    policy = POLICY.model_copy(update={"templates": templates, "fragments": fragments})
    body = render_reminder(
        policy, kind="follow_up", locale="en-US", name="www.x.cn", currency="USD", total=Decimal(1),
        late_fees=Decimal(0), days_past_due=6, due_date=dt.date(2026, 11, 28), pay_by=dt.date(2026, 12, 7),
        reference="ABCDEF",
    ).body  # fmt: skip
    assert body.startswith("XinFei: Dear customer, your loan")
    metrics.clear_metrics()


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=80) | st.sampled_from([h[0] for h in HOSTILE] + [legit[0] for legit in LEGITIMATE]))
def test_whatever_is_printed_is_a_bounded_run_of_letters_spaces_and_name_marks(raw: str) -> None:
    printed = printable_name(raw)
    if printed is None:
        return
    assert 0 < len(printed) <= MAX_NAME_LENGTH and printed == printed.strip()
    assert all(c.isalpha() or c == " " or c in NAME_MARKS or unicodedata.category(c)[0] == "M" for c in printed)
    assert not any(c.isdigit() for c in printed) and "  " not in printed
    assert printable_name(printed) == printed  # printing is stable
