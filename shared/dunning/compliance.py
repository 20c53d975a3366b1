"""When and how often a borrower may be messaged (DESIGN 5, 6). Pure functions of (phone, now, policy)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import phonenumbers

from dunning.models.policy import Policy, Window


def region_of(phone: str) -> str | None:
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(phone, None))
    except phonenumbers.NumberParseException:
        return None


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


def in_send_window(now: dt.datetime, timezone: str, phone: str, policy: Policy) -> bool:
    window = send_window(phone, policy)
    local = local_time(now, timezone).time()
    return window.start <= local < window.end


def next_window_open(now: dt.datetime, timezone: str, phone: str, policy: Policy) -> dt.datetime | None:
    """The first instant at or after `now` inside the borrower's window (UTC); None if it never opens."""
    window = send_window(phone, policy)
    local = local_time(now, timezone)
    if window.start >= window.end:
        return None  # policy and country rules are disjoint: nothing is ever allowed
    for add_days in range(0, 3):
        day = local.date() + dt.timedelta(days=add_days)
        start = dt.datetime.combine(day, window.start, tzinfo=ZoneInfo(timezone))
        end = dt.datetime.combine(day, window.end, tzinfo=ZoneInfo(timezone))
        if local < end:
            return max(start, local).astimezone(dt.UTC)
    raise AssertionError("unreachable: a non-empty window opens within two days")


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
