"""Composition: money and dates per locale, reference codes, rendering of the default templates."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dunning.compose import (
    REFERENCE_ALPHABET,
    ComposedSms,
    ReminderContext,
    format_date,
    format_money,
    is_reference_code,
    reference_code,
    render_reminder,
    render_service,
    sms_encoding,
)
from dunning.compose.names import MAX_NAME_LENGTH
from dunning.models.loan import Locale
from dunning.models.policy import LADDER_KINDS, Policy, PolicyError, load_policy_file

POLICY = load_policy_file()
REMINDER_KINDS = (*LADDER_KINDS, "consolidated")
LOCALES: tuple[Locale, ...] = ("zh-CN", "en-US")
REF = reference_code("L-1", "2026-11-28", "follow_up")


def with_template(kind: str, locale: Locale, text: str, **changes: Any) -> Policy:
    templates = {k: dict(v) for k, v in POLICY.templates.items()}
    templates[kind][locale] = text
    return POLICY.model_copy(update={"templates": templates, **changes})


def reminder(policy: Policy = POLICY, *, fit_name: bool = True, **overrides: Any) -> ComposedSms:
    values: dict[str, Any] = {
        "kind": "follow_up",
        "locale": "en-US",
        "name": "Ann Lee",
        "currency": "USD",
        "total": Decimal("1250.40"),
        "late_fees": Decimal("12.30"),
        "days_past_due": 6,
        "due_date": dt.date(2026, 11, 28),
        "pay_by": dt.date(2026, 12, 7),
        "reference": REF,
    }
    values.update(overrides)
    return render_reminder(policy, ReminderContext(**values), fit_name=fit_name)


# --- money and dates ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "locale", "expected"),
    [
        ("1234567.89", "CNY", "zh-CN", "¥1,234,567.89"),
        ("1234567.89", "USD", "en-US", "$1,234,567.89"),
        ("1234567.89", "CNY", "en-US", "CN¥1,234,567.89"),
        ("1234567.89", "USD", "zh-CN", "US$1,234,567.89"),
        ("5", "CNY", "zh-CN", "¥5.00"),  # always the currency's two minor-unit digits
        ("0.1", "USD", "en-US", "$0.10"),
        ("1234567", "JPY", "en-US", "¥1,234,567"),  # JPY has no minor unit
        ("1234567", "JPY", "zh-CN", "JP¥1,234,567"),
        ("0.5", "JPY", "en-US", "¥1"),  # half-up (Babel alone would round half-even to ¥0)
        ("0.125", "USD", "en-US", "$0.13"),
        ("0.135", "USD", "en-US", "$0.14"),
        ("2.5", "JPY", "en-US", "¥3"),
        ("0.004", "CNY", "zh-CN", "¥0.00"),
    ],
)
def test_money_is_exact_to_the_minor_unit(amount: str, currency: str, locale: Locale, expected: str) -> None:
    assert format_money(Decimal(amount), currency, locale) == expected


def test_money_refuses_floats_and_non_finite_values() -> None:
    with pytest.raises(TypeError):
        format_money(12.5, "USD", "en-US")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        format_money(Decimal("NaN"), "USD", "en-US")


@pytest.mark.parametrize(
    ("day", "locale", "expected"),
    [
        (dt.date(2026, 12, 1), "zh-CN", "2026年12月1日"),
        (dt.date(2026, 12, 1), "en-US", "Dec 1, 2026"),
        (dt.date(2027, 1, 31), "en-US", "Jan 31, 2027"),
        (dt.date(2027, 1, 31), "zh-CN", "2027年1月31日"),
    ],
)
def test_dates_are_short_and_unambiguous(day: dt.date, locale: Locale, expected: str) -> None:
    assert format_date(day, locale) == expected


# --- reference codes ----------------------------------------------------------------------------


def test_reference_code_is_short_readable_and_deterministic() -> None:
    code = reference_code("L-1", "2026-11-28", "follow_up")
    assert len(code) == 6
    assert not set(code) & set("0O1I")
    assert code == reference_code("L-1", "2026-11-28", "follow_up")  # a retry renders the same body
    assert is_reference_code(code) and is_reference_code(f" {code.lower()} ")


def test_reference_code_differs_per_loan_cycle_and_stage() -> None:
    codes = {
        reference_code("L-1", "2026-11-28", "follow_up"),
        reference_code("L-2", "2026-11-28", "follow_up"),
        reference_code("L-1", "2026-12-28", "follow_up"),
        reference_code("L-1", "2026-11-28", "overdue_notice"),
        reference_code("L-1", "2026-11-28follow_up", ""),
    }
    assert len(codes) == 5


@given(st.text(max_size=40), st.text(max_size=12), st.text(max_size=20))
def test_reference_code_always_uses_the_unambiguous_alphabet(loan_id: str, cycle: str, stage: str) -> None:
    code = reference_code(loan_id, cycle, stage)
    assert len(code) == 6 and set(code) <= set(REFERENCE_ALPHABET)


def test_reference_alphabet_has_no_lookalikes() -> None:
    assert len(set(REFERENCE_ALPHABET)) == len(REFERENCE_ALPHABET) == 32
    assert not set(REFERENCE_ALPHABET) & set("0O1I")
    assert not is_reference_code("AB0CDE") and not is_reference_code("ABCDE")


# --- rendering the default templates --------------------------------------------------------------


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("kind", REMINDER_KINDS)
def test_default_reminders_carry_every_element(kind: str, locale: Locale) -> None:
    sms = reminder(kind=kind, locale=locale, loan_count=2)
    body = sms.body
    assert (sms.encoding, sms.segments) == sms_encoding(body)
    assert sms.segments <= POLICY.max_segments
    assert format_money(Decimal("1250.40"), "USD", locale) in body
    assert POLICY.hotline in body and REF in body
    assert POLICY.repayment_methods[locale] in body
    if locale == "zh-CN":
        assert body.startswith("【信飞】") and body.endswith("回T退订")
    else:
        assert sms.encoding == "GSM-7"
        assert "XinFei" in body and body.endswith("Reply STOP to opt out")
    deadline = dt.date(2026, 11, 28) if kind in ("courtesy", "due_today") else dt.date(2026, 12, 7)
    assert format_date(deadline, locale) in body


@pytest.mark.parametrize("kind", ["overdue_notice", "follow_up", "consolidated"])
def test_late_fee_fragment_only_when_fees_accrued(kind: str) -> None:
    with_fees = reminder(kind=kind, locale="zh-CN", currency="CNY", late_fees=Decimal("12.3"))
    assert "（含滞纳金¥12.30）" in with_fees.body
    without = reminder(kind=kind, locale="zh-CN", currency="CNY", late_fees=Decimal("0.00"))
    assert "滞纳金" not in without.body and "{" not in without.body
    en = reminder(kind=kind, late_fees=Decimal("0"))
    assert "late fee" not in en.body


def test_promise_fragment_only_when_a_promise_was_broken() -> None:
    assert "promised" not in reminder().body
    assert "Your promised payment has not arrived." in reminder(promised_date=dt.date(2026, 12, 1)).body
    assert "约定" in reminder(locale="zh-CN", promised_date=dt.date(2026, 12, 1)).body


def test_fragment_renders_its_own_placeholders() -> None:
    fragments = {**POLICY.fragments, "promise": {"zh-CN": "", "en-US": " You promised {promised_date}."}}
    policy = POLICY.model_copy(update={"fragments": fragments})
    assert " You promised Dec 1, 2026." in reminder(policy, promised_date=dt.date(2026, 12, 1)).body


def test_missing_fragment_is_a_policy_error_when_needed() -> None:
    policy = POLICY.model_copy(update={"fragments": {}})
    assert "late fee" not in reminder(policy, late_fees=Decimal(0)).body
    with pytest.raises(PolicyError, match=r"fragments\.late_fees\.en-US is missing"):
        reminder(policy)


def test_consolidated_reminder_counts_loans() -> None:
    assert "3 of your loan payments are overdue" in reminder(kind="consolidated", loan_count=3).body
    assert "您有3笔借款已逾期" in reminder(kind="consolidated", locale="zh-CN", loan_count=3).body


@pytest.mark.parametrize("placeholder", ["{amount}", "{paid}", "{name.__class__}", "{0}", "{}", "{total!r}"])
def test_bad_placeholder_is_a_policy_error_naming_kind_locale_and_placeholder(placeholder: str) -> None:
    policy = with_template("follow_up", "zh-CN", "【{brand}】" + placeholder + "{total}")
    with pytest.raises(PolicyError) as raised:
        reminder(policy, locale="zh-CN")
    message = str(raised.value)
    assert message.startswith("templates.follow_up.zh-CN: ")
    assert placeholder.split("!")[0].rstrip("}") in message


def test_unbalanced_brace_is_a_policy_error() -> None:
    policy = with_template("courtesy", "en-US", "{brand}: pay {total")
    with pytest.raises(PolicyError, match=r"templates\.courtesy\.en-US: not a valid template"):
        reminder(policy, kind="courtesy")


def test_a_name_with_placeholders_is_withheld_never_reinterpreted() -> None:
    body = reminder(name="{hotline} {0} {name.__class__}").body
    assert "Hi there," in body and "{" not in body and "__class__" not in body


def test_money_arguments_must_be_non_negative_decimals() -> None:
    with pytest.raises(TypeError):
        reminder(total=1250.4)
    with pytest.raises(ValueError, match="late_fees"):
        reminder(late_fees=Decimal("-1"))


def test_service_and_reminder_kinds_are_not_mixed_up() -> None:
    with pytest.raises(ValueError, match="render_service"):
        reminder(kind="payment_confirmation")
    with pytest.raises(ValueError, match="render_reminder"):
        render_service(POLICY, kind="follow_up", locale="en-US", name="Ann", currency="USD", reference=REF)


# --- borrower names -------------------------------------------------------------------------------


def test_realistic_worst_case_name_is_never_shortened() -> None:
    name = "Alexandra Montgomery-Smit"  # 25 characters
    sms = reminder(name=name, total=Decimal("1234567.89"), late_fees=Decimal("296296.29"), currency="CNY",
                   promised_date=dt.date(2026, 12, 25), days_past_due=29)  # fmt: skip
    assert f"Hi {name}," in sms.body and sms.segments == 2


WORST_AMOUNTS: dict[str, Any] = {
    "total": Decimal("1234567.89"),
    "late_fees": Decimal("296296.29"),
    "currency": "CNY",
    "promised_date": dt.date(2026, 12, 25),
    "days_past_due": 29,
    "kind": "overdue_notice",  # the longest en-US template
}


def test_longest_printable_name_is_truncated_with_an_ellipsis_to_stay_in_budget() -> None:
    name = "Bartholomew Montgomery-Featherstonehaugh"  # 40 characters: the longest printed
    assert len(name) == MAX_NAME_LENGTH
    full = reminder(name=name, fit_name=False, **WORST_AMOUNTS)
    assert full.segments > POLICY.max_segments
    sms = reminder(name=name, **WORST_AMOUNTS)
    assert sms.segments == POLICY.max_segments and sms.encoding == "GSM-7"
    shown = sms.body.split("Hi ", 1)[1].split(", your loan", 1)[0]
    assert shown.endswith("...") and name.startswith(shown[:-3]) and len(shown) > 30
    # As long as possible: no longer cut of the name fits the budget.
    for length in range(len(shown) - 2, len(name)):
        longer = name[:length].rstrip() + "..."
        if longer != shown:
            assert sms_encoding(sms.body.replace(shown, longer))[1] > POLICY.max_segments


def test_long_chinese_name_is_truncated_with_one_character_ellipsis() -> None:
    name = "欧阳" * 20  # 40 characters
    assert reminder(locale="zh-CN", name=name, fit_name=False, **WORST_AMOUNTS).segments > POLICY.max_segments
    sms = reminder(locale="zh-CN", name=name, **WORST_AMOUNTS)
    assert sms.segments <= POLICY.max_segments
    shown = sms.body.removeprefix("【信飞】").split("您好", 1)[0]
    assert shown.endswith("…") and name.startswith(shown[:-1]) and len(shown) > 10


def test_accents_are_folded_only_when_they_would_break_the_budget() -> None:
    sms = reminder(name="Zoë Dupont")
    assert (sms.encoding, sms.segments) == ("GSM-7", 2) and "Hi Zoe Dupont," in sms.body
    roomy = POLICY.model_copy(update={"max_segments": 6})
    kept = reminder(roomy, name="Zoë Dupont")
    assert kept.encoding == "UCS-2" and "Hi Zoë Dupont," in kept.body


def test_name_that_cannot_be_folded_is_cut_after_folding() -> None:
    # Ł has no GSM-7 form: the name is cut before it, keeping the folded "Zoe".
    assert "Hi Zoe...," in reminder(name="Zoë Łukasz").body


def test_name_over_budget_in_any_form_is_returned_as_is() -> None:
    tight = POLICY.model_copy(update={"max_segments": 1})
    sms = reminder(tight, name="Ann Lee")
    assert "Hi Ann Lee," in sms.body and sms.segments == 2


def test_name_with_line_breaks_or_invisible_characters_is_withheld() -> None:
    body = reminder(name=" Ann\n\tLee\u200b\u202e ").body
    assert "Hi there," in body and "Ann" not in body and "\n" not in body


def test_surrounding_and_repeated_spaces_are_tidied_in_a_printed_name() -> None:
    assert "Hi Ann Lee," in reminder(name="  Ann \u3000 Lee ").body


# --- service messages -----------------------------------------------------------------------------


@pytest.mark.parametrize("locale", LOCALES)
def test_payment_confirmation_shows_paid_and_remaining(locale: Locale) -> None:
    sms = render_service(POLICY, kind="payment_confirmation", locale=locale, name="Ann", currency="CNY",
                         reference=REF, paid=Decimal("500"), remaining=Decimal("750.4"))  # fmt: skip
    assert format_money(Decimal("500"), "CNY", locale) in sms.body
    assert format_money(Decimal("750.40"), "CNY", locale) in sms.body
    assert REF in sms.body and POLICY.hotline in sms.body
    assert sms.segments <= POLICY.max_segments


def test_payment_confirmation_needs_the_amounts() -> None:
    with pytest.raises(ValueError, match=r"\{paid\}"):
        render_service(POLICY, kind="payment_confirmation", locale="en-US", name="Ann", currency="USD",
                       reference=REF, remaining=Decimal(0))  # fmt: skip


@pytest.mark.parametrize("locale", LOCALES)
def test_opt_out_confirmation_needs_no_amounts(locale: Locale) -> None:
    sms = render_service(POLICY, kind="opt_out_confirmation", locale=locale, name="Ann", currency="USD",
                         reference=REF)  # fmt: skip
    assert POLICY.hotline in sms.body and sms.segments == 1
    assert "退订" in sms.body if locale == "zh-CN" else "opted out" in sms.body


# --- property: any realistic loan renders within budget ------------------------------------------

CENTS = st.integers(min_value=0, max_value=999_999_999)  # up to 9,999,999.99: 7 digits
LATIN_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ -'.éèëüöäñçÇåøÆßÉàâêîôûïÿ"
LATIN_NAME = st.text(
    alphabet=st.sampled_from(LATIN_LETTERS),
    min_size=1,
    max_size=120,
)
ANY_NAME = st.text(min_size=1, max_size=200)


@st.composite
def loans(draw: st.DrawFn) -> dict[str, Any]:
    locale: Locale = draw(st.sampled_from(LOCALES))
    total = Decimal(draw(CENTS)).scaleb(-2)
    # Late fees are capped at 24 % of the amount due, so at most ~19 % of the total owed.
    fees = Decimal(draw(st.integers(min_value=0, max_value=int(total * 19)))).scaleb(-2)
    due = draw(st.dates(min_value=dt.date(2025, 1, 1), max_value=dt.date(2035, 12, 31)))
    days = draw(st.integers(min_value=-3, max_value=99))
    return {
        "kind": draw(st.sampled_from(REMINDER_KINDS)),
        "locale": locale,
        "name": draw(ANY_NAME if locale == "zh-CN" else LATIN_NAME),
        "currency": draw(st.sampled_from(["CNY", "JPY"] if locale == "zh-CN" else ["USD", "CNY", "EUR"])),
        "total": total,
        "late_fees": fees,
        "days_past_due": days,
        "due_date": due,
        "pay_by": due + dt.timedelta(days=max(days, 0) + 3),
        "reference": reference_code(draw(st.text(min_size=1, max_size=20)), due.isoformat(), "x"),
        "loan_count": draw(st.integers(min_value=1, max_value=99)),
        "promised_date": draw(st.none() | st.just(due + dt.timedelta(days=5))),
    }


@settings(max_examples=300, deadline=None)
@given(loans())
def test_any_realistic_reminder_stays_in_budget_with_amount_and_reference(loan: dict[str, Any]) -> None:
    sms = render_reminder(POLICY, ReminderContext(**loan))
    assert sms.segments <= POLICY.max_segments
    assert (sms.encoding, sms.segments) == sms_encoding(sms.body)
    assert format_money(loan["total"], loan["currency"], loan["locale"]) in sms.body
    assert loan["reference"] in sms.body
    if loan["locale"] == "en-US":
        assert sms.encoding == "GSM-7"
    else:
        assert sms.body.startswith("【信飞】")


def test_en_us_reminder_to_a_name_outside_gsm7_greets_without_the_name_to_stay_within_budget() -> None:
    from dunning.compose import ReminderContext, render_reminder
    from dunning.models.policy import load_policy_file

    reminder = ReminderContext(
        kind="follow_up",
        locale="en-US",
        name="王小明",
        currency="USD",
        total=Decimal("1234567.89"),
        late_fees=Decimal("296296.29"),
        days_past_due=12,
        due_date=dt.date(2026, 11, 1),
        pay_by=dt.date(2026, 12, 1),
        reference="ABCDEF",
    )
    sms = render_reminder(load_policy_file(), reminder)
    assert sms.encoding == "GSM-7"
    assert sms.segments <= 2
    assert "Hi there," in sms.body
    assert "王" not in sms.body
