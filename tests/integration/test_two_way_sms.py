"""Two-way SMS on the moto stack (docs/contract.md#inbound-sms): verify a code, HELP, BorrowerReplied; `dunning verify`.

Replies go through InboundSmsFunction as SNS delivers them (events/inbound_sms_*.json); the code
verified is the one a real reminder printed (planner and sender run first).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import time_machine

from dunning.compose import reference_code
from dunning_tools.cli import main
from dunning_tools.local import LocalStack, deploy_stack
from tests.integration.borrower_helpers import (
    LOAN_ID,
    PHONE,
    local,
    plan_and_send,
    put_loan,
    records,
    send_reply,
    sms_sent,
    sns_event,
)
from tests.integration.phone_key_helpers import opted_out
from tests.integration.test_event_sources import matched

US_PHONE = "+14155550123"  # the HELP sample's number
STRANGER = "+8613900139000"
CODE = "6BHGZA"  # events/inbound_sms_verify.json asks about the overdue notice of the sample loan
# Due 2026-11-16, sent 11-17 (1 day past due): 3000.00 + 0.05 % late fee = 3001.50, pay by 11-17 + 3 days.
AMOUNT_ZH, PAY_BY_ZH = "¥3,001.50", "2026年11月20日"


def reply(sample: str, **changes: Any) -> dict[str, Any]:
    """An events/ sample reply with its message's fields changed (body, number, message id...)."""
    event = sns_event(sample)
    sns = event["Records"][0]["Sns"]
    sns["Message"] = json.dumps({**json.loads(sns["Message"]), **changes}, ensure_ascii=False)
    return event


def reminded(stack: LocalStack) -> dict[str, Any]:
    """The sample loan, reminded once (overdue_notice, 2026-11-17): its record."""
    put_loan(stack)
    plan_and_send(stack, local(17))
    (record,) = records(stack, "overdue_notice")
    return record


@pytest.fixture
def bus_queue(local_stack: LocalStack) -> Iterator[str]:
    """An SQS queue receiving every event our own source puts on LoanEventsBus (as the lender's CRM would)."""
    bus = local_stack.physical_id("LoanEventsBus")
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="captured-replies")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = boto3.client("events")
    events.put_rule(Name="capture-replies", EventBusName=bus, EventPattern=json.dumps({"source": ["dunning"]}))
    events.put_targets(Rule="capture-replies", EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn}])
    yield url


def captured(url: str) -> list[str]:
    """The raw events (JSON text) the queue received, consumed (read on the test's day: SQS expires old ones)."""
    sqs = boto3.client("sqs")
    bodies: list[str] = []
    with time_machine.travel(local(17, 12), tick=False):
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            bodies.extend(m["Body"] for m in messages)
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
            sqs.delete_message_batch(QueueUrl=url, Entries=entries)
    return bodies


# ---------------------------------------------------------------- verification


def test_the_sample_verify_event_quotes_the_code_the_reminder_printed(local_stack: LocalStack) -> None:
    record = reminded(local_stack)
    assert record["reference"] == CODE == reference_code(LOAN_ID, "2026-11-16", "overdue_notice")
    assert CODE in sms_sent(PHONE)[0]


def test_the_number_that_got_the_code_gets_the_debt_confirmed_once(local_stack: LocalStack) -> None:
    reminded(local_stack)
    verify = sns_event("inbound_sms_verify.json")  # "核实 6bhgza" from the loan's number

    assert send_reply(local_stack, verify, local(17, 11))["results"] == ["verify_confirmed"]
    assert send_reply(local_stack, verify, local(17, 11, 1))["results"] == ["verify_confirmed"]  # SNS redelivery

    _, answer = sms_sent(PHONE)  # the reminder, then one answer however often the reply arrives
    assert answer.startswith("【信飞】")
    assert CODE in answer and AMOUNT_ZH in answer and PAY_BY_ZH in answer and "400-820-1234" in answer
    # An answer is no reminder: the loan's delivery records (what escalation counts) are unchanged.
    assert [r["stage"] for r in records(local_stack)] == ["overdue_notice"]


def test_another_number_gets_the_hotline_and_nothing_about_the_debt(local_stack: LocalStack) -> None:
    reminded(local_stack)
    stranger = reply("inbound_sms_verify.json", originationNumber=STRANGER, messageBody=f"VERIFY {CODE}")

    assert send_reply(local_stack, stranger, local(17, 11))["results"] == ["verify_unmatched"]

    (answer,) = sms_sent(STRANGER)
    assert "400-820-1234" in answer
    for disclosed in (CODE, LOAN_ID, "3,00", "¥", "$", "王小明", "B-0001", PAY_BY_ZH, "Nov 20"):
        assert disclosed not in answer


def test_a_code_no_one_was_sent_gets_the_same_answer_as_a_stranger(local_stack: LocalStack) -> None:
    reminded(local_stack)
    unknown = reply("inbound_sms_verify.json", messageBody="核实 22222Z")
    stranger = reply("inbound_sms_verify.json", originationNumber=STRANGER, inboundMessageId="other")

    assert send_reply(local_stack, unknown, local(17, 11))["results"] == ["verify_unmatched"]
    assert send_reply(local_stack, stranger, local(17, 11))["results"] == ["verify_unmatched"]
    assert sms_sent(PHONE)[-1] == sms_sent(STRANGER)[-1]  # a stranger cannot tell a real code from a made-up one


def test_a_verify_keyword_without_a_code_explains_how_to_write_one(local_stack: LocalStack) -> None:
    malformed = reply("inbound_sms_verify.json", messageBody="核实 6BHGZ0")  # 0 is never in a code
    assert send_reply(local_stack, malformed, local(17, 11))["results"] == ["verify_malformed"]
    (answer,) = sms_sent(PHONE)
    assert "参考码" in answer and "400-820-1234" in answer


def test_the_fourth_verify_of_a_day_gets_no_answer(local_stack: LocalStack) -> None:
    reminded(local_stack)
    asks = [reply("inbound_sms_verify.json", inboundMessageId=f"ask-{n}") for n in range(5)]

    results = [send_reply(local_stack, ask, local(17, 11, n))["results"][0] for n, ask in enumerate(asks[:4])]
    again = send_reply(local_stack, asks[0], local(17, 12))["results"][0]  # a redelivery of an answered one
    next_day = send_reply(local_stack, asks[4], local(18, 9))["results"][0]

    assert results == ["verify_confirmed"] * 3 + ["verify_confirmed_over_cap"]
    assert again == "verify_confirmed"
    assert next_day == "verify_confirmed"
    assert len(sms_sent(PHONE)) == 1 + 3 + 1  # the reminder, three answers on the 17th, one on the 18th


def test_a_bare_code_shaped_word_no_record_holds_is_just_a_reply(local_stack: LocalStack, bus_queue: str) -> None:
    thanks = reply("inbound_sms_verify.json", messageBody="THANKS")  # six letters of the code alphabet
    assert send_reply(local_stack, thanks, local(17, 11))["results"] == ["borrower_replied"]
    assert sms_sent() == []
    assert len(captured(bus_queue)) == 1


# ---------------------------------------------------------------- HELP


def test_help_gets_brand_hotline_and_how_to_opt_out_and_does_not_opt_out(local_stack: LocalStack) -> None:
    assert send_reply(local_stack, sns_event("inbound_sms_help.json"), local(17, 22))["results"] == ["help_reply"]

    (answer,) = sms_sent(US_PHONE)
    assert "XinFei" in answer and "400-820-1234" in answer and "Reply STOP to opt out" in answer
    assert not opted_out(local_stack, US_PHONE)


def test_help_in_chinese_and_help_to_an_opted_out_number_are_answered(local_stack: LocalStack) -> None:
    send_reply(local_stack, sns_event("inbound_sms_stop.json"), local(17, 9))  # PHONE opts out (one confirmation)
    help_zh = reply("inbound_sms_help.json", originationNumber=PHONE, messageBody="帮助")

    assert send_reply(local_stack, help_zh, local(17, 10))["results"] == ["help_reply"]

    confirmation, answer = sms_sent(PHONE)
    assert "您已退订" in confirmation
    assert answer.startswith("【信飞】") and "回T退订" in answer
    assert opted_out(local_stack, PHONE)  # HELP changes nothing


# ---------------------------------------------------------------- anything else: BorrowerReplied


def test_any_other_reply_goes_to_the_lenders_crm_without_the_number_or_the_text(
    local_stack: LocalStack, bus_queue: str
) -> None:
    record = reminded(local_stack)
    body = "我明天还款，谢谢"
    other = reply("inbound_sms_other.json", previousPublishedMessageId=record["message_id"])

    assert send_reply(local_stack, other, local(17, 11))["results"] == ["borrower_replied"]
    assert send_reply(local_stack, other, local(17, 11, 1))["results"] == ["borrower_replied"]  # redelivery

    (raw,) = captured(bus_queue)  # once
    event = json.loads(raw)
    assert (event["source"], event["detail-type"]) == ("dunning", "BorrowerReplied")
    assert event["detail"] == {
        "masked_phone": "***8000",
        "loan_ids": [LOAN_ID],
        "received_at": "2026-11-17T06:12:41.511000Z",  # the SNS notification's time
        "reply_length": len(body),
        "reply_id": "b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e",
    }
    for secret in (PHONE, PHONE.lstrip("+"), "13800138000", body, "明天还款"):
        assert secret not in raw and json.dumps(secret)[1:-1] not in raw
    assert sms_sent(PHONE)[1:] == []  # not answered by SMS


def test_a_reply_to_an_sms_we_cannot_find_is_published_without_loan_ids(
    local_stack: LocalStack, bus_queue: str
) -> None:
    assert send_reply(local_stack, sns_event("inbound_sms_other.json"), local(17, 11))["results"] == [
        "borrower_replied"
    ]
    (raw,) = captured(bus_queue)
    assert json.loads(raw)["detail"]["loan_ids"] == []


def test_the_loan_events_rule_never_takes_our_own_borrower_replied(moto_aws: None) -> None:
    # Even when the lender lists our own source among its own, the contract's detail-types keep it out.
    stack = deploy_stack(parameters={"AllowedEventSources": "dunning,com.example.loans"})
    ours = {"source": "dunning", "detail-type": "BorrowerReplied", "detail": {"masked_phone": "***8000"}}
    payment = {**sns_event("loan_event_payment_received.json"), "source": "dunning"}
    assert matched(stack, [ours, payment]) == ["dunning:PaymentReceived"]


# ---------------------------------------------------------------- `dunning verify` for hotline agents


def test_dunning_verify_shows_what_a_code_refers_to_and_whether_a_number_got_it(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    reminded(local_stack)
    stack = ["--stack-name", local_stack.name]  # physical table names read from CloudFormation
    capsys.readouterr()  # the functions' own logs

    with time_machine.travel(local(17, 11), tick=False):
        assert main(["verify", CODE.lower(), *stack, "--json"]) == 0
        (line,) = capsys.readouterr().out.splitlines()
        assert json.loads(line) == {
            "loan_id": LOAN_ID,
            "stage": "overdue_notice",
            "cycle": "2026-11-16",
            "sent_at": "2026-11-17T02:00:00.000Z",
            "outcome": "SENT",
            "masked_phone": "***8000",
            "loan_status": "OPEN",
            "amount_due_now": "3001.50",
            "currency": "CNY",
            "pay_by": "2026-11-20",
        }

        assert main(["verify", CODE, *stack, "--phone", PHONE]) == 0
        out = capsys.readouterr().out
        assert f"loan {LOAN_ID}  stage overdue_notice" in out and "due now CNY 3001.50, pay by 2026-11-20" in out
        assert out.rstrip().endswith("received by ***8000: yes") and PHONE not in out
        assert main(["verify", CODE, *stack, "--phone", STRANGER]) == 1
        assert "received by ***9000: no" in capsys.readouterr().out
        assert main(["verify", "22222Z", *stack]) == 1  # no record holds it
        assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["verify", "6BHGZ"], "a reference code has 6 characters, got 5"),
        (["verify", "6BHGZ0"], "never 0, O, 1 or I"),
        (["verify", "6BHGZA", "--phone", "13800138000"], "--phone: must be an E.164 phone number"),
    ],
)
def test_dunning_verify_refuses_bad_input_naming_it(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--stack-name", local_stack.name])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
