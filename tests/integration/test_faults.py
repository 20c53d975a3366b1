"""Exactly once, nothing lost (docs/exactly-once.md): the send path with one AWS call failing at a time.

Faults are injected into the real botocore clients that `dunning.dal.aws.client` caches, through
botocore's event system: `before-call.<service>.<Operation>` raises before the request leaves (as an
SDK error after its own retries would), `after-call.<service>.<Operation>` raises after the request
succeeded (a read timeout: the write or the SMS happened, the caller cannot know). Nothing of our own
domain is replaced. After each fault the system retries as production would: SQS redelivers the
failed records (every 6 minutes, the queue's visibility timeout) until the DLQ takes them, and the
hourly schedule fires the planner again (a planner that fails gives back the claims of the jobs it
could not enqueue, so that fire plans them again; a PLANNED claim is never planned twice).

Every scenario then counts, from moto's own records:
- duplicates: SMS beyond the first per (loan, cycle, stage) (each phone here is one borrower whose
  loans are due one reminder today, so SMS per phone is SMS per planned stage);
- lost: planned stages that ended as none of SENT, SUPPRESSED/FAILED with a reason, UNCERTAIN, or a
  message in the DLQ.
Both must be 0 for every scenario; `tests/integration/conftest.py` prints the totals.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
import time_machine
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns import sns_backends

from dunning.dal import aws
from dunning.dal.state import StateRepository
from dunning.decisions import REPLAN_AFTER
from dunning.observability import mask_phone
from dunning_tools import cli, reports
from dunning_tools.local import LocalStack, drain_queue, drain_stream, invoke
from tests.conftest import scheduled_event

AT = dt.datetime(2026, 11, 28, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai, inside the send window
HOURLY = dt.timedelta(hours=1)
REDELIVERY = dt.timedelta(seconds=360)  # ReminderQueue's VisibilityTimeout
assert HOURLY > REPLAN_AFTER  # reconcile flags a PLANNED claim older than this (its job lost or in the DLQ)


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
    loan("F-3", "B-3", "+8613900139099", "2026-11-25"),  # opted out at SNS after planning: suppressed at send time
]
SNS_OPTED_OUT = "+8613900139099"
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

    def _hooks(self) -> Iterator[tuple[Any, str, Callable[..., None], str]]:
        clients = {
            "dynamodb": [aws.client("dynamodb")],
            "sns": [aws.client("sns"), aws.client("sns", aws.NO_RETRY)],
            "sqs": [aws.client("sqs")],
        }
        for service, instances in clients.items():
            for client in instances:
                yield client.meta.events, f"before-parameter-build.{service}", self._describe, "fault-describe"
                yield client.meta.events, f"before-call.{service}", self._before, "fault-before"
                yield client.meta.events, f"after-call.{service}", self._after, "fault-after"

    def install(self) -> None:
        for events, name, handler, unique_id in self._hooks():
            events.register(name, handler, unique_id=unique_id)

    def uninstall(self) -> None:
        for events, name, _, unique_id in self._hooks():
            events.unregister(name, unique_id=unique_id)

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
    if operation == "TransactWriteItems":
        # `dynamodb.TransactWriteItems DeliveriesTable UNCERTAIN + StateTable SEND SENDING->UNCERTAIN F-1`
        items = [
            describe(service, f"{kind}Item", request, tables).split(" ", 1)[1]
            for entry in params.get("TransactItems", [])
            for kind, request in entry.items()
        ]
        return f"dynamodb.{operation} " + " + ".join(items)
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
        elif operation == "UpdateItem" and sk == "CAP":
            parts.append("take" if ":week" in values else "give-back")
        elif operation == "UpdateItem" and ":h" in values:
            parts.append(f"handled {values[':s']['S']}")
        elif operation == "UpdateItem" and sk == "CONTROL" and ":mark" in values:
            parts.append("mark")  # the planner's claim mark (with the claim, one transaction)
        elif operation == "UpdateItem" and sk == "CONTROL":
            parts.append("failed-hint")
        elif operation == "ConditionCheckItem":
            parts.append("check")
        elif "state" in key:
            parts.append(key["state"]["S"])
    elif operation == "ConditionCheckItem":
        parts.append("check")
    elif "outcome" in key:
        parts.append(key["outcome"]["S"])
    loan_id = key.get("loan_id", {}).get("S") or key.get("pk", {}).get("S", "").removeprefix("LOAN#")
    if loan_id and not loan_id.startswith(("BORROWER#", "PHONE#", "PHONEHASH#", "MSG#", "OPTOUT_SYNC", "KEY")):
        parts.append(loan_id)
    return " ".join(parts)


# ---------------------------------------------------------------- the system, retried as production would


_purges = itertools.count()
_INSTALLED: list[Injector] = []


@pytest.fixture
def stack(module_stack: LocalStack) -> Iterator[LocalStack]:
    """The module's stack, emptied, with BOOK seeded; the test's injector is taken off the clients after it."""
    yield from fresh_stack(module_stack)


def fresh_stack(deployed: LocalStack) -> Iterator[LocalStack]:
    """The `stack` fixture's body, for other modules' fixtures (tests/integration/test_sender_races.py)."""
    resource = boto3.resource("dynamodb", region_name=deployed.region)
    for logical_id in ("LoansTable", "StateTable", "DeliveriesTable"):
        table = resource.Table(deployed.physical_id(logical_id))
        names = [k["AttributeName"] for k in table.key_schema]
        with table.batch_writer() as batch:
            for item in scan(deployed, logical_id):
                batch.delete_item(Key={name: item[name] for name in names})
    with resource.Table(deployed.physical_id("LoansTable")).batch_writer() as batch:
        for item in BOOK:
            batch.put_item(Item=item)
    drain_stream(deployed)  # LoanChangesFunction keeps the ladder index the planner reads
    sqs = boto3.client("sqs", region_name=deployed.region)
    # SQS allows one PurgeQueue a minute: each test's purge happens a simulated 2 minutes after the last.
    with time_machine.travel(AT + dt.timedelta(days=30, minutes=2 * next(_purges)), tick=False):
        for queue in ("ReminderQueue", "ReminderDeadLetterQueue"):
            sqs.purge_queue(QueueUrl=deployed.queue_url(queue))
    sms = sns_backends[DEFAULT_ACCOUNT_ID][deployed.region]
    sms.sms_messages.clear()
    # F-3 replied STOP to SNS: on SNS's own list, which the product learns from the hourly sync.
    if SNS_OPTED_OUT not in sms.opt_out_numbers:
        sms.opt_out_numbers.append(SNS_OPTED_OUT)
    yield deployed
    while _INSTALLED:  # the cached clients outlive the test: take its injector off them
        _INSTALLED.pop().uninstall()


def injector(stack: LocalStack, *faults: Fault) -> Injector:
    tables = {stack.physical_id(t): t for t in ("LoansTable", "StateTable", "DeliveriesTable")}
    installed = Injector(tables, faults)
    installed.install()
    _INSTALLED.append(installed)
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


def sync_opt_outs(stack: LocalStack, at: dt.datetime) -> Any:
    """The scheduled copy of SNS's opt-out list; the Scheduler retries a failed fire twice (RetryPolicy)."""
    with time_machine.travel(at, tick=False):
        for _ in range(3):
            try:
                return invoke(stack, "SyncOptOutsFunction", scheduled_event(at))
            except Exception as exc:  # the fault under test
                failed = exc
    return failed


def run_like_production(stack: LocalStack, hours: int = 2) -> list[Any]:
    """Each hour: the planner fires, SNS's opt-out list is synced (F-3 opted out after planning), the queue drains."""
    responses: list[Any] = []
    for n in range(hours):
        at = AT + n * HOURLY
        responses.append(fire_planner(stack, at))
        responses.append(sync_opt_outs(stack, at + dt.timedelta(seconds=2)))
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


REFUSED = "SUPPRESSED:rejected_InvalidParameter"  # SNS refused the publish for good
AMBIGUOUS_PUBLISH = Fault(r"sns.Publish", "after", "read_timeout")
# The sender's transactions (describe() lists their entries): before Publish the claims, caps and checks of
# every SMS of a round; after it the records, claims, CONTROL updates and MSG# pointers; F-3's suppression.
PRE_PUBLISH = r"TransactWriteItems .*PLANNED->SENDING"
POST_PUBLISH = r"TransactWriteItems DeliveriesTable SENT"
SUPPRESSION = r"TransactWriteItems DeliveriesTable SUPPRESSED F-3"
# (faults, how the planned stages end): every call of the send path, before it and (writes, Publish) after it.
POINTS: list[tuple[tuple[Fault, ...], dict[str, str]]] = [
    # Planner: its reads (the ladder index), its claims (with their CONTROL marks), its enqueue. A failed
    # fire gives back the claims it took, and the next hourly fire plans them again.
    ((Fault(r"dynamodb.Query StateTable"),), CLEAN),
    ((Fault(r"TransactWriteItems StateTable SEND PLANNED .*F-2A"),), CLEAN),
    ((Fault(r"TransactWriteItems StateTable SEND PLANNED F-1 \+ StateTable CONTROL mark"),), CLEAN),
    ((Fault(r"TransactWriteItems StateTable SEND PLANNED .*F-2A", "after", "read_timeout"),), CLEAN),
    ((Fault(r"sqs.SendMessageBatch", error="internal"),), CLEAN),
    # SQS took the job but its answer was lost: the claims are given back, the next fire plans a second job;
    # whichever job a sender takes first sends, the other finds the claim taken (or none: dropped).
    ((Fault(r"sqs.SendMessageBatch", "after", "read_timeout"),), CLEAN),
    # Giving the claims back after a refused enqueue: retried in the same call (a conflict), or left to reconcile.
    ((Fault(r"sqs.SendMessageBatch", error="internal"), Fault(r"TransactWriteItems StateTable SEND F-\d")), CLEAN),
    # The planner's agenda: a fire that cannot read it fails; one that cannot write it leaves the
    # old agenda, already due, so the next fire reads the book again.
    ((Fault(r"BatchGetItem StateTable AGENDA POKE"),), CLEAN),
    ((Fault(r"PutItem StateTable AGENDA"),), CLEAN),
    ((Fault(r"PutItem StateTable AGENDA", "after", "read_timeout"),), CLEAN),
    # Sender: no read (its jobs carry the loans); a failed read of a loan changed since planning is in
    # tests/integration/test_send_path_batched.py.
    # The opt-out sync (SNS's list into the product's items): a failed fire is retried by the Scheduler.
    ((Fault(r"sns.ListPhoneNumbersOptedOut", error="internal"),), CLEAN),
    ((Fault(r"GetItem StateTable CURSOR"),), CLEAN),
    ((Fault(r"BatchGetItem StateTable OPTOUT$"),), CLEAN),
    ((Fault(r"GetItem StateTable OPTOUT$"),), CLEAN),
    ((Fault(r"PutItem StateTable OPTOUT"),), CLEAN),
    ((Fault(r"PutItem StateTable OPTOUT", "after", "read_timeout"),), CLEAN),
    # Before Publish, one transaction: refused, nothing is taken (redelivered, sent once). Taken but
    # unanswered, the round's claims cannot be told from claims whose SMS left: UNCERTAIN, never a blind send.
    ((Fault(PRE_PUBLISH),), CLEAN),
    ((Fault(PRE_PUBLISH, error="internal", times=4),), CLEAN),
    (
        (Fault(PRE_PUBLISH, "after", "read_timeout"),),
        ends(F_1="UNCERTAIN", F_2A="UNCERTAIN", F_2B="UNCERTAIN"),
    ),
    # F-3, opted out since planning: its ConditionCheck fails, so its claims stay PLANNED and its cap untaken;
    # then its record and claim in one transaction.
    ((Fault(SUPPRESSION),), CLEAN),
    ((Fault(SUPPRESSION, "after", "read_timeout"),), CLEAN),
    # Publish: refused and retried in the invocation (claims back to PLANNED, cap given back, redelivered),
    # refused for good, or ambiguous.
    ((Fault(r"sns.Publish", error="throttling", times=3),), CLEAN),
    ((Fault(r"sns.Publish", error="no_connection"),), CLEAN),
    ((Fault(r"sns.Publish", error="invalid"),), ends(F_2A=REFUSED, F_2B=REFUSED)),
    ((AMBIGUOUS_PUBLISH,), ends(F_2A="UNCERTAIN", F_2B="UNCERTAIN")),
    # After Publish, one transaction: retried (3 tries), then one SMS's outcome at a time; the SMS whose
    # outcome is never written is resolved by its redelivery (no record: UNCERTAIN, never resent).
    ((Fault(POST_PUBLISH),), CLEAN),
    ((Fault(POST_PUBLISH, times=3),), CLEAN),
    ((Fault(POST_PUBLISH + r" F-2A", times=6),), ends(F_2A="UNCERTAIN", F_2B="UNCERTAIN")),
    # Written but unanswered: the one-at-a-time retry finds the claims SENT and finishes loan by loan.
    ((Fault(POST_PUBLISH, "after", "read_timeout"),), CLEAN),
    (
        (Fault(POST_PUBLISH, "after", "read_timeout"), Fault(r"PutItem DeliveriesTable SENT F-1", times=3)),
        CLEAN,
    ),
    (
        (Fault(POST_PUBLISH, "after", "read_timeout"), Fault(r"UpdateItem StateTable SEND SENDING->SENT F-1")),
        CLEAN,
    ),
    (
        (Fault(POST_PUBLISH, "after", "read_timeout"), Fault(r"TransactWriteItems StateTable MSG$")),
        CLEAN,
    ),
    # The retry path: a claim found SENDING (past SENDING_HELD_FOR) without a record of its attempt is
    # UNCERTAIN (record and claim in one transaction), whether that transaction fails or goes unanswered.
    (
        (Fault(PRE_PUBLISH, "after", "read_timeout"), Fault(r"GetItem DeliveriesTable F-1")),
        ends(F_1="UNCERTAIN", F_2A="UNCERTAIN", F_2B="UNCERTAIN"),
    ),
    (
        (Fault(PRE_PUBLISH, "after", "read_timeout"), Fault(r"TransactWriteItems DeliveriesTable UNCERTAIN F-1")),
        ends(F_1="UNCERTAIN", F_2A="UNCERTAIN", F_2B="UNCERTAIN"),
    ),
    (
        (
            Fault(PRE_PUBLISH, "after", "read_timeout"),
            Fault(r"TransactWriteItems DeliveriesTable UNCERTAIN F-1", "after", "read_timeout"),
        ),
        ends(F_1="UNCERTAIN", F_2A="UNCERTAIN", F_2B="UNCERTAIN"),
    ),
    # An ambiguous Publish's UNCERTAIN records and claims: retried, or left to the redelivery's resolution.
    (
        (AMBIGUOUS_PUBLISH, Fault(r"TransactWriteItems DeliveriesTable UNCERTAIN F-2A", times=6)),
        ends(F_2A="UNCERTAIN", F_2B="UNCERTAIN"),
    ),
    (
        (AMBIGUOUS_PUBLISH, Fault(r"TransactWriteItems DeliveriesTable UNCERTAIN F-2A", "after", "read_timeout")),
        ends(F_2A="UNCERTAIN", F_2B="UNCERTAIN"),
    ),
    # A publish refused for good: FAILED records, claims and the failure hint in one unit, the cap in another
    # (a cap that cannot be given back costs the borrower that day's slot, never an SMS).
    (
        (Fault(r"sns.Publish", error="invalid"), Fault(r"TransactWriteItems DeliveriesTable FAILED", times=6)),
        ends(F_2A="UNCERTAIN", F_2B="UNCERTAIN"),
    ),
    (
        (Fault(r"sns.Publish", error="invalid"), Fault(r"TransactWriteItems .*CAP give-back", times=6)),
        ends(F_2A=REFUSED, F_2B=REFUSED),
    ),
    # A throttled publish gives its claims and the cap back: when that fails, the redelivery finds the claims
    # SENDING without a record (UNCERTAIN, no SMS).
    (
        (
            Fault(r"sns.Publish \*\*\*9022", error="throttling", times=3),
            Fault(r"TransactWriteItems StateTable SEND SENDING->PLANNED", times=6),
        ),
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


def test_every_call_of_the_send_path_has_an_injection_point(stack: LocalStack) -> None:
    """The calls a run makes (plus the retry paths') are all covered by POINTS: none is left untested."""
    traced = injector(
        stack,
        Fault(POST_PUBLISH, "after", "read_timeout"),  # finished loan by loan
        Fault(PRE_PUBLISH, "after", "read_timeout"),  # resolved UNCERTAIN
        Fault(r"sns.Publish \*\*\*9022", error="invalid"),  # FAILED, cap given back
        Fault(r"sns.Publish \*\*\*9021", error="throttling", times=3),  # claims and cap given back
    )
    run_like_production(stack)
    ambiguous = injector(stack, AMBIGUOUS_PUBLISH)
    run_like_production(stack)
    calls = traced.calls + ambiguous.calls
    # Which loan a call is for does not make it another call: compare without the loan ids.
    patterns = {re.sub(r" F-\w+", "", fault.pattern) for faults, _ in POINTS for fault in faults}
    # The phone-hash key (KEY / PHONE_HASH) is fetched once per container, by whichever function needs it first
    # (tests/unit/test_phone_keys.py): not a call of every run.
    shapes = {re.sub(r" F-\w+", "", call) for call in calls if "PHONE_HASH" not in call}
    uncovered = sorted(shape for shape in shapes if not any(re.search(p, shape) for p in patterns))
    assert uncovered == []
    print(f"\n{len(POINTS)} injected-fault scenarios cover the {len(shapes)} kinds of call of the send path")


# ---------------------------------------------------------------- named scenarios

EVENTS = Path(__file__).resolve().parents[2] / "events"


def sqs_event(messages: list[dict[str, Any]], stack: LocalStack) -> dict[str, Any]:
    """The SQS event Lambda would build from received messages (events/sqs_send_job.json's shape)."""
    template = json.loads((EVENTS / "sqs_send_job.json").read_text(encoding="utf-8"))["Records"][0]
    return {
        "Records": [
            {
                **template,
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "md5OfBody": m["MD5OfBody"],
                "eventSourceARN": stack.queue_arn("ReminderQueue"),
            }
            for m in messages
        ]
    }


def receive_all(stack: LocalStack) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name=stack.region)
    return list(
        sqs.receive_message(QueueUrl=stack.queue_url("ReminderQueue"), MaxNumberOfMessages=10).get("Messages", [])
    )


def emf_metrics(output: str) -> Counter[str]:
    """Sum of every EMF metric the functions printed (Powertools Metrics writes them to stdout)."""
    totals: Counter[str] = Counter()
    for line in output.splitlines():
        if '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for metric in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
            value = blob[metric["Name"]]
            totals[metric["Name"]] += int(sum(value) if isinstance(value, list) else value)
    return totals


def test_three_concurrent_planners_enqueue_each_stage_once(
    stack: LocalStack, record_property: Callable[[str, object], None]
) -> None:
    """Planners 2 and 3 run inside planner 1, between its reads and its first claim (all for one hour)."""
    reports: list[Any] = []
    installed = injector(stack)

    def two_more_planners() -> None:
        reports.extend(invoke(stack, "PlanRemindersFunction", scheduled_event(AT)) for _ in range(2))

    installed.hooks[r"TransactWriteItems StateTable SEND PLANNED"] = two_more_planners
    reports.insert(0, fire_planner(stack, AT))
    sync_opt_outs(stack, AT)  # F-3 opted out at SNS since planning
    assert not installed.hooks, "the planners did not interleave"
    assert sum(r["lines_enqueued"] for r in reports) == len(PLANNED)  # each stage claimed by one planner
    assert [r["lines_enqueued"] for r in reports] == [0, 4, 0]  # the inner one won every claim
    drain_with_redelivery(stack, AT)
    fire_planner(stack, AT + HOURLY)
    drain_with_redelivery(stack, AT + HOURLY)
    result = check(stack, record_property, "three concurrent planners", CLEAN)
    assert sum(result.sms_per_phone.values()) == 2


def test_a_redelivered_batch_sends_nothing_twice(
    stack: LocalStack, record_property: Callable[[str, object], None]
) -> None:
    fire_planner(stack, AT)
    sync_opt_outs(stack, AT)  # F-3 opted out at SNS since planning
    with time_machine.travel(AT + dt.timedelta(seconds=5), tick=False):
        event = sqs_event(receive_all(stack), stack)
        assert len(event["Records"]) == 3
        first = invoke(stack, "SendRemindersFunction", event)
    with time_machine.travel(AT + REDELIVERY, tick=False):  # SQS hands the same batch over again
        second = invoke(stack, "SendRemindersFunction", event)
    assert first == second == {"batchItemFailures": []}
    result = check(stack, record_property, "redelivered batch", CLEAN)
    assert sum(result.sms_per_phone.values()) == 2


def test_two_of_three_publishes_throttled_are_retried_with_backoff_then_redelivered_and_sent_once(
    stack: LocalStack,
    record_property: Callable[[str, object], None],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fourth = loan("F-4", "B-4", "+8613900139024", "2026-11-25")
    boto3.resource("dynamodb", region_name=stack.region).Table(stack.physical_id("LoansTable")).put_item(Item=fourth)
    drain_stream(stack)
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)  # the sender's backoff, observed instead of waited
    throttled = [Fault(rf"sns.Publish \*\*\*{last4}", error="throttling", times=3) for last4 in ("9022", "9024")]
    installed = injector(stack, *throttled)
    fire_planner(stack, AT)
    sync_opt_outs(stack, AT)  # F-3 opted out at SNS since planning
    capsys.readouterr()
    with time_machine.travel(AT + dt.timedelta(seconds=5), tick=False):
        messages = receive_all(stack)
        first = invoke(stack, "SendRemindersFunction", sqs_event(messages, stack))
    metrics = emf_metrics(capsys.readouterr().out)
    # Three attempts each inside the invocation, with backoff, then handed back to SQS.
    assert all(installed.fired[fault] == 3 for fault in throttled)
    assert metrics["PublishThrottled"] == 4 and metrics["SmsSent"] == 1 and metrics["SendJobsRetriedLater"] == 2
    assert "SendJobFailures" not in metrics  # a throttle is a retry, not a failure
    assert [s for s in slept if s >= 0.1] == [0.2, 0.4, 0.2, 0.4]
    by_borrower = {json.loads(m["Body"])["borrower_id"]: m["MessageId"] for m in messages}
    failed = sorted(f["itemIdentifier"] for f in first["batchItemFailures"])
    assert failed == sorted([by_borrower["B-2"], by_borrower["B-4"]])
    # The failed ones were released (claims PLANNED, day slots given back): their redelivery sends them.
    drain_with_redelivery(stack, AT + REDELIVERY + dt.timedelta(seconds=10))
    result = account(stack, PLANNED | {("F-4", "2026-11-25", "follow_up_3")})
    record_property("fault_duplicates", result.duplicates)
    record_property("fault_lost", result.lost)
    assert result.ends == {**CLEAN, "F-4": "SENT"}
    assert result.duplicates == 0 and sorted(result.sms_per_phone.values()) == [1, 1, 1]


@pytest.mark.parametrize(
    ("fault", "end"),
    [
        (Fault(POST_PUBLISH, "after", "read_timeout"), "SENT"),
        (Fault(POST_PUBLISH + r".* F-1 ", times=6), "UNCERTAIN"),
    ],
    ids=["written-unanswered: completed", "never written: uncertain"],
)
def test_a_failed_record_write_after_publish_never_sends_twice(
    stack: LocalStack, record_property: Callable[[str, object], None], fault: Fault, end: str
) -> None:
    injector(stack, fault)
    run_like_production(stack)
    check(stack, record_property, fault.label, ends(F_1=end))
    (record,) = [r for r in scan(stack, "DeliveriesTable") if r["loan_id"] == "F-1"]
    published = sms_sent(stack)
    assert [phone for phone, _ in published.values()].count("+8613900139021") == 1
    if end == "SENT":
        assert published[record["message_id"]][0] == "+8613900139021"
    else:
        assert record["reason"] == "unknown_after_retry" and "message_id" not in record


def test_an_ambiguous_publish_is_one_uncertain_record_per_loan_and_never_resent(
    stack: LocalStack, record_property: Callable[[str, object], None], capsys: pytest.CaptureFixture[str]
) -> None:
    injector(stack, AMBIGUOUS_PUBLISH)
    capsys.readouterr()
    run_like_production(stack, hours=3)
    assert emf_metrics(capsys.readouterr().out)["SmsUncertain"] == 2  # one SMS covering F-2A and F-2B
    result = check(stack, record_property, "ambiguous publish", ends(F_2A="UNCERTAIN", F_2B="UNCERTAIN"))
    assert result.uncertain_records == 2 and result.sms_per_phone["+8613900139022"] == 1
    for record in scan(stack, "DeliveriesTable"):
        if record["outcome"] == "UNCERTAIN":
            assert record["reason"] == "publish_ReadTimeoutError" and record["body"]


def test_a_publish_refused_for_good_leaves_the_failure_hint_escalation_reads(
    stack: LocalStack, record_property: Callable[[str, object], None]
) -> None:
    injector(stack, Fault(r"sns.Publish", error="invalid"))
    run_like_production(stack)
    check(stack, record_property, "publish refused", ends(F_2A=REFUSED, F_2B=REFUSED))
    state = boto3.client("dynamodb")
    for loan_id in ("F-2A", "F-2B"):
        control = state.get_item(
            TableName=stack.physical_id("StateTable"), Key={"pk": {"S": f"LOAN#{loan_id}"}, "sk": {"S": "CONTROL"}}
        ).get("Item", {})
        assert "last_failed_delivery_at" in control, loan_id


def test_junk_on_the_queue_goes_to_the_dlq_and_never_blocks_the_batch(
    stack: LocalStack, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    fire_planner(stack, AT)
    boto3.resource("dynamodb", region_name=stack.region).Table(stack.physical_id("LoansTable")).delete_item(
        Key={"loan_id": "F-3"}  # planned, then gone upstream
    )
    planned_at = AT.isoformat()
    junk = {
        "not json": "{not json",
        "wrong types": json.dumps({"borrower_id": 7, "lines": "F-1", "planned_at": planned_at}),
        "no lines": json.dumps({"borrower_id": "B-1", "lines": [], "planned_at": planned_at}),
        "naive time": json.dumps({"borrower_id": "B-1", "lines": [], "planned_at": "2026-11-28T02:00:00"}),
    }
    unknown = {
        "borrower_id": "B-X",
        "lines": [{"loan_id": "NO-SUCH-LOAN", "cycle": "2026-11-25", "stage": "follow_up_3"}],
        "planned_at": planned_at,
    }
    sqs = boto3.client("sqs", region_name=stack.region)
    for body in [*junk.values(), json.dumps(unknown)]:
        sqs.send_message(QueueUrl=stack.queue_url("ReminderQueue"), MessageBody=body)
    capsys.readouterr()
    responses = drain_with_redelivery(stack, AT + dt.timedelta(seconds=5))
    output = capsys.readouterr().out
    assert len(responses[0]["batchItemFailures"]) == len(junk)  # only the junk; the rest of the batch went on
    assert sorted(json.dumps(m.get("junk", m)) for m in dead_letters(stack)) == sorted(
        json.dumps(json.loads(b)) if b.startswith('{"') else json.dumps(b) for b in junk.values()
    )
    assert emf_metrics(output)["SendJobFailures"] == 5 * len(junk)  # each receive until the DLQ took it
    assert emf_metrics(output)["SendJobLinesNotPlanned"] == 1
    errors = {str(getattr(r, "error", "")) for r in caplog.records if r.getMessage().startswith("send job failed")}
    assert "body.borrower_id: Input should be a valid string; body.lines: Input should be a valid tuple" in errors
    assert "body: Invalid JSON: key must be a string at line 1 column 2" in errors  # each names what is wrong
    ends_ = account(stack).ends
    assert ends_ == {**CLEAN, "F-3": "SUPPRESSED:loan_not_found"}
    assert not [r for r in scan(stack, "DeliveriesTable") if r["loan_id"] == "NO-SUCH-LOAN"]


MALFORMED_LOAN_EVENTS = [
    "loan_event_malformed.json",
    {"detail-type": "PaymentReceived", "detail": {"loan_id": "F-1"}},  # no amount, no envelope
    {"detail-type": "PromiseToPay", "detail": {"loan_id": "F-1", "promised_date": "tomorrow", "amount": "10"}},
    {"detail-type": "GracePeriodGranted", "detail": {"loan_id": 5, "until": "2026-12-01"}},
    {"detail-type": "ContactOptOut", "detail": {"phone": "12345"}},
    {"detail-type": "RepaymentPlanAgreed", "detail": {"loan_id": "F-1", "instalments": "all of it"}},
    {"detail-type": "NoSuchEvent", "detail": {"loan_id": "F-1"}},
    {"detail-type": "LoanDisputed", "detail": None},
]
MALFORMED_INBOUND = [
    {},
    {"Records": "none"},
    "inbound_sms_stop.json:not json",
    "inbound_sms_stop.json:{}",
    'inbound_sms_stop.json:{"originationNumber": 8613800138000, "messageBody": "STOP"}',
    'inbound_sms_stop.json:{"originationNumber": "12345", "messageBody": "STOP"}',
]


def loan_event(spec: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(spec, str):
        return dict(json.loads((EVENTS / spec).read_text(encoding="utf-8")))
    base = json.loads((EVENTS / "loan_event_payment_received.json").read_text(encoding="utf-8"))
    return {**base, **spec}


def inbound_event(spec: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(spec, dict):
        return spec
    name, _, message = spec.partition(":")
    event: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    event["Records"][0]["Sns"]["Message"] = message
    return event


def test_malformed_loan_events_and_inbound_sms_change_nothing(
    stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    fire_planner(stack, AT)
    before = (scan(stack, "StateTable"), scan(stack, "DeliveriesTable"), sms_sent(stack))
    capsys.readouterr()
    with time_machine.travel(AT, tick=False):
        results = [invoke(stack, "LoanEventsFunction", loan_event(e)) for e in MALFORMED_LOAN_EVENTS]
        results += [invoke(stack, "InboundSmsFunction", inbound_event(e)) for e in MALFORMED_INBOUND]
    statuses = [r.get("status") or r["results"][0] for r in results]
    assert statuses == ["rejected"] * len(statuses), results
    assert emf_metrics(capsys.readouterr().out)["MalformedEvents"] == len(statuses)
    assert (scan(stack, "StateTable"), scan(stack, "DeliveriesTable"), sms_sent(stack)) == before


# ---------------------------------------------------------------- the operator commands on the same stack


def test_dunning_uncertain_lists_the_ambiguous_sends_masked(
    stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    injector(stack, AMBIGUOUS_PUBLISH)
    run_like_production(stack, hours=1)
    rows = reports.uncertain(stack.physical_id("DeliveriesTable"), since=dt.date(2026, 11, 28))
    assert [(r.loan_id, r.stage, r.reason, r.phone) for r in rows] == [
        ("F-2A", "follow_up_6", "publish_ReadTimeoutError", "***9022"),
        ("F-2B", "follow_up_6", "publish_ReadTimeoutError", "***9022"),
    ]
    assert reports.uncertain(stack.physical_id("DeliveriesTable"), since=dt.date(2026, 11, 29)) == []
    capsys.readouterr()
    assert cli.main(["uncertain", "--stack-name", stack.name, "--since", "2026-11-01"]) == 0
    out, err = capsys.readouterr()
    printed = [json.loads(line) for line in out.splitlines()]
    assert [p["loan_id"] for p in printed] == ["F-2A", "F-2B"] and "+86139" not in out
    assert err.strip() == "2 UNCERTAIN record(s)"


def test_dunning_reconcile_finds_a_lost_job_that_no_run_enqueues_again(
    stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    state_table = stack.physical_id("StateTable")
    fire_planner(stack, AT)
    with time_machine.travel(AT + dt.timedelta(seconds=5), tick=False):
        for message in receive_all(stack):  # the jobs are lost: nobody sends them
            boto3.client("sqs", region_name=stack.region).delete_message(
                QueueUrl=stack.queue_url("ReminderQueue"), ReceiptHandle=message["ReceiptHandle"]
            )
    day = dt.date(2026, 11, 28)
    assert reports.reconcile(state_table, day, "Asia/Shanghai", AT + dt.timedelta(minutes=10)) == (4, [])
    touched, open_claims = reports.reconcile(state_table, day, "Asia/Shanghai", AT + REPLAN_AFTER)
    assert touched == 4 and {(c.loan_id, c.state, c.problem) for c in open_claims} == {
        (loan_id, "PLANNED", "planned_not_sent") for loan_id, _, _ in PLANNED
    }
    with time_machine.travel(AT + REPLAN_AFTER, tick=False):
        capsys.readouterr()
        assert cli.main(["reconcile", "--date", "2026-11-28", "--state-table", state_table]) == 1
        assert "2026-11-28: 4 claim(s) touched, 4 without an end state" in capsys.readouterr().err
    # No job twice: the next fires cannot tell a lost job from a slow one, so they enqueue nothing.
    StateRepository(state_table).wake_planner()
    assert fire_planner(stack, AT + HOURLY)["lines_enqueued"] == 0
    # The operator's remedy once the queue and the DLQ are known not to hold them: delete the claims, poke.
    for loan_id, cycle, stage in PLANNED:
        key = {"pk": {"S": f"LOAN#{loan_id}"}, "sk": {"S": f"SEND#{cycle}#{stage}"}}
        boto3.client("dynamodb").delete_item(TableName=state_table, Key=key)
    StateRepository(state_table).wake_planner()
    assert fire_planner(stack, AT + 2 * HOURLY)["lines_enqueued"] == 4
    sync_opt_outs(stack, AT + 2 * HOURLY)  # F-3 opted out at SNS since planning
    drain_with_redelivery(stack, AT + 2 * HOURLY)
    with time_machine.travel(AT + 3 * HOURLY, tick=False):
        assert cli.main(["reconcile", "--date", "2026-11-28", "--stack-name", stack.name]) == 0
    assert account(stack).ends == CLEAN


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["reconcile", "--date", "28/11/2026", "--state-table", "t"], "argument --date: expected a date as YYYY-MM-DD"),
        (["reconcile", "--state-table", "t"], "the following arguments are required: --date"),
        (["reconcile", "--date", "2026-11-28", "--timezone", "Mars/Base", "--state-table", "t"], "--timezone"),
        (["uncertain", "--since", "yesterday", "--deliveries-table", "t"], "argument --since: expected a date"),
    ],
)
def test_operator_commands_name_the_bad_argument(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_operator_commands_need_a_stack_or_tables(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_SAM_STACK_NAME", "DELIVERIES_TABLE", "STATE_TABLE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit):
        cli.main(["uncertain"])
    assert "name the tables: --stack-name (or AWS_SAM_STACK_NAME), or --deliveries-table" in capsys.readouterr().err
