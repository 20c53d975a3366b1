"""Properties over random loans and clocks: what evaluate() and late_fees() must never do."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from babel.numbers import get_currency_precision
from hypothesis import given, settings
from hypothesis import strategies as st

from dunning import compliance, decisions, ladder
from dunning.models.loan import Loan, LoanStatus
from dunning.models.policy import load_policy_file
from dunning.models.state import LoanControl

POLICY = load_policy_file()
ZONES = ["Asia/Shanghai", "America/New_York", "Europe/London", "Asia/Kolkata", "Pacific/Auckland", "Pacific/Honolulu"]
PHONES = ["+8613800138000", "+12025550143", "+447911123456"]
CURRENCIES = ["CNY", "USD", "JPY", "KWD", "EUR"]
EPOCH = dt.date(2026, 1, 1)

clocks = st.datetimes(min_value=dt.datetime(2026, 1, 1), max_value=dt.datetime(2027, 12, 31), timezones=st.just(dt.UTC))


@st.composite
def money(draw: st.DrawFn, currency: str) -> Decimal:
    places = get_currency_precision(currency)
    minor = draw(st.integers(min_value=0, max_value=10**9))
    return Decimal(minor).scaleb(-places)


@st.composite
def loans(draw: st.DrawFn) -> Loan:
    currency = draw(st.sampled_from(CURRENCIES))
    late = draw(st.none() | money(currency))
    return Loan(
        loan_id=draw(st.from_regex(r"L-[0-9]{1,6}", fullmatch=True)),
        borrower_id="B-1",
        borrower_name="张三",
        phone=draw(st.sampled_from(PHONES)),
        status=draw(st.sampled_from(LoanStatus)),
        due_date=EPOCH + dt.timedelta(days=draw(st.integers(min_value=-60, max_value=800))),
        amount_due=draw(money(currency)),
        currency=currency,
        late_fees=late,
        locale=draw(st.sampled_from([None, "zh-CN", "en-US"])),
        timezone=draw(st.sampled_from([None, *ZONES])),
    )


@st.composite
def controls(draw: st.DrawFn) -> LoanControl | None:
    if draw(st.booleans()):
        return None
    paused = draw(st.none() | st.dates(min_value=dt.date(2025, 12, 1), max_value=dt.date(2028, 1, 31)))
    return LoanControl(
        loan_id="L-1",
        dispute_hold=draw(st.booleans()),
        paused_until=paused,
        pause_reason=draw(st.sampled_from([None, "promise_pending", "grace_period"])),
    )


def local_clocks(now: dt.datetime, subject: Loan) -> list[dt.time]:
    """The borrower's wall clock in each zone they may be in (the item's, else the phone number's)."""
    return [now.astimezone(ZoneInfo(zone)).time() for zone in decisions.borrower_timezones(subject, POLICY)]


@settings(max_examples=400, deadline=None)
@given(subject=loans(), control=controls(), now=clocks, opted_out=st.booleans())
def test_due_only_for_open_reachable_loans_inside_the_window(
    subject: Loan, control: LoanControl | None, now: dt.datetime, opted_out: bool
) -> None:
    verdict = decisions.evaluate(subject, control, now, POLICY, opted_out=opted_out)
    if not isinstance(verdict, decisions.Due):
        return
    assert subject.status is LoanStatus.OPEN
    assert not opted_out
    assert all(dt.time(9) <= clock < dt.time(20) for clock in local_clocks(now, subject))
    today = ladder.business_date(now, POLICY)
    assert -3 <= ladder.days_past_due(subject.due_date, today) < 30
    if control is not None:
        assert not control.dispute_hold
        assert control.paused_until is None or control.paused_until < today


@settings(max_examples=200, deadline=None)
@given(subject=loans(), now=clocks)
def test_an_evaluation_at_night_is_never_due(subject: Loan, now: dt.datetime) -> None:
    zone = ZoneInfo(decisions.borrower_timezone(subject, POLICY))
    night = dt.datetime.combine(now.astimezone(zone).date(), dt.time(20, 30), tzinfo=zone)
    verdict = decisions.evaluate(subject, None, night, POLICY, opted_out=False)
    assert not isinstance(verdict, decisions.Due)


@settings(max_examples=400, deadline=None)
@given(subject=loans(), today=st.dates(min_value=dt.date(2025, 10, 1), max_value=dt.date(2030, 1, 1)))
def test_late_fees_are_exact_to_the_minor_unit_and_never_above_the_cap(subject: Loan, today: dt.date) -> None:
    fees = ladder.late_fees(subject, today, POLICY)
    assert fees.as_tuple().exponent == -get_currency_precision(subject.currency)
    assert fees >= 0
    if subject.late_fees is not None:
        assert fees == subject.late_fees
        return
    assert fees <= subject.amount_due * POLICY.late_fee.cap_rate
    dpd = max(ladder.days_past_due(subject.due_date, today), 0)
    uncapped = (subject.amount_due * POLICY.late_fee.daily_rate * dpd).quantize(fees, rounding=ROUND_HALF_UP)
    # Below the cap the rule is applied exactly; at the cap it is within one minor unit of it.
    assert fees == uncapped or subject.amount_due * POLICY.late_fee.cap_rate - fees < Decimal(1).scaleb(
        fees.as_tuple().exponent
    )


@settings(max_examples=300, deadline=None)
@given(
    days=st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=120),
    daily=st.integers(min_value=1, max_value=3),
    weekly=st.integers(min_value=1, max_value=8),
)
def test_caps_never_allow_more_than_the_daily_or_rolling_weekly_limit(days: list[int], daily: int, weekly: int) -> None:
    """Borrowers asking on random days: whatever cap_reason lets through stays within both caps."""
    policy = POLICY.model_copy(
        update={
            "caps": POLICY.caps.model_copy(update={"per_borrower_per_day": daily, "per_borrower_per_7_days": weekly})
        }
    )
    start = dt.date(2026, 12, 1)
    sent: dict[dt.date, int] = {}
    for offset in sorted(days):
        today = start + dt.timedelta(days=offset)
        window = {d: n for d, n in sent.items() if 0 <= (today - d).days < 7}
        if compliance.cap_reason(window, today, policy) is None:
            sent[today] = sent.get(today, 0) + 1
    for day, count in sent.items():
        assert count <= daily
        assert sum(n for d, n in sent.items() if 0 <= (day - d).days < 7) <= weekly
