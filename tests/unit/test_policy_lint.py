"""Policy lint: the default policy passes; broken templates are refused naming stage, locale and rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from dunning.compose import REPLY_KINDS, format_money, render_reminder, render_reply, render_service
from dunning.models.loan import Locale
from dunning.models.policy import DEFAULT_POLICY_PATH, Policy, load_policy_file
from dunning_tools.policy_lint import WORST_CASE, LintProblem, check_policy_file, lint_policy

POLICY = load_policy_file()
LOCALES: tuple[Locale, ...] = ("zh-CN", "en-US")
ALL_TEMPLATES = [(kind, locale) for kind in sorted(POLICY.templates) for locale in LOCALES]


def with_template(kind: str, locale: Locale, text: str) -> Policy:
    templates = {k: dict(v) for k, v in POLICY.templates.items()}
    templates[kind][locale] = text
    return POLICY.model_copy(update={"templates": templates})


def problems_of(policy: Policy, kind: str, locale: str) -> dict[str, LintProblem]:
    found = [p for p in lint_policy(policy) if (p.kind, p.locale) == (kind, locale)]
    return {p.rule: p for p in found}


def test_default_policy_passes() -> None:
    assert lint_policy(POLICY) == []
    assert check_policy_file(DEFAULT_POLICY_PATH) == []


@pytest.mark.parametrize(("kind", "locale"), ALL_TEMPLATES)
def test_every_default_template_fits_the_budget_in_the_worst_case(kind: str, locale: Locale) -> None:
    for currency in WORST_CASE.currencies:
        common: dict[str, Any] = {"kind": kind, "locale": locale, "name": WORST_CASE.names[locale],
                                  "currency": currency, "reference": "ABCDEF", "fit_name": False}  # fmt: skip
        if kind in REPLY_KINDS:
            confirmed = kind == "verify_confirmed"
            sms = render_reply(
                POLICY, kind=kind, locale=locale, reference="ABCDEF", currency=currency,
                total=WORST_CASE.total if confirmed else None, pay_by=WORST_CASE.pay_by if confirmed else None,
            )  # fmt: skip
            if confirmed:
                assert format_money(WORST_CASE.total, currency, locale) in sms.body
        elif kind in ("payment_confirmation", "opt_out_confirmation"):
            sms = render_service(POLICY, paid=WORST_CASE.total, remaining=WORST_CASE.late_fees, **common)
        else:
            sms = render_reminder(
                POLICY, total=WORST_CASE.total, late_fees=WORST_CASE.late_fees, days_past_due=29,
                due_date=WORST_CASE.due_date, pay_by=WORST_CASE.pay_by, loan_count=WORST_CASE.loan_count,
                promised_date=WORST_CASE.promised_date, **common,
            )  # fmt: skip
            if kind not in ("courtesy", "due_today"):
                assert format_money(WORST_CASE.late_fees, currency, locale) in sms.body
        if "{name}" in POLICY.templates[kind][locale]:
            assert WORST_CASE.names[locale] in sms.body  # measured with the full name
        assert sms.segments <= POLICY.max_segments, sms.body
        if locale == "en-US":
            assert sms.encoding == "GSM-7"


def test_problem_names_stage_locale_and_rule() -> None:
    problem = LintProblem.of("follow_up", "zh-CN", "segments", "renders in 3 SMS segments (max 2)")
    assert problem.message == "templates.follow_up.zh-CN: segments: renders in 3 SMS segments (max 2)"
    assert str(problem) == problem.message


def test_three_segment_template_is_refused() -> None:
    long = POLICY.templates["follow_up"]["en-US"].replace(
        "Reply STOP", "Thank you for banking with us, we value you as a customer. Reply STOP"
    )
    problems = lint_policy(with_template("follow_up", "en-US", long))
    expected = "templates.follow_up.en-US: segments: renders in 3 SMS segments (max 2)"
    assert [str(p) for p in problems] == [expected]


def test_template_that_fits_only_by_shortening_the_name_is_refused() -> None:
    # A few characters over: rendering would cut the 25-character name, the lint must not.
    text = POLICY.templates["overdue_notice"]["en-US"].replace("Reply STOP", "Thanks! Reply STOP")
    policy = with_template("overdue_notice", "en-US", text)
    w = WORST_CASE
    sent = render_reminder(
        policy, kind="overdue_notice", locale="en-US", name=w.names["en-US"], currency="CNY",
        total=w.total, late_fees=w.late_fees, days_past_due=29, due_date=w.due_date, pay_by=w.pay_by,
        reference="ABCDEF", promised_date=w.promised_date,
    )  # fmt: skip
    assert sent.segments == 2 and w.names["en-US"] not in sent.body
    problems = problems_of(policy, "overdue_notice", "en-US")
    expected = "templates.overdue_notice.en-US: segments: renders in 3 SMS segments (max 2)"
    assert problems["segments"].message == expected


def test_zh_template_over_budget_is_refused() -> None:
    long = POLICY.templates["overdue_notice"]["zh-CN"].replace("回T退订", "感谢您的支持。回T退订")
    problems = problems_of(with_template("overdue_notice", "zh-CN", long), "overdue_notice", "zh-CN")
    assert str(problems["segments"]).startswith("templates.overdue_notice.zh-CN: segments: renders in 3")


THREATS_ZH = ["起诉", "上门", "曝光", "通讯录", "拘留", "坐牢", "法院", "黑名单", "联系你的家人"]
THREATS_EN = ["arrest", "jail", "prison", "police", "lawsuit", "sue", "tell your family", "your employer",
              "contacts", "shame"]  # fmt: skip


@pytest.mark.parametrize("word", THREATS_ZH)
def test_chinese_threat_words_are_refused(word: str) -> None:
    text = POLICY.templates["follow_up"]["zh-CN"].replace("官方客服", f"否则{word}。官方客服")
    problem = problems_of(with_template("follow_up", "zh-CN", text), "follow_up", "zh-CN")["threat"]
    assert str(problem).startswith("templates.follow_up.zh-CN: threat: ") and word in problem.message


@pytest.mark.parametrize("word", THREATS_EN)
def test_english_threat_words_are_refused_in_any_case(word: str) -> None:
    text = POLICY.templates["courtesy"]["en-US"].replace("Official", f"Or {word.upper()}. Official")
    problem = problems_of(with_template("courtesy", "en-US", text), "courtesy", "en-US")["threat"]
    assert str(problem).startswith("templates.courtesy.en-US: threat: ")
    assert word.upper() in problem.message


@pytest.mark.parametrize("harmless", ["Any issue?", "Pursue savings", "Thanks for the courtesy"])
def test_english_threat_words_match_whole_words_only(harmless: str) -> None:
    text = POLICY.templates["courtesy"]["en-US"].replace("Official", f"{harmless}. Official")
    assert "threat" not in problems_of(with_template("courtesy", "en-US", text), "courtesy", "en-US")


@pytest.mark.parametrize(
    ("locale", "insert", "word"),
    [
        ("zh-CN", "我们将告知您的亲友。", "亲友"),
        ("zh-CN", "请转告您的同事。", "同事"),
        ("zh-CN", "或联系您单位。", "单位"),
        ("zh-CN", "已通知紧急联系人。", "紧急联系人"),
        ("zh-CN", "请家人代为还款。", "家人"),
        ("en-US", "Ask your relatives to help. ", "relatives"),
        ("en-US", "We may call your Employer. ", "Employer"),
        ("en-US", "Your friends can pay too. ", "friends"),
    ],
)
def test_third_party_mentions_are_refused(locale: Locale, insert: str, word: str) -> None:
    text = POLICY.templates["overdue_notice"][locale]
    marker = "官方客服" if locale == "zh-CN" else "Official"
    policy = with_template("overdue_notice", locale, text.replace(marker, insert + marker))
    problem = problems_of(policy, "overdue_notice", locale)["third_party"]
    assert str(problem).startswith(f"templates.overdue_notice.{locale}: third_party: ")
    assert word in problem.message


def test_missing_hotline_is_refused() -> None:
    text = POLICY.templates["follow_up"]["en-US"].replace("Official helpline {hotline}, ", "")
    problems = lint_policy(with_template("follow_up", "en-US", text))
    assert [str(p) for p in problems] == ["templates.follow_up.en-US: missing_element: missing hotline"]


@pytest.mark.parametrize(
    ("kind", "locale", "old", "new", "element"),
    [
        ("overdue_notice", "zh-CN", "应还{total}", "", "amount"),
        ("overdue_notice", "zh-CN", "{late_fees}", "", "late fees"),
        ("overdue_notice", "en-US", "by {pay_by} ", "", "pay-by date"),
        ("courtesy", "en-US", " on {due_date}", "", "pay-by or due date"),
        ("follow_up", "en-US", "via {methods}", "", "repayment methods"),
        ("consolidated", "zh-CN", "参考码{reference}", "", "reference"),
        ("courtesy", "zh-CN", "回T退订", "", "opt-out line"),
        ("due_today", "en-US", "Reply STOP to opt out", "Text us", "opt-out line"),
        ("follow_up", "zh-CN", "【{brand}】{name}您好，", "{name}您好，【{brand}】", "signature"),
        ("courtesy", "en-US", "{brand}: ", "", "signature"),
        ("payment_confirmation", "en-US", "{paid}", "it", "amount paid"),
        ("opt_out_confirmation", "zh-CN", "{hotline}", "", "hotline"),
    ],
)
def test_missing_elements_are_refused(kind: str, locale: Locale, old: str, new: str, element: str) -> None:
    text = POLICY.templates[kind][locale]
    assert old in text
    policy = with_template(kind, locale, text.replace(old, new))
    problem = problems_of(policy, kind, locale)["missing_element"]
    assert str(problem).startswith(f"templates.{kind}.{locale}: missing_element: missing ")
    assert element in problem.message


def test_hardcoded_values_count_as_present() -> None:
    text = POLICY.templates["follow_up"]["en-US"].replace("{hotline}", POLICY.hotline)
    assert lint_policy(with_template("follow_up", "en-US", text)) == []


def test_unknown_placeholder_is_refused() -> None:
    text = POLICY.templates["follow_up"]["zh-CN"].replace("{total}", "{amount}")
    problem = problems_of(with_template("follow_up", "zh-CN", text), "follow_up", "zh-CN")["placeholder"]
    assert str(problem).startswith("templates.follow_up.zh-CN: placeholder: unknown placeholder {amount}")


def test_non_gsm_character_in_english_template_is_refused() -> None:
    text = POLICY.templates["opt_out_confirmation"]["en-US"].replace("You have", "You’ve")
    policy = with_template("opt_out_confirmation", "en-US", text)
    assert "’" in problems_of(policy, "opt_out_confirmation", "en-US")["encoding"].message


def test_policy_file_that_does_not_load_is_one_problem(tmp_path: Path) -> None:
    broken = tmp_path / "policy.yaml"
    broken.write_text("version: [\n", encoding="utf-8")
    [problem] = check_policy_file(broken)
    assert problem.rule == "invalid" and problem.message.startswith(f"invalid: {broken}: not valid YAML")
    assert check_policy_file(tmp_path / "missing.yaml")[0].rule == "invalid"


def test_policy_file_is_linted(tmp_path: Path) -> None:
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    templates = data["templates"]["follow_up"]
    templates["zh-CN"] = templates["zh-CN"].replace("官方客服", "起诉家人")  # same length: no segment problem
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    rules = {(p.kind, p.locale, p.rule) for p in check_policy_file(path)}
    assert rules == {("follow_up", "zh-CN", "threat"), ("follow_up", "zh-CN", "third_party")}
