"""InboundSmsFunction on the moto stack: replies from events/inbound_sms_*.json (SNS two-way SMS)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dunning_tools.local import LocalStack
from tests.integration.borrower_helpers import (
    PHONE,
    is_planner_poke,
    local,
    plan_and_send,
    put_loan,
    send_reply,
    sms_sent,
    sns_event,
    table_items,
)
from tests.integration.phone_key_helpers import opted_out

US_PHONE = "+14155550123"


def _opted_out(stack: LocalStack, phone: str) -> bool:
    return opted_out(stack, phone)  # under the number's keyed hash, never the number


def test_chinese_opt_out_reply_is_confirmed_once_and_nothing_follows(local_stack: LocalStack) -> None:
    put_loan(local_stack)
    reply = sns_event("inbound_sms_stop.json")
    assert send_reply(local_stack, reply, local(17, 9))["results"] == ["opted_out"]
    assert send_reply(local_stack, reply, local(17, 9, 1))["results"] == ["opted_out"]  # SNS redelivery

    assert _opted_out(local_stack, PHONE)
    confirmations = sms_sent(PHONE)
    assert len(confirmations) == 1
    assert "您已退订" in confirmations[0]

    assert plan_and_send(local_stack, local(17))["suppressed"] == {"opted_out": 1}
    assert sms_sent(PHONE) == confirmations


def test_english_stop_in_any_case_with_spaces_opts_out_and_is_answered_in_english(local_stack: LocalStack) -> None:
    reply = sns_event("inbound_sms_stop_en.json")  # " stop "
    assert send_reply(local_stack, reply, local(17, 22))["results"] == ["opted_out"]
    assert _opted_out(local_stack, US_PHONE)
    bodies = sms_sent(US_PHONE)
    assert len(bodies) == 1
    assert "You have opted out" in bodies[0]


def _reply(name: str, body: str, message_id: str = "reply-1") -> dict[str, Any]:
    """An events/ sample reply with another body (and message id), as SNS delivers it."""
    reply = sns_event(name)
    message = json.loads(reply["Records"][0]["Sns"]["Message"])
    reply["Records"][0]["Sns"]["Message"] = json.dumps({**message, "messageBody": body, "inboundMessageId": message_id})
    return reply


@pytest.mark.parametrize(
    ("sample", "body", "phone", "confirmation"),
    [
        ("inbound_sms_stop_en.json", "STOP.", US_PHONE, "You have opted out"),
        ("inbound_sms_stop.json", "退订。", PHONE, "您已退订"),
        ("inbound_sms_stop_en.json", "Stop please", US_PHONE, "You have opted out"),
        ("inbound_sms_stop_en.json", "\u200bSTOP", US_PHONE, "You have opted out"),  # zero-width space: still English
    ],
)
def test_keywords_with_punctuation_words_or_invisible_characters_opt_out(
    local_stack: LocalStack, sample: str, body: str, phone: str, confirmation: str
) -> None:
    assert send_reply(local_stack, _reply(sample, body), local(17, 9))["results"] == ["opted_out"]
    assert _opted_out(local_stack, phone)
    (sent,) = sms_sent(phone)
    assert confirmation in sent


@pytest.mark.parametrize("body", ["I'll pay at the end of the month", "stopover in Paris", "Who is this?"])
def test_replies_that_only_look_like_a_keyword_are_not_acted_on(local_stack: LocalStack, body: str) -> None:
    reply = _reply("inbound_sms_stop_en.json", body)
    assert send_reply(local_stack, reply, local(17, 9))["results"] == ["borrower_replied"]  # for the lender's CRM
    assert not _opted_out(local_stack, US_PHONE)
    assert sms_sent() == []


def test_a_second_opt_out_keyword_gets_no_second_confirmation(local_stack: LocalStack) -> None:
    send_reply(local_stack, sns_event("inbound_sms_stop.json"), local(17, 9))
    another = sns_event("inbound_sms_stop.json")
    message = json.loads(another["Records"][0]["Sns"]["Message"])
    another["Records"][0]["Sns"]["Message"] = json.dumps({**message, "messageBody": "TD", "inboundMessageId": "other"})
    assert send_reply(local_stack, another, local(17, 9, 5))["results"] == ["already_opted_out"]
    assert len(sms_sent(PHONE)) == 1


def test_other_replies_are_published_not_answered_and_opt_nothing_out(local_stack: LocalStack) -> None:
    put_loan(local_stack)
    assert send_reply(local_stack, sns_event("inbound_sms_other.json"), local(17, 9))["results"] == ["borrower_replied"]
    # Only the key (KEY / PHONE_HASH) and the BorrowerReplied claim (and the loan's ladder index item, and its
    # shard's poke when it was written already due): no opt-out, no notice.
    items = table_items(local_stack, "StateTable")
    kinds = sorted(item["sk"]["S"].split("#")[0] for item in items if not is_planner_poke(item))
    assert kinds == ["CONTROL", "PHONE_HASH", "REPLIED"]
    assert not _opted_out(local_stack, PHONE)
    assert sms_sent() == []


def test_malformed_message_is_rejected_and_the_rest_of_the_event_goes_on(local_stack: LocalStack) -> None:
    good = sns_event("inbound_sms_stop.json")
    bad = json.loads(json.dumps(good))
    bad["Records"][0]["Sns"]["Message"] = json.dumps({"originationNumber": "13800138000", "messageBody": "STOP"})
    mixed = {"Records": bad["Records"] + good["Records"]}
    assert send_reply(local_stack, mixed, local(17, 9))["results"] == ["rejected", "opted_out"]

    not_sns = send_reply(local_stack, {"Records": [{"EventSource": "aws:sqs"}]}, local(17, 9))
    assert not_sns["status"] == "rejected"
    assert len(sms_sent(PHONE)) == 1
