"""When and how often a borrower may be messaged (docs/contract.md#policy-file). Pure: (phone, zones, now, policy).

The borrower's zone is the loan's `timezone`, else every zone its phone number spans (phonenumbers'
time zone data: `+1 212` is New York, a `+7 9xx` mobile anywhere from Kaliningrad to Kamchatka),
else the policy default (`decisions.borrower_timezones`). A number that spans several zones gets the
window they all share: on a calendar day, the instants at which it is that day and inside the window
in every one of its zones. That shared window can be empty (zones too far apart for the window's
length: a `+7` mobile under a 10:00-18:00 policy): then no SMS goes to that number that day.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezone_data

from dunning.models.policy import Policy, Window

# The borrower's zone, or every zone their number spans (window checks only).
TimeZones = str | tuple[str, ...]
# What phonenumbers answers for a number it cannot place (toll-free, satellite, unknown prefixes).
UNKNOWN_ZONE = "Etc/Unknown"
# How far ahead next_window_open looks for a shared window: a week covers the days on which the
# zones of one number change their clocks on different dates and the shared window opens or closes.
WINDOW_SEARCH_DAYS = 8


@lru_cache(maxsize=65536)
def region_of(phone: str) -> str | None:
    """The number's country (ISO 3166 alpha-2); cached: every window check asks, hour after hour."""
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(phone, None))
    except phonenumbers.NumberParseException:
        return None


@lru_cache(maxsize=1024)
def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


@lru_cache(maxsize=65536)
def phone_timezones(phone: str) -> tuple[str, ...]:
    """The IANA zones the number's prefix is used in, sorted; () when phonenumbers cannot place it."""
    try:
        parsed = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return ()
    zones = phone_timezone_data.time_zones_for_number(parsed)
    # A zone this machine's tz database does not know is left out rather than fail the loan.
    return tuple(sorted({zone for zone in zones if zone != UNKNOWN_ZONE and _known_zone(zone)}))


def _zones(timezone: TimeZones) -> tuple[str, ...]:
    zones = (timezone,) if isinstance(timezone, str) else timezone
    if not zones:
        raise ValueError("at least one time zone is needed")
    return zones


def send_window(phone: str, policy: Policy) -> Window:
    """The policy window intersected with the rule of the phone's country."""
    window = policy.send_window
    rule = policy.country_windows.get(region_of(phone) or "")
    if rule is None:
        return window
    start, end = max(window.start, rule.start), min(window.end, rule.end)
    if start >= end:
        # Disjoint windows: nothing is allowed. An empty-width window expresses that.
        return Window.model_construct(start=start, end=start)
    return Window(start=start, end=end)


def local_time(now: dt.datetime, timezone: str) -> dt.datetime:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(ZoneInfo(timezone))


def in_send_window(now: dt.datetime, timezone: TimeZones, phone: str, policy: Policy) -> bool:
    """Inside the window in the borrower's zone; for several zones, the same day and inside it in every one."""
    window = send_window(phone, policy)
    days = set()
    for zone in _zones(timezone):
        local = local_time(now, zone)
        if not window.start <= local.time() < window.end:
            return False
        days.add(local.date())
    return len(days) == 1


def shared_window(
    day: dt.date, timezone: TimeZones, phone: str, policy: Policy
) -> tuple[dt.datetime, dt.datetime] | None:
    """The window of `day` (UTC start, end) that every zone shares; None when it is empty that day."""
    window = send_window(phone, policy)
    if window.start >= window.end:
        return None
    zones = _zones(timezone)
    start = max(dt.datetime.combine(day, window.start, tzinfo=ZoneInfo(zone)) for zone in zones)
    end = min(dt.datetime.combine(day, window.end, tzinfo=ZoneInfo(zone)) for zone in zones)
    if start >= end:
        return None
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def next_window_open(now: dt.datetime, timezone: TimeZones, phone: str, policy: Policy) -> dt.datetime | None:
    """The first instant at or after `now` inside the borrower's window (UTC).

    None when it does not open within WINDOW_SEARCH_DAYS: policy and country rules are disjoint,
    or the number's zones share no window on any of those days.
    """
    zones = _zones(timezone)
    first_day = min(local_time(now, zone).date() for zone in zones)
    for add_days in range(WINDOW_SEARCH_DAYS):
        window = shared_window(first_day + dt.timedelta(days=add_days), zones, phone, policy)
        if window is None:
            continue
        start, end = window
        if now < end:
            return max(start, now.astimezone(dt.UTC))
    return None


def next_local_midnight(now: dt.datetime, timezone: str) -> dt.datetime:
    local = local_time(now, timezone)
    tomorrow = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(0), tzinfo=ZoneInfo(timezone))
    return tomorrow.astimezone(dt.UTC)


def cap_reason(sent_by_day: dict[dt.date, int], today: dt.date, policy: Policy) -> str | None:
    """`cap_daily` / `cap_weekly` when one more SMS today would break the borrower's caps."""
    if sent_by_day.get(today, 0) >= policy.caps.per_borrower_per_day:
        return "cap_daily"
    week = sum(n for day, n in sent_by_day.items() if 0 <= (today - day).days < 7)
    if week >= policy.caps.per_borrower_per_7_days:
        return "cap_weekly"
    return None
