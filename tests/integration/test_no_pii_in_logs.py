"""No phone number, borrower name or message body in the logs (docs/contract.md#guarantees), on a full run.

The moto stack runs what a day of production runs: the planner for scheduled hours, the queue
drained into the sender, SNS delivery-status logs into RecordDeliveryFunction, a STOP reply into
InboundSmsFunction. Everything the process prints (Powertools JSON logs at DEBUG, EMF metrics)
and every other log record at WARNING is captured and searched for the seeded personal data,
raw and as JSON escapes (Powertools writes non-ASCII as \\uXXXX).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import time_machine
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns import sns_backends

from dunning.observability import logger
from dunning_tools.local import LocalStack, invoke
from tests.conftest import RunHours, opt_out_at_sns
from tests.integration.after_sms_helpers import delivery_status_event

EVENTS = Path(__file__).resolve().parents[2] / "events"
SHANGHAI_MORNING = dt.datetime(2026, 11, 23, 2, tzinfo=dt.UTC)  # 10:00 in Shanghai
NEW_YORK_MORNING = dt.datetime(2026, 11, 23, 15, tzinfo=dt.UTC)  # 10:00 in New York

BOOK: list[dict[str, Any]] = [
    {  # overdue, Chinese template
        "loan_id": "PII-1",
        "borrower_id": "PB-1",
        "borrower_name": "韩梅梅",
        "phone": "+8613912345678",
        "status": "OPEN",
        "due_date": "2026-11-20",
        "amount_due": Decimal("2400.00"),
        "currency": "CNY",
    },
    {  # overdue, English template, another time zone
        "loan_id": "PII-2",
        "borrower_id": "PB-2",
        "borrower_name": "Theodora Quill",
        "phone": "+12025550187",
        "status": "OPEN",
        "due_date": "2026-11-20",
        "amount_due": Decimal("420.50"),
        "currency": "USD",
        "locale": "en-US",
        "timezone": "America/New_York",
    },
    {  # on SNS's opt-out list (copied by the sync): suppressed, never sent
        "loan_id": "PII-3",
        "borrower_id": "PB-3",
        "borrower_name": "欧阳娜娜",
        "phone": "+8613766554399",
        "status": "OPEN",
        "due_date": "2026-11-20",
        "amount_due": Decimal("900.00"),
        "currency": "CNY",
    },
    {  # malformed (amount): skipped with a reason that must not quote the person
        "loan_id": "PII-4",
        "borrower_id": "PB-4",
        "borrower_name": "Marguerite Vandersloot",
        "phone": "+8615011223344",
        "status": "OPEN",
        "due_date": "2026-11-20",
        "amount_due": "abc",
        "currency": "CNY",
    },
]


class _CurrentStdout:
    """A stream that writes to whatever `sys.stdout` is at the time of writing."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture
def debug_logs(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], str]]:
    """What Lambda would ship to CloudWatch Logs from here on: everything printed (our Logger at
    DEBUG, EMF metrics) and other libraries' log records at WARNING, Python's default level
    (at DEBUG botocore logs whole requests, phone numbers included, in any program).

    Powertools binds its handler to the sys.stdout of import time; point it at whatever
    sys.stdout is when it writes (and restore it after), so capsys captures it like print().
    """
    handlers = [h for h in logging.getLogger(logger.name).handlers if isinstance(h, logging.StreamHandler)]
    assert handlers, f"no stream handler on the {logger.name!r} logger"
    previous_streams, previous_level = [h.stream for h in handlers], logger.log_level
    for handler in handlers:
        handler.setStream(_CurrentStdout())
    logger.setLevel(logging.DEBUG)
    caplog.set_level(logging.WARNING)
    capsys.readouterr()
    try:
        yield lambda: capsys.readouterr().out + "\n".join(record.getMessage() for record in caplog.records)
    finally:
        for handler, stream in zip(handlers, previous_streams, strict=True):
            handler.setStream(stream)
        logger.setLevel(previous_level)


def _spellings(text: str) -> set[str]:
    """The ways `text` can appear in a log line: as is and JSON-escaped (ASCII and non-ASCII)."""
    return {text, json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1]}


def _phone_spellings(phone: str) -> set[str]:
    digits = phone.lstrip("+")
    national = digits[2:] if digits.startswith("86") else digits[1:]  # +86 / +1 numbers in the book
    return {phone, digits, national}


def _secrets(book: list[dict[str, Any]], sms: dict[str, tuple[str, str]]) -> dict[str, set[str]]:
    """What must never be logged, by what it is: each borrower's phone and name, each SMS body."""
    secrets: dict[str, set[str]] = {}
    for item in book:
        secrets[f"{item['loan_id']} phone"] = _phone_spellings(item["phone"])
        secrets[f"{item['loan_id']} name"] = _spellings(item["borrower_name"])
    for message_id, (_, body) in sms.items():
        # The whole body, and its longest line (a body logged in pieces still leaks).
        longest_line = max(body.splitlines(), key=len)
        secrets[f"body of {message_id}"] = _spellings(body) | _spellings(longest_line)
    return secrets


def _leaks(output: str, secrets: dict[str, set[str]]) -> dict[str, list[str]]:
    found = {what: sorted(s for s in spellings if s in output) for what, spellings in secrets.items()}
    return {what: spellings for what, spellings in found.items() if spellings}


def _stop_reply(phone: str) -> dict[str, Any]:
    """events/inbound_sms_stop.json, sent from `phone`."""
    event: dict[str, Any] = json.loads((EVENTS / "inbound_sms_stop.json").read_text(encoding="utf-8"))
    sns = event["Records"][0]["Sns"]
    sns["Message"] = json.dumps({**json.loads(sns["Message"]), "originationNumber": phone})
    return event


def test_a_full_run_logs_no_phone_name_or_message_body(
    local_stack: LocalStack,
    seed_loans: Callable[..., None],
    run_hours: RunHours,
    debug_logs: Callable[[], str],
) -> None:
    seed_loans(*BOOK)
    opt_out_at_sns(local_stack, "+8613766554399")

    run_hours(local_stack, SHANGHAI_MORNING, 1)
    run_hours(local_stack, NEW_YORK_MORNING, 1)
    sms = dict(sns_backends[DEFAULT_ACCOUNT_ID][local_stack.region].sms_messages)
    delivered_at = NEW_YORK_MORNING + dt.timedelta(minutes=5)
    with time_machine.travel(delivered_at, tick=False):
        for message_id, (phone, _) in sms.items():
            invoke(local_stack, "RecordDeliveryFunction", delivery_status_event(message_id, phone, delivered_at))
        invoke(local_stack, "InboundSmsFunction", _stop_reply(BOOK[0]["phone"]))
    output = debug_logs()

    # The run did what it should, so there was something to leak: both valid, reachable borrowers
    # got exactly one SMS, and the functions logged at all.
    assert sorted(phone for phone, _ in sms.values()) == sorted([BOOK[0]["phone"], BOOK[1]["phone"]])
    assert '"level":"INFO"' in output.replace(" ", "")
    assert "SmsSent" in output

    assert not _leaks(output, _secrets(BOOK, sms)), output[-3000:]


def test_the_capture_sees_what_a_careless_log_line_would_leak(
    local_stack: LocalStack, debug_logs: Callable[[], str]
) -> None:
    """The check above can fail: a DEBUG line and a library warning naming a borrower are caught."""
    logger.debug("careless", extra={"phone": BOOK[0]["phone"]})
    logging.getLogger("botocore.careless").warning("sending to %s", BOOK[1]["borrower_name"])

    found = _leaks(debug_logs(), _secrets(BOOK[:2], {}))

    assert set(found) == {"PII-1 phone", "PII-2 name"}


def _reply(sample: str, phone: str, body: str, message_id: str) -> dict[str, Any]:
    """An events/ sample reply re-addressed: from `phone`, saying `body`."""
    event: dict[str, Any] = json.loads((EVENTS / sample).read_text(encoding="utf-8"))
    sns = event["Records"][0]["Sns"]
    changes = {"originationNumber": phone, "messageBody": body, "inboundMessageId": message_id}
    sns["Message"] = json.dumps({**json.loads(sns["Message"]), **changes}, ensure_ascii=False)
    return event


def test_replies_and_their_answers_log_no_phone_or_text(
    local_stack: LocalStack,
    seed_loans: Callable[..., None],
    run_hours: RunHours,
    debug_logs: Callable[[], str],
) -> None:
    """Verify (the right number and a stranger), HELP and a free-text reply: no number, reply or answer logged."""
    seed_loans(BOOK[0])
    run_hours(local_stack, SHANGHAI_MORNING, 1)
    ((_, (_, reminder)),) = sns_backends[DEFAULT_ACCOUNT_ID][local_stack.region].sms_messages.items()
    code = reminder.split("参考码")[1][:6]
    stranger = "+8613698765432"
    replies = {
        "verify": _reply("inbound_sms_verify.json", BOOK[0]["phone"], f"核实 {code}", "r-1"),
        "stranger": _reply("inbound_sms_verify.json", stranger, f"VERIFY {code}", "r-2"),
        "help": _reply("inbound_sms_help.json", BOOK[1]["phone"], "HELP", "r-3"),
        "other": _reply("inbound_sms_other.json", BOOK[0]["phone"], "韩梅梅下周一还清全部欠款", "r-4"),
    }
    with time_machine.travel(SHANGHAI_MORNING + dt.timedelta(hours=1), tick=False):
        results = {name: invoke(local_stack, "InboundSmsFunction", event)["results"] for name, event in replies.items()}
    output = debug_logs()

    assert results == {
        "verify": ["verify_confirmed"],
        "stranger": ["verify_unmatched"],
        "help": ["help_reply"],
        "other": ["borrower_replied"],
    }
    sms = dict(sns_backends[DEFAULT_ACCOUNT_ID][local_stack.region].sms_messages)
    assert len(sms) == 4  # the reminder and three answers: there was something to leak
    secrets = _secrets(BOOK[:2], sms)
    secrets["stranger phone"] = _phone_spellings(stranger)
    secrets["free-text reply"] = _spellings("韩梅梅下周一还清全部欠款") | _spellings("下周一还清")
    assert "reply published for the lender's CRM" in output
    assert not _leaks(output, secrets), output[-3000:]
