"""Policy lint: refuse templates that break the SMS budget, miss an element, threaten or name others.

Run before deploy with `dunning policy check FILE`. Every problem names the template (stage kind
and locale) and the rule, e.g. `templates.follow_up.zh-CN: segments: renders in 3 SMS segments (max 2)`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from dunning.compose.formatting import format_date, format_money
from dunning.compose.reference import reference_code
from dunning.compose.render import (
    ComposedSms,
    is_reply_kind,
    is_service_kind,
    render_reminder,
    render_reply,
    render_service,
)
from dunning.compose.segments import is_gsm7
from dunning.models.loan import Locale
from dunning.models.policy import Policy, PolicyError, load_policy_file

OPT_OUT_LINES: dict[Locale, str] = {"zh-CN": "回T退订", "en-US": "Reply STOP to opt out"}

# Reviewed word lists. Chinese matches as substrings; English case-insensitively on word boundaries.
THREAT_WORDS_ZH = (
    "起诉", "上门", "曝光", "通讯录", "拘留", "坐牢", "法院", "黑名单", "联系你的家人", "联系您的家人",
    "诉讼", "律师函", "报警", "公安", "警察", "判刑", "刑事", "立案", "强制执行", "后果自负", "老赖",
)  # fmt: skip
THREAT_WORDS_EN = (
    "arrest", "arrested", "jail", "prison", "police", "lawsuit", "lawsuits", "sue", "sued", "suing",
    "tell your family", "your employer", "contacts", "shame", "shamed", "ashamed", "court",
    "criminal", "warrant", "legal action", "lawyer", "attorney", "seize", "garnish", "deadbeat",
    "blacklist", "expose",
)  # fmt: skip
THIRD_PARTY_WORDS_ZH = (
    "家人", "家属", "亲友", "亲属", "亲戚", "朋友", "同事", "单位", "领导", "紧急联系人", "联系人",
    "父母", "配偶",
)  # fmt: skip
THIRD_PARTY_WORDS_EN = (
    "family", "families", "relative", "relatives", "employer", "employers", "friend", "friends",
    "contacts", "emergency contact", "colleague", "colleagues", "coworker", "coworkers", "co-worker",
    "co-workers", "boss", "neighbor", "neighbors", "neighbour", "neighbours", "spouse", "parents",
)  # fmt: skip


def _word_pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<![A-Za-z])(?:{alternatives})(?![A-Za-z])", re.IGNORECASE)


_THREAT_EN = _word_pattern(THREAT_WORDS_EN)
_THIRD_PARTY_EN = _word_pattern(THIRD_PARTY_WORDS_EN)


@dataclass(frozen=True)
class LintProblem:
    """One refused template; `message` is the whole line to print (it names kind, locale and rule)."""

    kind: str
    locale: str
    rule: str
    message: str

    @classmethod
    def of(cls, kind: str, locale: str, rule: str, detail: str) -> LintProblem:
        return cls(kind, locale, rule, f"templates.{kind}.{locale}: {rule}: {detail}")

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class WorstCase:
    """Realistic longest values a template is measured with (docs/contract.md#policy-file: at most 2 segments)."""

    names: dict[Locale, str]
    currencies: tuple[str, ...]
    total: Decimal
    late_fees: Decimal
    loan_count: int
    due_date: dt.date
    pay_by: dt.date
    promised_date: dt.date


WORST_CASE = WorstCase(
    names={"zh-CN": "欧阳娜娜", "en-US": "Alexandra Montgomery-Smit"},  # 4 / 25 characters
    currencies=("CNY", "USD"),  # `¥`/`CN¥` and `US$`/`$`: the longest symbols the book lends in
    total=Decimal("1234567.89"),
    late_fees=Decimal("296296.29"),
    loan_count=12,
    due_date=dt.date(2026, 11, 28),  # dates with the longest spelling in both locales
    pay_by=dt.date(2026, 12, 30),
    promised_date=dt.date(2026, 12, 25),
)


def _find_words(body: str, zh_words: tuple[str, ...], en_pattern: re.Pattern[str]) -> list[str]:
    found = [w for w in zh_words if w in body]
    found += [m.group(0) for m in en_pattern.finditer(body)]
    return sorted(set(found), key=body.find)


def _overdue_kinds(policy: Policy) -> set[str]:
    """Kinds sent after the due date: these show the late fees and a pay-by date."""
    return {s.name for s in policy.ladder.stages if s.day > 0} | {"follow_up", "consolidated"}


def _sample_reference(kind: str) -> str:
    return reference_code("LINT-LOAN", WORST_CASE.due_date.isoformat(), kind)


def _render(
    policy: Policy, kind: str, locale: Locale, currency: str, days_past_due: int, name: str | None = None
) -> ComposedSms:
    """The template with worst-case values and every fragment, the name never shortened.

    `name=""` renders the name-less greeting (fragments.no_name) used when a name is withheld.
    """
    w = WORST_CASE
    name = w.names[locale] if name is None else name
    if is_reply_kind(kind):
        confirmed = kind == "verify_confirmed"
        return render_reply(
            policy, kind=kind, locale=locale, reference=_sample_reference(kind), currency=currency,
            total=w.total if confirmed else None, pay_by=w.pay_by if confirmed else None,
        )  # fmt: skip
    if is_service_kind(kind):
        return render_service(
            policy, kind=kind, locale=locale, name=name, currency=currency,
            reference=_sample_reference(kind), paid=w.total, remaining=w.late_fees, fit_name=False,
        )  # fmt: skip
    return render_reminder(
        policy, kind=kind, locale=locale, name=name, currency=currency, total=w.total,
        late_fees=w.late_fees, days_past_due=days_past_due, due_date=w.due_date, pay_by=w.pay_by,
        reference=_sample_reference(kind), loan_count=w.loan_count, promised_date=w.promised_date,
        fit_name=False,
    )  # fmt: skip


def _missing_elements(policy: Policy, kind: str, locale: Locale, body: str, overdue: bool) -> Iterator[str]:
    """What a reader of `body` (rendered in WORST_CASE.currencies[0]) cannot find."""
    w = WORST_CASE
    currency = w.currencies[0]
    brand = policy.brand[locale]
    signature = f"【{brand}】" if locale == "zh-CN" else brand
    if not body.startswith(signature):
        yield f"signature (must start with {signature})"
    amount, fees = format_money(w.total, currency, locale), format_money(w.late_fees, currency, locale)
    required: dict[str, str]
    if is_reply_kind(kind):
        yield from _missing_in_reply(policy, kind, locale, body)
        return
    if kind == "opt_out_confirmation":
        required = {"hotline": policy.hotline}
    elif kind == "payment_confirmation":
        required = {"amount paid": amount, "remaining amount": fees, "hotline": policy.hotline,
                    "reference": _sample_reference(kind)}  # fmt: skip
    else:
        required = {"amount": amount, "repayment methods": policy.repayment_methods[locale],
                    "hotline": policy.hotline, "reference": _sample_reference(kind)}  # fmt: skip
        if overdue:
            required["late fees"] = fees
    yield from (element for element, text in required.items() if text not in body)
    if is_service_kind(kind):
        return
    pay_by, due = format_date(w.pay_by, locale), format_date(w.due_date, locale)
    if overdue and pay_by not in body:
        yield "pay-by date"
    elif not overdue and pay_by not in body and due not in body:
        yield "pay-by or due date"
    if OPT_OUT_LINES[locale].lower() not in body.lower():
        yield f"opt-out line ({OPT_OUT_LINES[locale]})"


def _missing_in_reply(policy: Policy, kind: str, locale: Locale, body: str) -> Iterator[str]:
    """A reply always names the hotline; HELP and a confirmation also say how to opt out."""
    w = WORST_CASE
    required = {"hotline": policy.hotline}
    if kind == "verify_confirmed":
        required |= {
            "amount": format_money(w.total, w.currencies[0], locale),
            "pay-by date": format_date(w.pay_by, locale),
        }
    if kind in ("verify_confirmed", "verify_settled"):
        required["reference"] = _sample_reference(kind)
    yield from (element for element, text in required.items() if text not in body)
    if (
        kind in ("help_reply", "verify_confirmed", "verify_settled")
        and OPT_OUT_LINES[locale].lower() not in body.lower()
    ):
        yield f"opt-out line ({OPT_OUT_LINES[locale]})"


def _lint_template(policy: Policy, kind: str, locale: Locale) -> Iterator[LintProblem]:
    overdue = kind in _overdue_kinds(policy)
    # Two digits at least; more when the policy keeps collecting past day 99.
    days_past_due = max(policy.ladder.escalation_day - 1, 10) if overdue else -3
    try:
        rendered = [_render(policy, kind, locale, cur, days_past_due) for cur in WORST_CASE.currencies]
        # The same SMS to a borrower whose name is withheld: the no_name greeting must fit and be clean.
        rendered.append(_render(policy, kind, locale, WORST_CASE.currencies[0], days_past_due, name=""))
    except PolicyError as exc:
        message = str(exc).removeprefix(f"templates.{kind}.{locale}: ")
        yield LintProblem.of(kind, locale, "placeholder", message)
        return
    worst = max(rendered, key=lambda sms: sms.segments)
    if worst.segments > policy.max_segments:
        yield LintProblem.of(
            kind, locale, "segments", f"renders in {worst.segments} SMS segments (max {policy.max_segments})"
        )
    if locale == "en-US" and worst.encoding != "GSM-7":
        odd = "".join(sorted({c for sms in rendered for c in sms.body if not is_gsm7(c)}))
        message = f"needs UCS-2 because of {odd[:10]!r}; en-US text must stay GSM-7"
        yield LintProblem.of(kind, locale, "encoding", message)
    body = rendered[0].body
    missing = list(_missing_elements(policy, kind, locale, body, overdue))
    if missing:
        yield LintProblem.of(kind, locale, "missing_element", f"missing {', '.join(missing)}")
    # Names, amounts and dates are fixed sample values, so any hit comes from the policy's text.
    body = f"{body}\n{rendered[-1].body}"  # and the no_name greeting
    threats = _find_words(body, THREAT_WORDS_ZH, _THREAT_EN)
    if threats:
        message = f"uses threatening or shaming wording: {', '.join(threats)}"
        yield LintProblem.of(kind, locale, "threat", message)
    others = _find_words(body, THIRD_PARTY_WORDS_ZH, _THIRD_PARTY_EN)
    if others:
        message = f"mentions someone other than the borrower: {', '.join(others)}"
        yield LintProblem.of(kind, locale, "third_party", message)


def lint_policy(policy: Policy) -> list[LintProblem]:
    """Every problem of every template (kind x locale); an empty list means the policy may ship."""
    problems: list[LintProblem] = []
    for kind in sorted(policy.templates):
        for locale in sorted(policy.templates[kind]):
            problems.extend(_lint_template(policy, kind, locale))
    return problems


def check_policy_file(path: Path | str) -> list[LintProblem]:
    """Load, validate and lint a policy file; a document that does not load is one problem."""
    try:
        policy = load_policy_file(path)
    except PolicyError as exc:
        return [LintProblem("", "", "invalid", f"invalid: {exc}")]
    return lint_policy(policy)
