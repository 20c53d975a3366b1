"""Hypothesis strategies for what reaches the product from outside: LoansTable items, loan events, inbound replies.

Each has a valid form and hostile ones (the values of docs/contract.md#loanstable-item and issue 10: a missing
phone, `12345`, `abc`, `9E+125`, 30 digits, `2026/11/16`, `2026-02-30`, unknown status or currency, names carrying
links, digits or invisible characters, huge strings, and wrong types: lists, maps, bools, bytes). Hostile values
come labelled with the reason `parse_loan` must give, so a test can tell "rejected as it should be" from
"junk silently accepted".
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import phonenumbers
from boto3.dynamodb.types import Binary
from hypothesis import strategies as st

from dunning.models import money

# Bounds on money and currencies at parse time (issue 10, deliverable 1). Values that only those bounds
# reject are expected to be rejected once `dunning.models.money` has them, and are skipped before.
BOUNDS_AT_PARSE = hasattr(money, "MAX_INTEGER_DIGITS")

# The clock of the fuzzed runs: 10:00 in Shanghai, inside every CN borrower's send window.
NOW = dt.datetime(2026, 11, 20, 2, 0, tzinfo=dt.UTC)
TODAY = dt.date(2026, 11, 20)
# One due date per interesting place on the ladder: courtesy, due today, overdue notice, follow-ups, past it.
DUE_OFFSETS = (-3, 0, 1, 3, 6, 12, 29, 35)
# Valid CN mobiles (none ends in 99: moto reports those as opted out).
PHONES = tuple(f"+86138001380{n:02d}" for n in range(10, 60))
assert all(phonenumbers.is_valid_number(phonenumbers.parse(p)) for p in PHONES)

MISSING = object()  # the attribute is absent from the item

# Binary: what boto3 hands over for a DynamoDB B attribute (pydantic would decode plain bytes into a str).
WRONG_TYPES: tuple[Any, ...] = (["x"], {"k": "v"}, True, Binary(b"\x00\x01"), Decimal(7))
HOSTILE_NAMES = (
    "Jane. Account FROZEN - pay now at https://evil.example/pay",
    "Call +8613800138000 now",
    "王小明 4008-123-456",
    "\u200bSTOP\u200b",
    "Jane\u202eeoR",  # right-to-left override
    "Jane\nRoe",
    "x" * 10_000,
)


@dataclass(frozen=True)
class Hostile:
    """One hostile attribute value and the `InvalidLoan.reason` parse_loan must give (None: it may parse)."""

    attribute: str
    value: Any
    reason: str | None

    def apply(self, item: dict[str, Any]) -> dict[str, Any]:
        changed = dict(item)
        if self.value is MISSING:
            changed.pop(self.attribute, None)
        else:
            changed[self.attribute] = self.value
        return changed

    def __repr__(self) -> str:  # readable test ids and hypothesis output
        shown = "<missing>" if self.value is MISSING else repr(self.value)[:40]
        return f"{self.attribute}={shown}"


def _catalogue() -> tuple[Hostile, ...]:
    found: list[Hostile] = [
        Hostile("phone", MISSING, "missing_phone"),
        *(Hostile("phone", v, "invalid_phone") for v in ("12345", "abc", "", "8613800138000", "+1202555014")),
        *(Hostile("phone", v, "invalid_phone") for v in WRONG_TYPES),
        Hostile("amount_due", MISSING, "missing_amount_due"),
        *(Hostile("amount_due", v, "invalid_amount") for v in ("abc", Decimal("-1"), Decimal("NaN"), "Infinity")),
        *(Hostile("amount_due", v, "invalid_amount") for v in (1.5, ["1"], {"n": "1"}, True, b"1")),
        Hostile("late_fees", "abc", "invalid_amount"),
        Hostile("late_fees", Decimal("-0.01"), "invalid_amount"),
        Hostile("due_date", MISSING, "missing_due_date"),
        *(Hostile("due_date", v, "invalid_due_date") for v in ("2026/11/16", "2026-02-30", "28/11/2026", "")),
        *(Hostile("due_date", v, "invalid_due_date") for v in ("2026-11-16T00:00:00", *WRONG_TYPES)),
        Hostile("status", MISSING, "missing_status"),
        *(Hostile("status", v, "invalid_status") for v in ("UNKNOWN", "open", "", *WRONG_TYPES)),
        *(Hostile("currency", v, "invalid_currency") for v in ("XYZ", "cny", "", "US$", *WRONG_TYPES)),
        Hostile("borrower_id", MISSING, "missing_borrower_id"),
        *(Hostile("borrower_id", v, "invalid_borrower_id") for v in ("", "b" * 10_000, *WRONG_TYPES)),
        Hostile("borrower_name", MISSING, "missing_borrower_name"),
        *(Hostile("borrower_name", v, "invalid_borrower_name") for v in ("", "x" * 10_000, *WRONG_TYPES)),
        # Printed or not is decided when the SMS is composed (issue 10, deliverable 1): parsing may accept them.
        *(Hostile("borrower_name", v, None) for v in HOSTILE_NAMES[:-1]),
        *(Hostile("timezone", v, "invalid_timezone") for v in ("Mars/Olympus_Mons", "../../etc/passwd", ["UTC"])),
        *(Hostile("locale", v, "invalid_locale") for v in ("fr-FR", "", {"l": "zh-CN"})),
    ]
    if BOUNDS_AT_PARSE:
        found += [
            Hostile("amount_due", Decimal("9E+125"), "invalid_amount"),
            Hostile("amount_due", Decimal("1" * 30), "invalid_amount"),
            Hostile("amount_due", Decimal("1" * 26 + ".74"), "invalid_amount"),
            Hostile("amount_due", Decimal("10.001"), "invalid_amount"),  # CNY has 2 decimals
            Hostile("late_fees", Decimal("9E+125"), "invalid_amount"),
            Hostile("currency", "XXX", "invalid_currency"),
        ]
    return tuple(found)


HOSTILE_VALUES = _catalogue()
# Absurd amounts that are valid DynamoDB numbers: rejected at parse once bounds land, and before that
# the runs' own isolation must set the loan aside (`invalid_amount` or `unprocessable` either way).
ABSURD_AMOUNTS = (Decimal("9E+125"), Decimal("1" * 30))


def valid_item(loan_id: str, borrower: int, due_offset: int, amount: Decimal, **changes: Any) -> dict[str, Any]:
    """A LoansTable item as upstream writes it (docs/contract.md#loanstable-item; amounts as Decimal: DynamoDB N)."""
    item: dict[str, Any] = {
        "loan_id": loan_id,
        "borrower_id": f"B-{borrower}",
        "borrower_name": "王小明",
        "phone": PHONES[borrower % len(PHONES)],  # one person, one phone
        "status": "OPEN",
        "due_date": (TODAY - dt.timedelta(days=due_offset)).isoformat(),
        "amount_due": amount,
        "currency": "CNY",
    }
    item.update(changes)
    return item


AMOUNTS = st.decimals(min_value=Decimal("1.00"), max_value=Decimal("99999.99"), places=2)


@st.composite
def valid_books(draw: st.DrawFn, min_size: int = 1, max_size: int = 6) -> list[dict[str, Any]]:
    """Valid loans L-0, L-1, … of a few borrowers (some with several loans: their SMS consolidate)."""
    size = draw(st.integers(min_size, max_size))
    return [
        valid_item(
            f"L-{n}",
            draw(st.integers(0, 3)),
            draw(st.sampled_from(DUE_OFFSETS)),
            draw(AMOUNTS),
            **draw(
                st.fixed_dictionaries({}, optional={"late_fees": st.just(Decimal("3.10")), "locale": st.just("en-US")})
            ),
        )
        for n in range(size)
    ]


@st.composite
def hostile_items(draw: st.DrawFn, loan_id: str = "L-HOSTILE", borrower: int | None = None) -> dict[str, Any]:
    """A loan item with one or two hostile attributes (else valid); `borrower` None: a borrower of its own."""
    who = draw(st.integers(0, 3)) if borrower is None else borrower
    base = valid_item(
        loan_id, who if borrower is not None else 90 + who, draw(st.sampled_from(DUE_OFFSETS)), draw(AMOUNTS)
    )
    item = base
    for hostile in draw(st.lists(st.sampled_from(HOSTILE_VALUES), min_size=1, max_size=2)):
        if hostile.attribute != "loan_id":
            item = hostile.apply(item)
    if draw(st.booleans()):
        item["amount_due"] = draw(st.sampled_from(ABSURD_AMOUNTS))
    return item


# ---------------------------------------------------------------- loan events (docs/contract.md#events-in)

LOAN_ID = "L-FUZZ-1"


def _valid_details() -> dict[str, dict[str, Any]]:
    return {
        "PaymentReceived": {
            "loan_id": LOAN_ID,
            "amount": "10.00",
            "currency": "CNY",
            "paid_at": "2026-11-20T03:15:00Z",
        },
        "PromiseToPay": {"loan_id": LOAN_ID, "promised_date": "2026-12-01", "amount": "100.00"},
        "GracePeriodGranted": {"loan_id": LOAN_ID, "until": "2026-12-01"},
        "RepaymentPlanAgreed": {
            "loan_id": LOAN_ID,
            "instalments": [
                {"due_date": "2026-12-30", "amount": "400.00"},
                {"due_date": "2027-01-30", "amount": "400.00"},
            ],
        },
        "LoanDisputed": {"loan_id": LOAN_ID, "reason": "fee disputed"},
        "DisputeResolved": {"loan_id": LOAN_ID, "reason": "fee confirmed"},
        "ContactOptOut": {"phone": "+8613800138000"},
        "ContactOptIn": {"phone": "+8613800138000"},
        "BorrowerErasureRequested": {"borrower_id": "B-FUZZ-1", "phone": "+8613800138000"},
    }


VALID_DETAILS = _valid_details()
_BAD_AMOUNTS = ("abc", "-1", "0", "", 1.5, True, ["1"], {"n": 1})
# Per attribute: values no event may carry (the event is rejected and changes nothing).
HOSTILE_DETAIL_VALUES: dict[str, tuple[Any, ...]] = {
    "loan_id": ("", "L" * 500, ["L-1"], {"id": "L-1"}, True, 7),
    "amount": _BAD_AMOUNTS + (("9E+125", "1" * 30) if BOUNDS_AT_PARSE else ()),
    "currency": ("XYZ", "cny", "", ["CNY"], True),
    "paid_at": ("yesterday", "2026-11-20T03:15:00", "2026-13-01T00:00:00Z", 1_795_000_000, ["2026-11-20T03:15:00Z"]),
    "promised_date": ("2026/11/16", "2026-02-30", "2026-13-01", "", ["2026-12-01"], 20261201),
    "until": ("2026/11/16", "2026-02-30", "", {"d": "2026-12-01"}),
    "instalments": ([], "400.00", [{"due_date": "2026-02-30", "amount": "400.00"}], [{"due_date": "2026-12-30"}]),
    "phone": ("12345", "abc", "", "8613800138000", ["+8613800138000"], True),
    "reason": ("", "r" * 501, ["fee disputed"], {"r": 1}, True),
    "borrower_id": ("", "B" * 500, ["B-FUZZ-1"], True, 7),
}


@st.composite
def loan_events(draw: st.DrawFn, base: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """(EventBridge event, valid?): a valid event of any type, or one with exactly one hostile change."""
    detail_type = draw(st.sampled_from(sorted(VALID_DETAILS)))
    detail = dict(VALID_DETAILS[detail_type])
    event = {**base, "detail-type": detail_type, "detail": detail}
    change = draw(st.sampled_from(("none", "none", "value", "drop", "detail_type", "detail_shape")))
    if change == "value":
        attribute = draw(st.sampled_from(sorted(detail)))
        detail[attribute] = draw(st.sampled_from(HOSTILE_DETAIL_VALUES[attribute]))
    elif change == "drop":
        detail.pop(draw(st.sampled_from(sorted(detail))))
    elif change == "detail_type":
        event["detail-type"] = draw(st.sampled_from(("Unknown", "paymentreceived", "", ["PaymentReceived"], None)))
    elif change == "detail_shape":
        event["detail"] = draw(st.sampled_from((None, "text", ["a"], 7, {})))
    return event, change == "none"


# ---------------------------------------------------------------- inbound replies (SNS two-way SMS)

REPLY_BODIES = st.one_of(
    st.sampled_from(("STOP", "退订", "T", "TD", "Stop please", "STOP.", "\u200bSTOP", "HELP", "帮助", "ABC123", "")),
    st.sampled_from(HOSTILE_NAMES),
    st.text(max_size=200),
)


@st.composite
def inbound_messages(draw: st.DrawFn) -> tuple[str, bool]:
    """(SNS `Message` text, valid?): a two-way SMS JSON, or one whose sender or body is unusable."""
    message: dict[str, Any] = {
        "originationNumber": draw(st.sampled_from(PHONES)),
        "destinationNumber": "+18445550100",
        "messageBody": draw(REPLY_BODIES),
        "inboundMessageId": "fuzz-1",
    }
    change = draw(st.sampled_from(("none", "none", "sender", "drop_sender", "body_type", "not_json")))
    if change == "sender":
        message["originationNumber"] = draw(st.sampled_from(("12345", "abc", "", "8613800138000", ["+8613800138000"])))
    elif change == "drop_sender":
        del message["originationNumber"]
    elif change == "body_type":
        message["messageBody"] = draw(st.sampled_from((["STOP"], {"text": "STOP"}, True, 7)))
    if change == "not_json":
        return draw(st.sampled_from(("STOP", "{", "[]", "null", json.dumps(["STOP"])))), False
    # A two-way SMS body is at most 1600 characters: a longer one is no reply a carrier delivered.
    fits = isinstance(message["messageBody"], str) and len(message["messageBody"]) <= 1600
    return json.dumps(message, ensure_ascii=False), change == "none" and fits
