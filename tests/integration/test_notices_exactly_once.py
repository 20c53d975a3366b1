"""Service notices under faults, on the moto stack: the same write order as the reminders (docs/exactly-once.md,
"Service notices"). An attempt that dies mid-send is recorded UNCERTAIN by its redelivery and never resent; an
attempt that outlives such a redelivery turns record and claim back to SENT with its message id."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dunning.dal import aws
from dunning_tools.local import LocalStack
from tests.integration.borrower_helpers import (
    LOAN_ID,
    PHONE,
    event,
    local,
    put_loan,
    records,
    send_event,
    sms_sent,
    table_items,
)

PAYMENT = "loan_event_payment_received.json"


@pytest.fixture
def before_publish() -> Iterator[Callable[[Callable[..., Any]], None]]:
    """Run a hook just before the notice's Publish leaves (botocore's event system on the DAL's own client)."""
    events = aws.sns(aws.NO_RETRY).meta.events
    hooks: list[Callable[..., Any]] = []

    def register(hook: Callable[..., Any]) -> None:
        hooks.append(hook)
        events.register("before-call.sns.Publish", hook)

    yield register
    for hook in hooks:
        events.unregister("before-call.sns.Publish", hook)


def notice_claims(stack: LocalStack) -> list[tuple[str, str]]:
    items = table_items(stack, "StateTable")
    return [(i["sk"]["S"], i["state"]["S"]) for i in items if i["sk"]["S"].startswith("NOTICE#payment_confirmation#")]


def test_a_notice_whose_sender_died_before_publish_is_recorded_uncertain_and_never_resent(
    local_stack: LocalStack, before_publish: Callable[[Callable[..., Any]], None]
) -> None:
    put_loan(local_stack)

    def die(**_: Any) -> None:
        raise SystemExit("runtime stopped")  # not an AWS error: the invocation just ends

    before_publish(die)
    with pytest.raises(SystemExit):
        send_event(local_stack, event(PAYMENT), local(20, 11, 15))
    assert [state for _, state in notice_claims(local_stack)] == ["SENDING"]

    retried = send_event(local_stack, event(PAYMENT), local(20, 11, 20))

    assert retried["confirmation"] == "uncertain"
    assert sms_sent(PHONE) == []
    assert [(r["outcome"], r["reason"]) for r in records(local_stack, "payment_confirmation")] == [
        ("UNCERTAIN", "unknown_after_retry")
    ]
    assert [state for _, state in notice_claims(local_stack)] == ["UNCERTAIN"]
    assert send_event(local_stack, event(PAYMENT), local(20, 11, 30))["confirmation"] == "duplicate"
    assert sms_sent(PHONE) == []


def test_an_attempt_that_outlives_its_redelivery_sets_record_and_claim_back_to_sent(
    local_stack: LocalStack, before_publish: Callable[[Callable[..., Any]], None]
) -> None:
    put_loan(local_stack)
    redelivered: list[Any] = []

    def redeliver_once(**_: Any) -> None:
        if not redelivered:  # a redelivery of the same event arrives while this attempt is about to publish
            redelivered.append(send_event(local_stack, event(PAYMENT), local(20, 11, 16)))

    before_publish(redeliver_once)
    first = send_event(local_stack, event(PAYMENT), local(20, 11, 15))

    assert redelivered[0]["confirmation"] == "uncertain"  # it could not know this attempt was alive
    assert first["confirmation"] == "sent"
    assert len(sms_sent(PHONE)) == 1
    confirmations = records(local_stack, "payment_confirmation")
    assert [(r["outcome"], r["loan_id"]) for r in confirmations] == [("SENT", LOAN_ID)]
    assert confirmations[0]["message_id"]
    assert [state for _, state in notice_claims(local_stack)] == ["SENT"]
