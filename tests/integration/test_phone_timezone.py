"""The borrower's zone from the phone number, on the moto stack: planner, agenda and sender agree."""

from __future__ import annotations

import datetime as dt

from dunning_tools.local import LocalStack
from tests.conftest import RunHours
from tests.integration.borrower_helpers import put_loan, records, sms_sent

NY_PHONE = "+12125550147"
NINE_PM_NEW_YORK = dt.datetime(2026, 11, 28, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai, the policy's default zone
NY_WINDOW_OPENS = dt.datetime(2026, 11, 28, 14, 0, tzinfo=dt.UTC)  # 09:00 in New York


def test_a_new_york_number_without_a_zone_waits_for_nine_am_new_york(
    local_stack: LocalStack, run_hours: RunHours
) -> None:
    put_loan(
        local_stack,
        loan_id="L-NY",
        borrower_id="B-NY",
        borrower_name="Jane Roe",
        phone=NY_PHONE,
        due_date="2026-11-20",
        amount_due="420.50",
        currency="USD",
        locale="en-US",
    )  # no `timezone`: the number says New York

    reports = run_hours(local_stack, NINE_PM_NEW_YORK, 13, fires=1)  # 02:00Z .. 14:00Z

    assert [r["jobs_enqueued"] for r in reports] == [0] * 12 + [1]
    assert reports[0]["waiting"] == {"outside_window": 1}
    # The agenda wakes the planner for New York's window, not an hour later.
    assert any(r["asleep_until"] == "2026-11-28T14:00:00.000Z" for r in reports)
    (sent,) = records(local_stack)
    assert (sent["outcome"], sent["created_at"]) == ("SENT", "2026-11-28T14:00:00.000Z")
    (body,) = sms_sent(NY_PHONE)
    assert "by Dec 1, 2026" in body  # pay-by: New York's 11-28 plus 3 days
