"""Render a policy template into the exact SMS body that is sent, recorded and billed."""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from string import Formatter

from dunning.compose.formatting import format_date, format_money
from dunning.compose.names import name_problem, printable_name
from dunning.compose.segments import Encoding, is_gsm7, sms_encoding
from dunning.models.loan import Locale
from dunning.models.policy import Policy, PolicyError
from dunning.observability import MetricUnit, logger, metrics

# Service messages answer something the borrower did; every other template kind is a reminder.
SERVICE_MESSAGE_KINDS = ("payment_confirmation", "opt_out_confirmation")
# Answers to an inbound SMS (HELP, a reference code to verify): service messages without a name.
REPLY_KINDS = ("help_reply", "verify_confirmed", "verify_settled", "verify_unmatched", "verify_malformed")

REMINDER_PLACEHOLDERS = frozenset(
    {
        "brand", "name", "total", "late_fees", "due_date", "pay_by", "days_past_due",
        "methods", "hotline", "reference", "loan_count", "promise",
    }
)  # fmt: skip
SERVICE_PLACEHOLDERS = frozenset({"brand", "name", "methods", "hotline", "reference", "paid", "remaining"})
# A reply shows a debt (total, pay-by) only when it confirms one to the number it was sent to, and
# echoes a code only when confirming it: the other replies must not tell a stranger anything.
_REPLY_COMMON = frozenset({"brand", "methods", "hotline"})
REPLY_PLACEHOLDERS: Mapping[str, frozenset[str]] = {
    "help_reply": _REPLY_COMMON,
    "verify_confirmed": _REPLY_COMMON | {"reference", "total", "pay_by"},
    "verify_settled": _REPLY_COMMON | {"reference"},
    "verify_unmatched": _REPLY_COMMON,
    "verify_malformed": _REPLY_COMMON,
}
FRAGMENT_PLACEHOLDERS: Mapping[str, frozenset[str]] = {
    "late_fees": frozenset({"fees"}),
    "promise": frozenset({"promised_date"}),
    "no_name": frozenset(),
}
# What {name} becomes when the name is withheld or cannot fit, for a policy without `fragments.no_name`:
# "Hi there," / "【信飞】您好，".
DEFAULT_NO_NAME: Mapping[Locale, str] = {"en-US": "there", "zh-CN": ""}


@dataclass(frozen=True)
class ComposedSms:
    """The exact text to publish and record, and how the carrier counts it."""

    body: str
    encoding: Encoding
    segments: int


def is_service_kind(kind: str) -> bool:
    return kind in SERVICE_MESSAGE_KINDS or kind in REPLY_KINDS


def is_reply_kind(kind: str) -> bool:
    return kind in REPLY_KINDS


@lru_cache(maxsize=256)
def _parse(template: str) -> tuple[str, ...] | str:
    """The placeholder names of a template, or why it cannot be used (a str)."""
    try:
        pieces = list(Formatter().parse(template))
    except ValueError as exc:
        return f"not a valid template: {exc}"
    names: list[str] = []
    for _, field, spec, conversion in pieces:
        if field is None:
            continue
        if spec or conversion:
            return f"placeholder {{{field}}} takes no format spec or conversion"
        names.append(field)
    return tuple(names)


def placeholders(template: str, where: str, allowed: frozenset[str]) -> tuple[str, ...]:
    """Placeholder names used by `template`; PolicyError (naming `where`) for anything else."""
    parsed = _parse(template)
    if isinstance(parsed, str):
        raise PolicyError(f"{where}: {parsed}")
    for name in parsed:
        # Plain names only: `{0}`, `{name.attr}` or `{name[0]}` would make format_map reach into values.
        if name not in allowed:
            choices = ", ".join(sorted(allowed))
            raise PolicyError(f"{where}: unknown placeholder {{{name}}} (allowed: {choices})")
    return parsed


class _Values(dict[str, str]):
    """format_map mapping that refuses, rather than renders, a name it was not given."""

    def __init__(self, values: Mapping[str, str], where: str) -> None:
        super().__init__(values)
        self.where = where

    def __missing__(self, key: str) -> str:
        raise PolicyError(f"{self.where}: unknown placeholder {{{key}}}")


def _fill(template: str, where: str, allowed: frozenset[str], values: Mapping[str, str]) -> str:
    placeholders(template, where, allowed)
    return template.format_map(_Values(values, where))


def _fragment(policy: Policy, name: str, locale: Locale, values: Mapping[str, str]) -> str:
    where = f"fragments.{name}.{locale}"
    text = policy.fragments.get(name, {}).get(locale)
    if text is None:
        raise PolicyError(f"{where} is missing")
    return _fill(text, where, FRAGMENT_PLACEHOLDERS[name], values)


def _template(policy: Policy, kind: str, locale: Locale) -> tuple[str, str]:
    where = f"templates.{kind}.{locale}"
    text = policy.templates.get(kind, {}).get(locale)
    if text is None:
        raise PolicyError(f"{where} is missing")
    return text, where


def _no_name(policy: Policy, locale: Locale) -> str:
    """The greeting's stand-in for a name: `fragments.no_name` of the policy, else DEFAULT_NO_NAME."""
    if locale not in policy.fragments.get("no_name", {}):
        return DEFAULT_NO_NAME[locale]
    return _fragment(policy, "no_name", locale, {})


def shown_name(raw: str, *, loan_id: str | None, reference: str) -> str | None:
    """The name to print, or None (withheld: counted and logged with the loan, never the name)."""
    name = printable_name(raw)
    if name is None and raw.strip():
        metrics.add_metric(name="NameWithheld", unit=MetricUnit.Count, value=1)
        logger.warning(
            "borrower name withheld from the SMS",
            extra={"loan_id": loan_id, "reference": reference, "reason": name_problem(raw)},
        )
    return name


def _fold_to_gsm(name: str) -> str:
    """`Zoë` -> `Zoe`: drop accents that would force a GSM-7 message into UCS-2."""
    out = []
    for c in name:
        if is_gsm7(c):
            out.append(c)
            continue
        base = "".join(d for d in unicodedata.normalize("NFKD", c) if not unicodedata.combining(d))
        out.append(base if base and is_gsm7(base) else c)
    return "".join(out)


def _compose(body: str) -> ComposedSms:
    encoding, segments = sms_encoding(body)
    return ComposedSms(body=body, encoding=encoding, segments=segments)


def _fit_name(
    render: Callable[[str], str], name: str | None, no_name: str, max_segments: int, fit: bool
) -> ComposedSms:
    """Render with the full name; if that breaks the budget, shorten only the name.

    No name (withheld, or none given) renders the policy's name-less greeting instead.
    """
    if name is None:
        return _compose(render(no_name))
    full = _compose(render(name))
    if not fit or full.segments <= max_segments:
        return full
    nameless = render("")
    if nameless == full.body:  # the template does not show the name: nothing to shorten
        return full
    base = name
    folded = _fold_to_gsm(name)
    if folded != name:
        attempt = _compose(render(folded))
        if attempt.segments <= max_segments:
            return attempt
        base = folded
    # "..." keeps a GSM-7 message GSM-7; "…" is one character where UCS-2 is spent anyway.
    ellipsis = "..." if is_gsm7(nameless) else "…"
    for length in range(len(base) - 1, 0, -1):
        attempt = _compose(render(base[:length].rstrip() + ellipsis))
        if attempt.segments <= max_segments:
            return attempt
    # A name that cannot be written in GSM-7 (e.g. 王小明 in an en-US SMS) would double the segments
    # whatever its length: greet without it ("Hi there," / "您好").
    anonymous = _compose(render(no_name))
    if anonymous.segments <= max_segments:
        return anonymous
    return full  # still over budget: send as rendered; `dunning policy check` flags such templates


def _check_money(label: str, amount: Decimal) -> None:
    if not isinstance(amount, Decimal):
        raise TypeError(f"{label} must be a Decimal, got {type(amount).__name__}")
    if amount < 0:
        raise ValueError(f"{label} must not be negative")


@dataclass(frozen=True)
class ReminderContext:
    """What a collection reminder (any ladder stage, or `consolidated` for several loans) says.

    `total` is what the borrower owes now, late fees included; `late_fees` is the part of it that
    is fees, shown through the `late_fees` fragment only when above zero. `name` is upstream text:
    printed only when it looks like a name (compose.names), else the SMS greets without it.
    `loan_id` only labels the log line of a withheld name. `promised_date`: a promise that passed
    unpaid, mentioned through the `promise` fragment.
    """

    kind: str
    locale: Locale
    name: str
    currency: str
    total: Decimal
    late_fees: Decimal
    days_past_due: int
    due_date: dt.date
    pay_by: dt.date
    reference: str
    loan_count: int = 1
    promised_date: dt.date | None = None
    loan_id: str | None = None

    def __post_init__(self) -> None:
        if is_service_kind(self.kind):
            raise ValueError(f"{self.kind} is a service message: use render_service")
        _check_money("total", self.total)
        _check_money("late_fees", self.late_fees)


def render_reminder(policy: Policy, reminder: ReminderContext, *, fit_name: bool = True) -> ComposedSms:
    """The reminder's SMS as `policy` words it.

    `fit_name=False` renders the full name even over budget (the policy lint measures that).
    """
    r = reminder
    template, where = _template(policy, r.kind, r.locale)
    used = placeholders(template, where, REMINDER_PLACEHOLDERS)
    values = {
        "brand": policy.brand[r.locale],
        "methods": policy.repayment_methods[r.locale],
        "hotline": policy.hotline,
        "reference": r.reference,
        "total": format_money(r.total, r.currency, r.locale),
        "due_date": format_date(r.due_date, r.locale),
        "pay_by": format_date(r.pay_by, r.locale),
        "days_past_due": str(r.days_past_due),
        "loan_count": str(r.loan_count),
        "late_fees": "",
        "promise": "",
    }
    if "late_fees" in used and r.late_fees > 0:
        fees = format_money(r.late_fees, r.currency, r.locale)
        values["late_fees"] = _fragment(policy, "late_fees", r.locale, {"fees": fees})
    if "promise" in used and r.promised_date is not None:
        promised = format_date(r.promised_date, r.locale)
        values["promise"] = _fragment(policy, "promise", r.locale, {"promised_date": promised})

    def render(shown: str) -> str:
        return _fill(template, where, REMINDER_PLACEHOLDERS, {**values, "name": shown})

    name_shown = shown_name(r.name, loan_id=r.loan_id, reference=r.reference)
    return _fit_name(render, name_shown, _no_name(policy, r.locale), policy.max_segments, fit_name)


@dataclass(frozen=True)
class ReminderMessage:
    """A composed collection SMS as the sender publishes and records it: one SMS for one or more loans."""

    body: str
    encoding: Encoding
    segments: int
    reference: str
    locale: Locale
    late_fees: Mapping[str, Decimal]  # by loan id: the fees each loan's record states

    @classmethod
    def of(cls, sms: ComposedSms, reminder: ReminderContext, late_fees: Mapping[str, Decimal]) -> ReminderMessage:
        return cls(sms.body, sms.encoding, sms.segments, reminder.reference, reminder.locale, dict(late_fees))


def render_service(
    policy: Policy,
    *,
    kind: str,
    locale: Locale,
    name: str,
    currency: str,
    reference: str,
    paid: Decimal | None = None,
    remaining: Decimal | None = None,
    fit_name: bool = True,
    loan_id: str | None = None,
) -> ComposedSms:
    """A service message: `payment_confirmation` (needs `paid`, `remaining`) or `opt_out_confirmation`.

    `name` is printed only when it looks like a name, as in render_reminder.
    """
    if not is_service_kind(kind):
        raise ValueError(f"{kind} is a reminder: use render_reminder")
    if is_reply_kind(kind):
        raise ValueError(f"{kind} answers an inbound SMS: use render_reply")
    template, where = _template(policy, kind, locale)
    used = placeholders(template, where, SERVICE_PLACEHOLDERS)
    values = {
        "brand": policy.brand[locale],
        "methods": policy.repayment_methods[locale],
        "hotline": policy.hotline,
        "reference": reference,
    }
    for label, amount in (("paid", paid), ("remaining", remaining)):
        if amount is not None:
            _check_money(label, amount)
            values[label] = format_money(amount, currency, locale)
        elif label in used:
            raise ValueError(f"{where} shows {{{label}}}: pass {label}")

    def render(shown: str) -> str:
        return _fill(template, where, SERVICE_PLACEHOLDERS, {**values, "name": shown})

    name_shown = shown_name(name, loan_id=loan_id, reference=reference)
    return _fit_name(render, name_shown, _no_name(policy, locale), policy.max_segments, fit_name)


def render_reply(
    policy: Policy,
    *,
    kind: str,
    locale: Locale,
    reference: str = "",
    currency: str | None = None,
    total: Decimal | None = None,
    pay_by: dt.date | None = None,
) -> ComposedSms:
    """An answer to an inbound SMS (REPLY_KINDS): HELP, or the outcome of verifying a reference code.

    No name: a reply goes to whoever texted. Only `verify_confirmed` may show `total` (owed now,
    in `currency`) and `pay_by`, and only it and `verify_settled` the `reference`: a template of
    another kind that uses them is refused (PolicyError), so no policy can make a reply to a
    stranger disclose a debt.
    """
    if not is_reply_kind(kind):
        raise ValueError(f"{kind} is not a reply: use render_reminder or render_service")
    template, where = _template(policy, kind, locale)
    allowed = REPLY_PLACEHOLDERS[kind]
    used = placeholders(template, where, allowed)
    values = {
        "brand": policy.brand[locale],
        "methods": policy.repayment_methods[locale],
        "hotline": policy.hotline,
        "reference": reference,
        "total": "",
        "pay_by": "",
    }
    if total is not None:
        _check_money("total", total)
        if currency is None:
            raise ValueError(f"{where}: pass the currency of total")
        values["total"] = format_money(total, currency, locale)
    elif "total" in used:
        raise ValueError(f"{where} shows {{total}}: pass total")
    if pay_by is not None:
        values["pay_by"] = format_date(pay_by, locale)
    elif "pay_by" in used:
        raise ValueError(f"{where} shows {{pay_by}}: pass pay_by")
    return _compose(_fill(template, where, allowed, values))
