"""Fuzzing the handlers' edges on the moto stack: random SQS bodies, EventBridge events and replies never raise.

SendRemindersFunction reports every body that is not a send job as a batch item failure (SQS redelivers,
then the DLQ): junk is never acknowledged. LoanEventsFunction applies a valid event and rejects one with
a single hostile change, which then changes nothing (the generator knows which is which: junk silently
applied fails). InboundSmsFunction rejects a reply it cannot attribute to a number, and opts nobody out
for it. Few examples each: every one is a real invocation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dunning.models.events import LOAN_EVENT_TYPES
from dunning.models.jobs import SendJob
from dunning_tools.local import LocalStack, invoke
from tests.integration.after_sms_helpers import state_item
from tests.strategies import LOAN_ID, inbound_messages, loan_events

EVENTS = Path(__file__).resolve().parents[2] / "events"
SQS_RECORD = json.loads((EVENTS / "sqs_send_job.json").read_text(encoding="utf-8"))["Records"][0]
LOAN_EVENT = json.loads((EVENTS / "loan_event_payment_received.json").read_text(encoding="utf-8"))
FUZZ = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])

JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=8,
)
LINE = st.fixed_dictionaries(
    {
        "loan_id": st.one_of(st.text(max_size=12), JSON),
        "cycle": st.one_of(st.sampled_from(["2026-11-25", "2026-02-30", ""]), JSON),
        "stage": st.one_of(st.sampled_from(["follow_up_3", "due_today", "Follow Up"]), JSON),
    }
)
NEAR_JOBS = st.fixed_dictionaries(
    {"borrower_id": st.one_of(st.text(max_size=12), JSON), "lines": st.one_of(st.lists(LINE, max_size=3), JSON)},
    optional={"planned_at": st.one_of(st.sampled_from(["2026-11-28T02:00:00Z", "2026-11-28T02:00:00"]), JSON)},
)
BODIES = st.one_of(st.text(max_size=60), JSON.map(json.dumps), NEAR_JOBS.map(json.dumps))
DETAIL_TYPES = st.sampled_from([*LOAN_EVENT_TYPES, "Unknown"])
DETAILS = st.one_of(
    JSON,
    st.fixed_dictionaries(
        {},
        optional={
            "loan_id": st.one_of(st.just("L-FUZZ-1"), JSON),
            "amount": st.one_of(st.sampled_from(["10.00", "-1", "abc", "1E+99"]), JSON),
            "currency": st.one_of(st.sampled_from(["CNY", "XYZ"]), JSON),
            "paid_at": st.one_of(st.sampled_from(["2026-11-20T03:15:00Z", "yesterday"]), JSON),
            "promised_date": st.one_of(st.sampled_from(["2026-12-01", "2026-13-01"]), JSON),
            "until": st.one_of(st.sampled_from(["2026-12-01", ""]), JSON),
            "instalments": st.one_of(st.lists(st.fixed_dictionaries({"due_date": JSON, "amount": JSON})), JSON),
            "phone": st.one_of(st.sampled_from(["+8613800138000", "12345"]), JSON),
            "reason": JSON,
        },
    ),
)


@FUZZ
@given(bodies=st.lists(BODIES, min_size=1, max_size=3))
def test_random_sqs_bodies_are_reported_as_batch_failures_never_raised(
    module_stack: LocalStack, bodies: list[str]
) -> None:
    records = [{**SQS_RECORD, "messageId": f"fuzz-{i}", "body": body} for i, body in enumerate(bodies)]
    response = invoke(module_stack, "SendRemindersFunction", {"Records": records})
    failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    assert failed <= {r["messageId"] for r in records}
    assert {r["messageId"] for r in records if not is_send_job(r["body"])} <= failed  # junk is never acknowledged


def is_send_job(body: str) -> bool:
    try:
        SendJob.model_validate_json(body)
    except ValueError:
        return False
    return True


@FUZZ
@given(
    detail_type=st.one_of(DETAIL_TYPES, JSON), detail=DETAILS, drop=st.sets(st.sampled_from(["id", "time", "source"]))
)
def test_random_loan_events_never_raise(
    module_stack: LocalStack, detail_type: Any, detail: Any, drop: set[str]
) -> None:
    event = {k: v for k, v in {**LOAN_EVENT, "detail-type": detail_type, "detail": detail}.items() if k not in drop}
    response = invoke(module_stack, "LoanEventsFunction", event)
    assert response["status"] in {"applied", "rejected"}
    if drop or not isinstance(detail, dict) or detail_type not in LOAN_EVENT_TYPES:
        assert response["status"] == "rejected"  # no id, time or source, or no event we know: never applied


@FUZZ
@given(case=loan_events(LOAN_EVENT))
def test_a_valid_loan_event_is_applied_and_one_hostile_change_makes_it_rejected_and_change_nothing(
    module_stack: LocalStack, case: tuple[dict[str, Any], bool]
) -> None:
    event, valid = case
    control_before = state_item(module_stack, f"LOAN#{LOAN_ID}", "CONTROL")
    optout_before = state_item(module_stack, "PHONE#+8613800138000", "OPTOUT")

    response = invoke(module_stack, "LoanEventsFunction", event)

    assert response["status"] == ("applied" if valid else "rejected"), response
    if not valid:
        assert state_item(module_stack, f"LOAN#{LOAN_ID}", "CONTROL") == control_before
        assert state_item(module_stack, "PHONE#+8613800138000", "OPTOUT") == optout_before


@FUZZ
@given(case=inbound_messages())
def test_a_reply_that_cannot_be_attributed_to_a_number_is_rejected_and_opts_nobody_out(
    module_stack: LocalStack, case: tuple[str, bool]
) -> None:
    message, valid = case
    event = json.loads((EVENTS / "inbound_sms_stop_en.json").read_text(encoding="utf-8"))
    event["Records"][0]["Sns"]["Message"] = message
    optouts_before = optout_items(module_stack)

    response = invoke(module_stack, "InboundSmsFunction", event)

    (result,) = response["results"]
    if not valid:
        assert result == "rejected"
        assert optout_items(module_stack) == optouts_before
    else:
        assert result != "rejected"


def optout_items(stack: LocalStack) -> list[dict[str, Any]]:
    table = stack.physical_id("StateTable")
    items = boto3.client("dynamodb").scan(TableName=table)["Items"]
    return sorted((i for i in items if i["sk"]["S"] == "OPTOUT"), key=lambda i: i["pk"]["S"])
