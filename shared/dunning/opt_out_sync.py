"""SNS's own opt-out list, copied into the product's opt-out items (SyncOptOutsFunction, scheduled).

A borrower who replies STOP to an SNS-managed number lands on SNS's list (ListPhoneNumbersOptedOut),
which the product never hears about by event. The sender used to ask SNS about every number before
every SMS (CheckIfPhoneNumberIsOptedOut, one call per SMS); instead this run copies the list, page
by page, into `PHONEHASH#h / OPTOUT` items (source `sns`), which the planner reads and the sender's
pre-publish transaction ConditionChecks with every SMS. Between two runs a number SNS has just
opted out is not yet known here, and SNS itself still refuses to deliver to it (docs/exactly-once.md).

Numbers already opted out in the product are left as they are (their source stays); only new ones
are written, each with a conditional put. A run that nears its time limit stops between pages and
leaves SNS's page token in `OPTOUT_SYNC / CURSOR`: the next run goes on from there.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from dunning.dal.sms import SmsGateway
from dunning.dal.state import StateRepository
from dunning.models.loan import e164
from dunning.observability import MetricUnit, logger, metrics

SOURCE = "sns"
SOURCE_ID = "ListPhoneNumbersOptedOut"


@dataclass
class SyncReport:
    listed: int = 0
    added: int = 0
    invalid: int = 0
    complete: bool = True

    def as_dict(self) -> dict[str, object]:
        return {"listed": self.listed, "added": self.added, "invalid": self.invalid, "complete": self.complete}


@dataclass
class OptOutSync:
    state: StateRepository
    sms: SmsGateway

    def run(
        self, now: dt.datetime, time_left: Callable[[], float] = lambda: float("inf"), min_seconds_left: float = 20.0
    ) -> SyncReport:
        report = SyncReport()
        start = self.state.opt_out_sync_cursor()
        for page, next_token in self.sms.opted_out_pages(start):
            report.listed += len(page)
            numbers = []
            for number in page:
                try:
                    numbers.append(e164(number))
                except ValueError:
                    report.invalid += 1  # never a number we could text: nothing to stop
            known = self.state.opted_out_among(numbers)
            for number in numbers:
                if number not in known:
                    self.state.opt_out(number, SOURCE, SOURCE_ID, now)
                    report.added += 1
            if next_token and time_left() < min_seconds_left:
                self.state.save_opt_out_sync_cursor(next_token)
                report.complete = False
                break
        else:
            if start:
                self.state.save_opt_out_sync_cursor(None)
        metrics.add_metric(name="OptOutsSynced", unit=MetricUnit.Count, value=report.added)
        logger.info("SNS opt-out list synced", extra={"report": report.as_dict()})
        return report
