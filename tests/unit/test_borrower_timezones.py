"""The borrower's zone when upstream gives none: from the phone number; the shared window of a number spanning zones."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dunning import compliance, decisions
from dunning.decisions import Due, Wait
from dunning.models.policy import Policy, Window, load_policy_file
from tests.unit.loan_items import make_loan

POLICY = load_policy_file()
NEW_YORK_212 = "+12125550147"
HONOLULU_808 = "+18085550123"
CHINA_MOBILE = "+8613800138000"
RUSSIA_MOBILE = "+79123456789"  # a +7 9xx mobile: phonenumbers places it from Bucharest to Anadyr
AUSTRALIA_MOBILE = "+61412345678"  # a +61 4 mobile: Cocos Islands to Lord Howe Island
SYDNEY_LANDLINE = "+61212345678"
SATELLITE_MOBILE = "+881612345678"  # a satellite mobile: valid, but phonenumbers answers Etc/Unknown
DUE = dt.date(2026, 12, 8)  # courtesy from 12-05, due_today on 12-08, overdue after: a stage every day below


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)  # type: ignore[misc]


def narrow(start: int, end: int) -> Policy:
    return POLICY.model_copy(update={"send_window": Window(start=dt.time(start), end=dt.time(end))})


def test_the_number_gives_the_zone() -> None:
    assert compliance.phone_timezones(NEW_YORK_212) == ("America/New_York",)
    assert compliance.phone_timezones(HONOLULU_808) == ("Pacific/Honolulu",)
    assert compliance.phone_timezones(CHINA_MOBILE) == ("Asia/Shanghai",)
    assert compliance.phone_timezones(SYDNEY_LANDLINE) == ("Australia/Sydney",)
    russia = compliance.phone_timezones(RUSSIA_MOBILE)
    assert {"Europe/Moscow", "Asia/Kamchatka", "Asia/Anadyr", "Asia/Vladivostok"} <= set(russia)
    assert list(russia) == sorted(russia)
    assert {"Australia/Perth", "Australia/Sydney", "Indian/Cocos"} <= set(compliance.phone_timezones(AUSTRALIA_MOBILE))
    assert compliance.phone_timezones(SATELLITE_MOBILE) == ()  # "Etc/Unknown" is no zone
    assert compliance.phone_timezones("12345") == ()


def test_the_items_zone_wins_then_the_numbers_then_the_policys() -> None:
    assert decisions.borrower_timezones(make_loan(DUE, phone=NEW_YORK_212, timezone="Asia/Tokyo"), POLICY) == (
        "Asia/Tokyo",
    )
    assert decisions.borrower_timezones(make_loan(DUE, phone=NEW_YORK_212), POLICY) == ("America/New_York",)
    assert decisions.borrower_timezones(make_loan(DUE, phone=SATELLITE_MOBILE), POLICY) == (POLICY.default_timezone,)
    assert decisions.borrower_timezone(make_loan(DUE, phone=HONOLULU_808), POLICY) == "Pacific/Honolulu"
    several = make_loan(DUE, phone=RUSSIA_MOBILE)
    assert decisions.borrower_timezone(several, POLICY) == decisions.borrower_timezones(several, POLICY)[0]


def test_a_new_york_number_without_a_zone_is_not_texted_at_nine_pm_new_york() -> None:
    """The issue's case: 02:00Z is 10:00 in Shanghai (the policy default) but 21:00 in New York."""
    new_yorker = make_loan(DUE, phone=NEW_YORK_212, locale="en-US", currency="USD")
    night = utc(2026, 12, 8, 2, 0)
    verdict = decisions.evaluate(new_yorker, None, night, POLICY, opted_out=False)
    # The window opens at 09:00 New York (EST) = 14:00Z: what the planner's agenda wakes for.
    assert verdict == Wait("outside_window", utc(2026, 12, 8, 14, 0))
    assert compliance.next_window_open(night, ("America/New_York",), NEW_YORK_212, POLICY) == utc(2026, 12, 8, 14, 0)
    assert isinstance(decisions.evaluate(new_yorker, None, utc(2026, 12, 8, 14, 0), POLICY, opted_out=False), Due)


def test_honolulu() -> None:
    islander = make_loan(DUE, phone=HONOLULU_808, currency="USD")
    # 09:00 HST is 19:00Z; 20:00 HST is 06:00Z the next day.
    assert isinstance(decisions.evaluate(islander, None, utc(2026, 12, 7, 18, 0), POLICY, opted_out=False), Wait)
    assert isinstance(decisions.evaluate(islander, None, utc(2026, 12, 7, 19, 0), POLICY, opted_out=False), Due)
    assert isinstance(decisions.evaluate(islander, None, utc(2026, 12, 8, 5, 59), POLICY, opted_out=False), Due)
    assert isinstance(decisions.evaluate(islander, None, utc(2026, 12, 8, 6, 0), POLICY, opted_out=False), Wait)


def test_china_has_one_zone() -> None:
    zones = decisions.borrower_timezones(make_loan(DUE), POLICY)
    assert zones == ("Asia/Shanghai",)
    assert compliance.shared_window(DUE, zones, CHINA_MOBILE, POLICY) == (
        utc(2026, 12, 8, 1, 0),
        utc(2026, 12, 8, 12, 0),
    )


def test_russia_shares_one_hour_of_the_default_window_and_none_of_a_narrow_one() -> None:
    zones = compliance.phone_timezones(RUSSIA_MOBILE)
    # Winter: 09:00 in Bucharest (UTC+2) is 07:00Z; 20:00 in Anadyr (UTC+12) is 08:00Z.
    assert compliance.shared_window(DUE, zones, RUSSIA_MOBILE, POLICY) == (
        utc(2026, 12, 8, 7, 0),
        utc(2026, 12, 8, 8, 0),
    )
    assert compliance.in_send_window(utc(2026, 12, 8, 7, 30), zones, RUSSIA_MOBILE, POLICY)
    assert not compliance.in_send_window(utc(2026, 12, 8, 8, 0), zones, RUSSIA_MOBILE, POLICY)
    assert compliance.next_window_open(utc(2026, 12, 8, 8, 0), zones, RUSSIA_MOBILE, POLICY) == utc(2026, 12, 9, 7, 0)
    # Summer: Bucharest is UTC+3, the shared window two hours.
    assert compliance.shared_window(dt.date(2026, 7, 1), zones, RUSSIA_MOBILE, POLICY) == (
        utc(2026, 7, 1, 6, 0),
        utc(2026, 7, 1, 8, 0),
    )
    # 10:00-18:00 local everywhere from UTC+2 to UTC+12: no instant is inside all of them. No SMS.
    policy = narrow(10, 18)
    assert compliance.shared_window(DUE, zones, RUSSIA_MOBILE, policy) is None
    day = [utc(2026, 12, 8, 0, 0) + dt.timedelta(minutes=30 * n) for n in range(48)]
    assert not any(compliance.in_send_window(t, zones, RUSSIA_MOBILE, policy) for t in day)
    assert compliance.next_window_open(day[0], zones, RUSSIA_MOBILE, policy) is None
    borrower = make_loan(DUE, phone=RUSSIA_MOBILE, currency="RUB")
    assert all(isinstance(decisions.evaluate(borrower, None, t, policy, opted_out=False), Wait) for t in day)


def test_australia_mobile_gets_the_hours_its_zones_share() -> None:
    zones = compliance.phone_timezones(AUSTRALIA_MOBILE)
    # December: 09:00 on the Cocos Islands (UTC+6:30) is 02:30Z; 20:00 in Sydney and Lord Howe (UTC+11) is 09:00Z.
    assert compliance.shared_window(DUE, zones, AUSTRALIA_MOBILE, POLICY) == (
        utc(2026, 12, 8, 2, 30),
        utc(2026, 12, 8, 9, 0),
    )
    borrower = make_loan(DUE, phone=AUSTRALIA_MOBILE, currency="AUD", locale="en-US")
    # 01:00Z is 12:00 in Sydney (inside its own window) but 07:30 on Cocos: wait for 02:30Z.
    assert decisions.evaluate(borrower, None, utc(2026, 12, 8, 1, 0), POLICY, opted_out=False) == Wait(
        "outside_window", utc(2026, 12, 8, 2, 30)
    )
    assert isinstance(decisions.evaluate(borrower, None, utc(2026, 12, 8, 2, 30), POLICY, opted_out=False), Due)
    # A Sydney landline has one zone: its whole window.
    assert compliance.shared_window(DUE, ("Australia/Sydney",), SYDNEY_LANDLINE, POLICY) == (
        utc(2026, 12, 7, 22, 0),
        utc(2026, 12, 8, 9, 0),
    )


def test_a_number_phonenumbers_cannot_place_uses_the_policy_default() -> None:
    borrower = make_loan(DUE, phone=SATELLITE_MOBILE)
    # The default zone is Shanghai: 10:00 there.
    assert isinstance(decisions.evaluate(borrower, None, utc(2026, 12, 8, 2, 0), POLICY, opted_out=False), Due)
    assert isinstance(decisions.evaluate(borrower, None, utc(2026, 12, 8, 14, 0), POLICY, opted_out=False), Wait)


def test_the_local_day_is_the_same_in_every_zone_inside_the_shared_window() -> None:
    """Caps and pay-by count the borrower's local day in borrower_timezone: any zone gives that day there."""
    borrower = make_loan(DUE, phone=AUSTRALIA_MOBILE, currency="AUD")
    zones = decisions.borrower_timezones(borrower, POLICY)
    start, end = compliance.shared_window(DUE, zones, AUSTRALIA_MOBILE, POLICY) or pytest.fail("no window")
    for at in (start, start + (end - start) / 2, end - dt.timedelta(seconds=1)):
        day = compliance.local_time(at, decisions.borrower_timezone(borrower, POLICY)).date()
        assert day == DUE
        assert {compliance.local_time(at, zone).date() for zone in zones} == {DUE}


def test_zones_must_not_be_empty() -> None:
    with pytest.raises(ValueError, match="time zone"):
        compliance.in_send_window(utc(2026, 12, 8, 2, 0), (), CHINA_MOBILE, POLICY)


# Real numbers, one zone or many (the +1 800 freephone spans Guam to Pago Pago: it never shares a window).
PHONES = [
    NEW_YORK_212,
    HONOLULU_808,
    CHINA_MOBILE,
    RUSSIA_MOBILE,
    AUSTRALIA_MOBILE,
    "+61891234567",  # Perth and Adelaide
    "+19075550123",  # Alaska: Anchorage and Adak
    "+447911123456",
    "+18005550123",
]


@st.composite
def windows(draw: st.DrawFn) -> Window:
    """Daytime windows on quarter hours (away from the small hours in which clocks change)."""
    start = draw(st.integers(min_value=5 * 4, max_value=12 * 4))
    end = draw(st.integers(min_value=13 * 4, max_value=23 * 4))
    return Window(start=dt.time(start // 4, start % 4 * 15), end=dt.time(end // 4, end % 4 * 15))


@settings(max_examples=300, deadline=None)
@given(
    phone=st.sampled_from(PHONES),
    window=windows(),
    day=st.dates(min_value=dt.date(2026, 1, 1), max_value=dt.date(2027, 12, 31)),
    fraction=st.floats(min_value=0, max_value=1),
    clock=st.datetimes(
        min_value=dt.datetime(2026, 1, 1), max_value=dt.datetime(2027, 12, 31), timezones=st.just(dt.UTC)
    ),
)
def test_the_chosen_window_is_inside_every_zones_window(
    phone: str, window: Window, day: dt.date, fraction: float, clock: dt.datetime
) -> None:
    policy = POLICY.model_copy(update={"send_window": window, "country_windows": {}})
    zones = compliance.phone_timezones(phone)
    shared = compliance.shared_window(day, zones, phone, policy)
    if shared is not None:
        start, end = shared
        inside = [start, start + (end - start) * fraction, end - dt.timedelta(seconds=1)]
        for at in (t for t in inside if t < end):
            assert compliance.in_send_window(at, zones, phone, policy)
            for zone in zones:
                local = at.astimezone(ZoneInfo(zone))
                assert local.date() == day
                assert window.start <= local.time() < window.end
        assert not compliance.in_send_window(end, zones, phone, policy)
        assert not compliance.in_send_window(start - dt.timedelta(seconds=1), zones, phone, policy)
    # The planner's wake time and the sender's window agree: it opens exactly where the check says inside.
    opens = compliance.next_window_open(clock, zones, phone, policy)
    if compliance.in_send_window(clock, zones, phone, policy):
        assert opens == clock
    elif opens is not None:
        assert opens > clock
        assert compliance.in_send_window(opens, zones, phone, policy)
        assert not compliance.in_send_window(opens - dt.timedelta(seconds=1), zones, phone, policy)
