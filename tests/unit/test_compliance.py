"""Send window (policy 09:00-20:00 local, intersected with the phone country's rule) and caps."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from dunning import compliance
from dunning.models.policy import Policy, Window, load_policy_file

POLICY = load_policy_file()
CN_PHONE = "+8613800138000"
US_PHONE = "+12025550143"
GB_PHONE = "+447911123456"
SHANGHAI = "Asia/Shanghai"
NEW_YORK = "America/New_York"


def at(zone: str, *args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=ZoneInfo(zone))  # type: ignore[misc]


def wide_policy() -> Policy:
    """The default policy with a 07:00-23:00 window, so the country rules are what bites."""
    return POLICY.model_copy(update={"send_window": Window(start=dt.time(7), end=dt.time(23))})


def test_region_of_phone() -> None:
    assert compliance.region_of(CN_PHONE) == "CN"
    assert compliance.region_of(US_PHONE) == "US"
    assert compliance.region_of("12345") is None


def test_default_window_is_the_policys_for_both_countries() -> None:
    for phone in (CN_PHONE, US_PHONE, GB_PHONE):
        window = compliance.send_window(phone, POLICY)
        assert (window.start, window.end) == (dt.time(9), dt.time(20))


def test_country_rules_narrow_a_wider_policy_window() -> None:
    policy = wide_policy()
    us = compliance.send_window(US_PHONE, policy)
    cn = compliance.send_window(CN_PHONE, policy)
    gb = compliance.send_window(GB_PHONE, policy)  # no country rule: the policy window
    assert (us.start, us.end) == (dt.time(8), dt.time(21))
    assert (cn.start, cn.end) == (dt.time(8), dt.time(22))
    assert (gb.start, gb.end) == (dt.time(7), dt.time(23))
    assert not compliance.in_send_window(at(NEW_YORK, 2026, 11, 28, 7, 30), NEW_YORK, US_PHONE, policy)
    assert compliance.in_send_window(at(NEW_YORK, 2026, 11, 28, 20, 59), NEW_YORK, US_PHONE, policy)
    assert not compliance.in_send_window(at(NEW_YORK, 2026, 11, 28, 21, 0), NEW_YORK, US_PHONE, policy)
    assert compliance.in_send_window(at(SHANGHAI, 2026, 11, 28, 21, 59), SHANGHAI, CN_PHONE, policy)
    assert not compliance.in_send_window(at(SHANGHAI, 2026, 11, 28, 22, 0), SHANGHAI, CN_PHONE, policy)


def test_disjoint_windows_allow_nothing() -> None:
    policy = POLICY.model_copy(update={"send_window": Window(start=dt.time(22, 30), end=dt.time(23, 30))})
    window = compliance.send_window(US_PHONE, policy)
    assert window.start >= window.end
    for hour in range(24):
        assert not compliance.in_send_window(at(NEW_YORK, 2026, 11, 28, hour), NEW_YORK, US_PHONE, policy)
    assert compliance.next_window_open(at(NEW_YORK, 2026, 11, 28, 12), NEW_YORK, US_PHONE, policy) is None


@pytest.mark.parametrize(
    ("local", "inside"),
    [((8, 59), False), ((9, 0), True), ((12, 0), True), ((19, 59), True), ((20, 0), False), ((23, 0), False)],
)
def test_shanghai_window_edges(local: tuple[int, int], inside: bool) -> None:
    now = at(SHANGHAI, 2026, 11, 28, *local).astimezone(dt.UTC)
    assert compliance.in_send_window(now, SHANGHAI, CN_PHONE, POLICY) is inside


def test_window_is_in_the_borrowers_zone_not_the_phones_or_utc() -> None:
    now = dt.datetime(2026, 11, 28, 2, 0, tzinfo=dt.UTC)  # 10:00 Shanghai, 21:00 New York (day before)
    assert compliance.in_send_window(now, SHANGHAI, US_PHONE, POLICY)
    assert not compliance.in_send_window(now, NEW_YORK, US_PHONE, POLICY)


def test_new_york_window_follows_daylight_saving() -> None:
    # DST starts 2026-03-08 in New York: 13:30 UTC is 08:30 EST before, 09:30 EDT after.
    before = dt.datetime(2026, 3, 7, 13, 30, tzinfo=dt.UTC)
    after = dt.datetime(2026, 3, 9, 13, 30, tzinfo=dt.UTC)
    assert not compliance.in_send_window(before, NEW_YORK, US_PHONE, POLICY)
    assert compliance.in_send_window(after, NEW_YORK, US_PHONE, POLICY)
    # And it ends 2026-11-01: 00:30 UTC is 20:30 EDT before (closed), 19:30 EST after (open).
    assert not compliance.in_send_window(dt.datetime(2026, 10, 31, 0, 30, tzinfo=dt.UTC), NEW_YORK, US_PHONE, POLICY)
    assert compliance.in_send_window(dt.datetime(2026, 11, 3, 0, 30, tzinfo=dt.UTC), NEW_YORK, US_PHONE, POLICY)


def test_next_window_open_across_the_dst_change() -> None:
    # Saturday 2026-03-07 21:00 EST: next opening is Sunday 09:00 EDT = 13:00 UTC (not 14:00).
    now = at(NEW_YORK, 2026, 3, 7, 21, 0)
    assert compliance.next_window_open(now, NEW_YORK, US_PHONE, POLICY) == dt.datetime(2026, 3, 8, 13, 0, tzinfo=dt.UTC)
    # Saturday 2026-10-31 21:00 EDT: next is Sunday 09:00 EST = 14:00 UTC.
    now = at(NEW_YORK, 2026, 10, 31, 21, 0)
    assert compliance.next_window_open(now, NEW_YORK, US_PHONE, POLICY) == dt.datetime(
        2026, 11, 1, 14, 0, tzinfo=dt.UTC
    )


def test_next_window_open_in_shanghai() -> None:
    early = at(SHANGHAI, 2026, 11, 28, 6, 15)
    inside = at(SHANGHAI, 2026, 11, 28, 11, 15)
    late = at(SHANGHAI, 2026, 11, 28, 20, 0)
    assert compliance.next_window_open(early, SHANGHAI, CN_PHONE, POLICY) == at(SHANGHAI, 2026, 11, 28, 9, 0)
    assert compliance.next_window_open(inside, SHANGHAI, CN_PHONE, POLICY) == inside
    assert compliance.next_window_open(late, SHANGHAI, CN_PHONE, POLICY) == at(SHANGHAI, 2026, 11, 29, 9, 0)
    assert compliance.next_window_open(late, SHANGHAI, CN_PHONE, POLICY).tzinfo == dt.UTC


def test_next_local_midnight() -> None:
    assert compliance.next_local_midnight(at(SHANGHAI, 2026, 11, 28, 23, 59), SHANGHAI) == at(
        SHANGHAI, 2026, 11, 29, 0, 0
    )
    # The day before DST starts in New York is 24 h long; the midnight is EST-based.
    assert compliance.next_local_midnight(at(NEW_YORK, 2026, 3, 8, 1, 0), NEW_YORK) == dt.datetime(
        2026, 3, 9, 4, 0, tzinfo=dt.UTC
    )


def test_clock_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        compliance.in_send_window(dt.datetime(2026, 11, 28, 10), SHANGHAI, CN_PHONE, POLICY)


TODAY = dt.date(2026, 11, 28)


def days_ago(n: int) -> dt.date:
    return TODAY - dt.timedelta(days=n)


@pytest.mark.parametrize(
    ("sent_by_day", "expected"),
    [
        ({}, None),
        ({days_ago(1): 1}, None),
        ({TODAY: 1}, "cap_daily"),
        ({days_ago(1): 1, days_ago(2): 1, days_ago(4): 1}, None),  # 3 in the week: a 4th is allowed
        ({days_ago(1): 1, days_ago(2): 1, days_ago(4): 1, days_ago(6): 1}, "cap_weekly"),
        ({days_ago(1): 1, days_ago(2): 1, days_ago(4): 1, days_ago(7): 1}, None),  # rolling: day 7 is out
        ({days_ago(1): 4}, "cap_weekly"),
        ({TODAY + dt.timedelta(days=1): 3, days_ago(3): 1}, None),  # future days do not count
    ],
)
def test_caps_daily_and_rolling_week(sent_by_day: dict[dt.date, int], expected: str | None) -> None:
    assert compliance.cap_reason(sent_by_day, TODAY, POLICY) == expected
