"""Exactly once, nothing lost (DESIGN 6): the send path with one AWS call failing at a time.

Faults are injected into the real botocore clients that `dunning.dal.aws.client` caches, through
botocore's event system: `before-call.<service>.<Operation>` raises before the request leaves (as an
SDK error after its own retries would), `after-call.<service>.<Operation>` raises after the request
succeeded (a read timeout: the write or the SMS happened, the caller cannot know). Nothing of our own
domain is replaced. After each fault the system retries as production would: SQS redelivers the
failed records (every 6 minutes, the queue's visibility timeout) until the DLQ takes them, and the
hourly schedule fires the planner again (past `decisions.REPLAN_AFTER`).

Every scenario then counts, from moto's own records:
- duplicates: SMS beyond the first per (loan, cycle, stage) (each phone here is one borrower whose
  loans are due one reminder today, so SMS per phone is SMS per planned stage);
- lost: planned stages that ended as none of SENT, SUPPRESSED/FAILED with a reason, UNCERTAIN, or a
  message in the DLQ.
Both must be 0 for every scenario; `tests/integration/conftest.py` prints the totals.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import boto3
import pytest
import time_machine
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns import sns_backends

from dunning.dal import aws
from dunning.decisions import REPLAN_AFTER
from dunning.local import LocalStack, deploy_stack, drain_queue, invoke
from dunning.observability import mask_phone
from tests.conftest import scheduled_event

AT = dt.datetime(2026, 11, 28, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai, inside the send window
HOURLY = dt.timedelta(hours=1)
REDELIVERY = dt.timedelta(seconds=360)  # ReminderQueue's VisibilityTimeout
assert HOURLY > REPLAN_AFTER  # the next hourly fire re-enqueues a PLANNED claim whose job was lost


def loan(loan_id: str, borrower_id: str, phone: str, due_date: str, amount: str = "1500.00") -> dict[str, Any]:
    return {
        "loan_id": loan_id,
        "borrower_id": borrower_id,
        "borrower_name": "李雷",
        "phone": phone,
        "status": "OPEN",
        "due_date": due_date,
        "amount_due": Decimal(amount),
        "currency": "CNY",
    }


BOOK = [
    loan("F-1", "B-1", "+8613900139021", "2026-11-25"),  # follow_up_3, one loan, one SMS
    loan("F-2A", "B-2", "+8613900139022", "2026-11-20"),  # follow_up_6 } one borrower, two loans:
    loan("F-2B", "B-2", "+8613900139022", "2026-11-22", "300.00"),  # follow_up_6 } one SMS, two records
    loan("F-3", "B-3", "+8613900139099", "2026-11-25"),  # moto reports ...99 opted out: suppressed at send time
]
PLANNED = {
    ("F-1", "2026-11-25", "follow_up_3"),
    ("F-2A", "2026-11-20", "follow_up_6"),
    ("F-2B", "2026-11-22", "follow_up_6"),
    ("F-3", "2026-11-25", "follow_up_3"),
}
CLEAN = {"F-1": "SENT", "F-2A": "SENT", "F-2B": "SENT", "F-3": "SUPPRESSED:opted_out"}


# ---------------------------------------------------------------- the injector


def _error(code: str, status: int, operation: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "injected fault"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        operation,
    )


ERRORS: dict[str, Callable[[str], Exception]] = {
    # What surfaces once the SDK's own retries are spent.
    "throughput": lambda op: _error("ProvisionedThroughputExceededException", 400, op),
    "internal": lambda op: _error("InternalError", 500, op),
    "throttling": lambda op: _error("Throttling", 400, op),
    "invalid": lambda op: _error("InvalidParameter", 400, op),
    "no_connection": lambda op: EndpointConnectionError(endpoint_url="https://injected.invalid"),
    # After the call: the request was served, its response never arrived.
    "read_timeout": lambda op: ReadTimeoutError(endpoint_url="https://injected.invalid"),
}


@dataclass(frozen=True)
class Fault:
    """Fail the calls whose description matches `pattern` (a regex), `times` times in a row."""

    pattern: str
    phase: str = "before"  # or "after" (the call succeeded)
    error: str = "throughput"
    times: int = 1
    skip: int = 0  # matching calls let through first (the planner's read before the sender's)

    @property
    def label(self) -> str:
        times = f" x{self.times}" if self.times > 1 else ""
        return f"{self.phase} {self.pattern} [{self.error}{times}]"


@dataclass
class Injector:
    """Describes every call of the send path's clients and raises where a fault matches."""

    tables: dict[str, str]  # physical name -> logical id
    faults: tuple[Fault, ...] = ()
    fired: Counter[Fault] = field(default_factory=Counter)
    seen: Counter[Fault] = field(default_factory=Counter)
    calls: list[str] = field(default_factory=list)
    hooks: dict[str, Callable[[], None]] = field(default_factory=dict)  # pattern -> run once before the call

    def install(self) -> None:
        clients = {
            "dynamodb": [aws.client("dynamodb")],
            "sns": [aws.client("sns"), aws.client("sns", aws.NO_RETRY)],
            "sqs": [aws.client("sqs")],
        }
        for service, instances in clients.items():
            for client in instances:
                events = client.meta.events
                events.register(f"before-parameter-build.{service}", self._describe, unique_id="fault-describe")
                events.register(f"before-call.{service}", self._before, unique_id="fault-before")
                events.register(f"after-call.{service}", self._after, unique_id="fault-after")

    def _describe(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        context["fault_call"] = description = describe(
            model.service_model.service_name, model.name, params, self.tables
        )
        self.calls.append(description)

    def _before(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        for pattern in [p for p in self.hooks if re.search(p, context.get("fault_call", ""))]:
            self.hooks.pop(pattern)()
        self._maybe_raise("before", model.name, context)

    def _after(self, http_response: Any, model: Any, context: dict[str, Any], **_: Any) -> None:
        if http_response.status_code < 300:  # only a call that succeeded can lose its answer
            self._maybe_raise("after", model.name, context)

    def _maybe_raise(self, phase: str, operation: str, context: dict[str, Any]) -> None:
        description = context.get("fault_call", "")
        for fault in self.faults:
            if fault.phase != phase or self.fired[fault] >= fault.times or not re.search(fault.pattern, description):
                continue
            self.seen[fault] += 1
            if self.seen[fault] > fault.skip:
                self.fired[fault] += 1
                raise ERRORS[fault.error](operation)


def describe(service: str, operation: str, params: dict[str, Any], tables: dict[str, str]) -> str:
    """`dynamodb.UpdateItem StateTable SEND PLANNED->SENDING F-2B`: what a fault pattern matches on."""
    if service == "sns" and operation == "Publish":
        return f"sns.Publish {mask_phone(params.get('PhoneNumber'))}"
    if service != "dynamodb":
        return f"{service}.{operation}"
    table = params.get("TableName") or next(iter(params.get("RequestItems", {})), "")
    parts = [f"dynamodb.{operation}", tables.get(table, table)]
    key = params.get("Key") or params.get("Item") or {}
    sk = key.get("sk", {}).get("S", "")
    values = params.get("ExpressionAttributeValues", {})
    if operation == "BatchGetItem":
        keys = params["RequestItems"][table]["Keys"]
        parts += sorted({k["sk"]["S"].split("#")[0] for k in keys if "sk" in k})
    elif sk:
        parts.append(sk.split("#")[0])
        if operation == "UpdateItem" and ":to" in values:
            parts.append(f"{values[':from']['S']}->{values[':to']['S']}")
        elif operation == "UpdateItem" and ":one" in values:
            parts.append("take" if int(values[":one"]["N"]) > 0 else "release")
        elif "state" in key:
            parts.append(key["state"]["S"])
    elif "outcome" in key:
        parts.append(key["outcome"]["S"])
    loan_id = key.get("loan_id", {}).get("S") or key.get("pk", {}).get("S", "").removeprefix("LOAN#")
    if loan_id and not loan_id.startswith(("BORROWER#", "PHONE#")):
        parts.append(loan_id)
    return " ".join(parts)


# ---------------------------------------------------------------- the system, retried as production would


@pytest.fixture
def stack(moto_aws: None) -> Iterator[LocalStack]:
    # Pacing is real time (time.monotonic): a high MPS keeps it out of the test's wall clock.
    aws.reset_clients()  # fresh clients: no handler of another test is on them
    deployed = deploy_stack(parameters={"MaxPartsPerSecond": "1000"})
    table = boto3.resource("dynamodb", region_name=deployed.region).Table(deployed.physical_id("LoansTable"))
    with table.batch_writer() as batch:
        for item in BOOK:
            batch.put_item(Item=item)
    yield deployed
    aws.reset_clients()


def injector(stack: LocalStack, *faults: Fault) -> Injector:
    tables = {stack.physical_id(t): t for t in ("LoansTable", "StateTable", "DeliveriesTable")}
    installed = Injector(tables, faults)
    installed.install()
    return installed


def fire_planner(stack: LocalStack, at: dt.datetime) -> Any:
    """One scheduled fire; a failed fire is what the Scheduler would log (the next hour replans)."""
    with time_machine.travel(at, tick=False):
        try:
            return invoke(stack, "PlanRemindersFunction", scheduled_event(at))
        except Exception as exc:  # the fault under test
            return exc


def drain_with_redelivery(stack: LocalStack, at: dt.datetime, rounds: int = 8) -> list[Any]:
    """Batches of the queue, a visibility timeout apart, until it is empty (the DLQ takes the 6th receive)."""
    responses: list[Any] = []
    for n in range(rounds):
        with time_machine.travel(at + n * REDELIVERY, tick=False):
            batch = drain_queue(stack, max_batches=1, raise_on_error=False)
        if not batch:
            break
        responses += batch
    return responses


def run_like_production(stack: LocalStack, hours: int = 2) -> list[Any]:
    responses: list[Any] = []
    for n in range(hours):
        at = AT + n * HOURLY
        responses.append(fire_planner(stack, at))
        responses += drain_with_redelivery(stack, at + dt.timedelta(seconds=5))
    return responses


# ---------------------------------------------------------------- accounting


def scan(stack: LocalStack, logical_id: str) -> list[dict[str, Any]]:
    table = boto3.resource("dynamodb", region_name=stack.region).Table(stack.physical_id(logical_id))
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"ConsistentRead": True}
    while True:
        page = table.scan(**kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def dead_letters(stack: LocalStack) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name=stack.region)
    url = stack.queue_url("ReminderDeadLetterQueue")
    bodies: list[dict[str, Any]] = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600).get(
        "Messages", []
    ):
        for message in messages:
            try:
                bodies.append(json.loads(message["Body"]))
            except ValueError:
                bodies.append({"junk": message["Body"]})
    return bodies


def sms_sent(stack: LocalStack) -> dict[str, tuple[str, str]]:
    return dict(sns_backends[DEFAULT_ACCOUNT_ID][stack.region].sms_messages)


@dataclass
class Accounting:
    ends: dict[str, str]  # loan_id -> SENT | SUPPRESSED:<reason> | UNCERTAIN | DLQ | LOST(<why>)
    sms_per_phone: Counter[str]
    uncertain_records: int

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.sms_per_phone.values() if n > 1)

    @property
    def lost(self) -> int:
        return sum(1 for end in self.ends.values() if end.startswith("LOST"))


def account(stack: LocalStack, planned: set[tuple[str, str, str]] = PLANNED) -> Accounting:
    claims = {
        (c["loan_id"], c["cycle"], c["stage"]): c for c in scan(stack, "StateTable") if str(c["sk"]).startswith("SEND#")
    }
    records = scan(stack, "DeliveriesTable")
    published = sms_sent(stack)
    in_dlq = {
        (line["loan_id"], line["cycle"], line["stage"]) for job in dead_letters(stack) for line in job.get("lines", [])
    }
    ends: dict[str, str] = {}
    for key in sorted(planned):
        claim = claims.get(key)
        mine = [r for r in records if (r["loan_id"], r["cycle"], r["stage"]) == key]
        outcomes = {r["outcome"] for r in mine}
        state = claim["state"] if claim else "NONE"
        if state == "SENT" and any(r["outcome"] == "SENT" and r["message_id"] in published for r in mine):
            ends[key[0]] = "SENT"
        elif state == "UNCERTAIN" and "UNCERTAIN" in outcomes:
            ends[key[0]] = "UNCERTAIN"
        elif state in {"SUPPRESSED", "DEFERRED"} and claim and claim.get("reason"):
            reasons = {r.get("reason") for r in mine if r["outcome"] in {"SUPPRESSED", "FAILED"}}
            ends[key[0]] = f"SUPPRESSED:{claim['reason']}" if claim["reason"] in reasons else f"LOST({state} no record)"
        elif key in in_dlq:
            ends[key[0]] = "DLQ"
        else:
            ends[key[0]] = f"LOST({state} {sorted(outcomes)})"
    phones = Counter(phone for phone, _ in published.values())
    return Accounting(ends, phones, sum(1 for r in records if r["outcome"] == "UNCERTAIN"))


def check(
    stack: LocalStack,
    record_property: Callable[[str, object], None],
    label: str,
    expected: dict[str, str],
) -> Accounting:
    result = account(stack)
    print(f"\n{label}: ends={result.ends} duplicates={result.duplicates} lost={result.lost}")
    record_property("fault_duplicates", result.duplicates)
    record_property("fault_lost", result.lost)
    assert result.duplicates == 0, result.sms_per_phone
    assert result.lost == 0, result.ends
    assert result.ends == expected
    return result


# ---------------------------------------------------------------- one fault at a time, at every call


def ends(**changed: str) -> dict[str, str]:
    """How the planned stages end: as in a run without faults, but for `changed`."""
    return {**CLEAN, **{loan_id.replace("_", "-"): end for loan_id, end in changed.items()}}


CAP_DAILY = "SUPPRESSED:cap_daily"
AMBIGUOUS_PUBLISH = Fault(r"sns.Publish", "after", "read_timeout")
# (faults, how the planned stages end): every call of the send path, before it and (writes, Publish) after it.
POINTS: list[tuple[tuple[Fault, ...], dict[str, str]]] = [
    # Planner: its reads, its claims, its enqueue. A failed fire is replanned by the next hourly fire.
    ((Fault(r"dynamodb.Query LoansTable"),), CLEAN),
    ((Fault(r"BatchGetItem StateTable CONTROL OPTOUT SEND"),), CLEAN),
    ((Fault(r"PutItem StateTable SEND PLANNED F-2A"),), CLEAN),
    ((Fault(r"PutItem StateTable SEND PLANNED F-2A", "after", "read_timeout"),), CLEAN),
    ((Fault(r"sqs.SendMessageBatch", error="internal"),), CLEAN),
    ((Fault(r"sqs.SendMessageBatch", "after", "read_timeout"),), CLEAN),
    # Sender, before anything irreversible: its reads, the SNS opt-out check, the day's count.
    ((Fault(r"BatchGetItem LoansTable"),), CLEAN),
    ((Fault(r"BatchGetItem StateTable CONTROL OPTOUT SEND", skip=1),), CLEAN),
    ((Fault(r"sns.CheckIfPhoneNumberIsOptedOut", error="internal"),), CLEAN),
    ((Fault(r"BatchGetItem StateTable DAY$"),), CLEAN),
    # Step 1, the day slot. Counted but unanswered: the retry finds the day full and defers to tomorrow.
    ((Fault(r"UpdateItem StateTable DAY take"),), CLEAN),
    ((Fault(r"UpdateItem StateTable DAY take", "after", "read_timeout"),), ends(F_2A=CAP_DAILY, F_2B=CAP_DAILY)),
    # Step 2, the claims (F-2B: the second loan of one SMS). A claim taken unanswered cannot be told
    # from one whose SMS left: UNCERTAIN, never a blind send.
    ((Fault(r"PLANNED->SENDING F-1"),), CLEAN),
    ((Fault(r"PLANNED->SENDING F-2B"),), CLEAN),
    ((Fault(r"PLANNED->SENDING F-1", "after", "read_timeout"),), ends(F_1="UNCERTAIN")),
    ((Fault(r"UpdateItem StateTable DAY release"), Fault(r"PLANNED->SENDING F-2B")), ends(F_2A="UNCERTAIN")),
    # Step 3, Publish: refused and retried in the invocation, refused for good, or ambiguous.
    ((Fault(r"sns.Publish", error="throttling"),), CLEAN),
    ((Fault(r"sns.Publish", error="no_connection"),), CLEAN),
    (
        (Fault(r"sns.Publish", error="invalid"),),
        ends(F_2A="SUPPRESSED:rejected_InvalidParameter", F_2B="SUPPRESSED:rejected_InvalidParameter"),
    ),
    ((AMBIGUOUS_PUBLISH,), ends(F_2A="UNCERTAIN", F_2B="UNCERTAIN")),
    # Steps 4 and 5: the SENT record and the claim's completion.
    ((Fault(r"PutItem DeliveriesTable SENT F-2A"),), CLEAN),
    ((Fault(r"PutItem DeliveriesTable SENT F-2A", "after", "read_timeout"),), CLEAN),
    ((Fault(r"PutItem DeliveriesTable SENT F-1", times=3),), ends(F_1="UNCERTAIN")),
    ((Fault(r"SENDING->SENT F-2A"),), CLEAN),
    ((Fault(r"SENDING->SENT F-2A", "after", "read_timeout"),), CLEAN),
    # A suppression at send time (F-3 is opted out at SNS): its record and its claim.
    ((Fault(r"PutItem DeliveriesTable SUPPRESSED F-3"),), CLEAN),
    ((Fault(r"PutItem DeliveriesTable SUPPRESSED F-3", "after", "read_timeout"),), CLEAN),
    ((Fault(r"PutItem StateTable SEND SUPPRESSED F-3"),), CLEAN),
    ((Fault(r"PutItem StateTable SEND SUPPRESSED F-3", "after", "read_timeout"),), CLEAN),
    # The retry path: a claim found SENDING is resolved from the record its attempt wrote, or UNCERTAIN.
    (
        (Fault(r"PutItem DeliveriesTable SENT F-1", "after", "read_timeout"), Fault(r"GetItem DeliveriesTable F-1")),
        CLEAN,
    ),
    (
        (AMBIGUOUS_PUBLISH, Fault(r"PutItem DeliveriesTable UNCERTAIN", times=3)),
        ends(F_2A="UNCERTAIN", F_2B="UNCERTAIN"),
    ),
    (
        (AMBIGUOUS_PUBLISH, Fault(r"PutItem DeliveriesTable UNCERTAIN", "after", "read_timeout")),
        ends(F_2A="UNCERTAIN", F_2B="UNCERTAIN"),
    ),
    ((AMBIGUOUS_PUBLISH, Fault(r"SENDING->UNCERTAIN")), ends(F_2A="UNCERTAIN", F_2B="UNCERTAIN")),
    (
        (AMBIGUOUS_PUBLISH, Fault(r"SENDING->UNCERTAIN", "after", "read_timeout")),
        ends(F_2A="UNCERTAIN", F_2B="UNCERTAIN"),
    ),
]


@pytest.mark.parametrize(("faults", "expected"), POINTS, ids=[" + ".join(f.label for f in p[0]) for p in POINTS])
def test_one_fault_at_a_time(
    stack: LocalStack,
    record_property: Callable[[str, object], None],
    faults: tuple[Fault, ...],
    expected: dict[str, str],
) -> None:
    installed = injector(stack, *faults)
    run_like_production(stack)
    for fault in faults:
        assert installed.fired[fault] == fault.times, f"{fault.label} never matched: {installed.calls}"
    check(stack, record_property, " + ".join(f.label for f in faults), expected)
