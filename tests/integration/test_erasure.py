"""BorrowerErasureRequested end to end on the moto stack: contact details go, evidence and opt-outs stay."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import Binary

from dunning.dal import phone_keys
from dunning_tools.local import LocalStack
from tests.conftest import RunHours
from tests.integration.borrower_helpers import event, local, plan_and_send, send_event, send_reply, sms_sent, sns_event
from tests.integration.phone_key_helpers import opted_out, phone_partition

PHONE = "+8613912344759"  # the borrower erased: last four digits 4759
OTHER_PHONE = "+8613700001122"  # another borrower, who keeps everything
KEY_ATTRIBUTES = {"pk", "sk", "loan_id", "record_id", "borrower_id", "message_id"}


def loan(loan_id: str, borrower_id: str, phone: str, name: str) -> dict[str, Any]:
    return {
        "loan_id": loan_id,
        "borrower_id": borrower_id,
        "borrower_name": name,
        "phone": phone,
        "status": "OPEN",
        "due_date": "2026-11-16",
        "amount_due": "3000.00",
        "currency": "CNY",
    }


def erasure(borrower_id: str = "B-ERASE", phone: str = PHONE) -> dict[str, Any]:
    return event("loan_event_erasure.json", borrower_id=borrower_id, phone=phone)


def stop_reply(phone: str, message_id: str) -> dict[str, Any]:
    reply = sns_event("inbound_sms_stop.json")
    message = json.loads(reply["Records"][0]["Sns"]["Message"])
    reply["Records"][0]["Sns"]["Message"] = json.dumps(
        {**message, "originationNumber": phone, "inboundMessageId": message_id}
    )
    return reply


def scan(stack: LocalStack, logical_id: str) -> list[dict[str, Any]]:
    table = boto3.resource("dynamodb", region_name=stack.region).Table(stack.physical_id(logical_id))
    return list(table.scan(ConsistentRead=True)["Items"])


def traces_of(phone: str, items: list[dict[str, Any]]) -> list[str]:
    """Where the number (E.164, digits, national number) is in any value, or its last 4 digits in a key."""
    forms = (phone, phone.lstrip("+"), phone.removeprefix("+86"))
    found = []
    for item in items:
        for name, value in item.items():
            text = value.value.decode("latin-1") if isinstance(value, Binary) else str(value)
            if any(form in text for form in forms) or (name in KEY_ATTRIBUTES and phone[-4:] in text):
                found.append(f"{item.get('pk', item.get('loan_id'))}/{name}")
    return found


@pytest.fixture
def erased_book(local_stack: LocalStack, seed_loans: Any, run_hours: RunHours) -> LocalStack:
    """Two loans of the borrower to erase and one of another borrower, reminded, paid, opted out by reply."""
    seed_loans(
        loan("L-E1", "B-ERASE", PHONE, "王小明"),
        loan("L-E2", "B-ERASE", PHONE, "王小明"),
        loan("L-K1", "B-KEEP", OTHER_PHONE, "李四"),
    )
    run_hours(local_stack, local(17, 10), hours=1)  # overdue_notice to both borrowers
    assert len(sms_sent(PHONE)) == 1 and len(sms_sent(OTHER_PHONE)) == 1
    payment = event("loan_event_payment_received.json", loan_id="L-E1", amount="100.00")
    assert send_event(local_stack, payment, local(18, 11))["confirmation"] == "sent"
    assert send_reply(local_stack, stop_reply(PHONE, "stop-1"), local(18, 12))["results"] == ["opted_out"]
    assert opted_out(local_stack, PHONE)
    return local_stack


def test_erasure_removes_contact_details_keeps_outcomes_and_the_opt_out(erased_book: LocalStack) -> None:
    stack = erased_book
    before = {(r["loan_id"], r["record_id"]): r for r in scan(stack, "DeliveriesTable")}
    assert traces_of(PHONE, list(before.values())), "the records held the number before the erasure"
    # Opt-out and notices are hashed from the start: the number is only on the open loans' CONTROL items,
    # as the contact details the planner's jobs carry (dal/ladder.py).
    assert sorted(traces_of(PHONE, scan(stack, "StateTable"))) == ["LOAN#L-E1/phone", "LOAN#L-E2/phone"]

    result = send_event(stack, erasure(), local(19, 9))

    # One consolidated SMS for the two loans (a record each) and the payment confirmation.
    assert result["status"] == "applied" and result["records_erased"] == 3
    after = {(r["loan_id"], r["record_id"]): r for r in scan(stack, "DeliveriesTable")}
    assert after.keys() == before.keys()
    for key, record in after.items():
        if record["borrower_id"] == "B-ERASE":
            assert "phone" not in record and "body" not in record
            kept = ("outcome", "stage", "cycle", "amount_due", "currency", "created_at", "reference")
            assert {k: record.get(k) for k in kept} == {k: before[key].get(k) for k in kept}
        else:
            assert record == before[key]  # another borrower loses nothing
    assert {r["outcome"] for r in after.values() if r["borrower_id"] == "B-ERASE"} == {"SENT"}

    # Nowhere in the product's tables, not even the last four digits as a key.
    assert traces_of(PHONE, scan(stack, "DeliveriesTable") + scan(stack, "StateTable")) == []
    assert traces_of(OTHER_PHONE, scan(stack, "DeliveriesTable")) != []

    # The opt-out still blocks the number: the next reminder is suppressed, no SMS goes out.
    assert opted_out(stack, PHONE)
    sent_before = sms_sent(PHONE)
    report = plan_and_send(stack, local(20, 10))
    assert report["suppressed"].get("opted_out", 0) >= 1
    assert sms_sent(PHONE) == sent_before

    evidence = next(i for i in scan(stack, "StateTable") if i["pk"] == "BORROWER#B-ERASE" and i["sk"] == "ERASED")
    assert evidence["records_erased"] == 3 and "erased_at" in evidence and "requested_at" in evidence
    assert evidence["loan_contacts_erased"] == 2
    kept = [i for i in scan(stack, "StateTable") if i["pk"] == "LOAN#L-K1" and i["sk"] == "CONTROL"]
    assert kept[0]["phone"] == OTHER_PHONE and kept[0]["borrower_name"] == "李四"  # another borrower's stay


def test_upstream_writes_after_an_erasure_never_copy_the_contact_details_back(
    erased_book: LocalStack, seed_loans: Any
) -> None:
    stack = erased_book
    send_event(stack, erasure(), local(19, 9))
    opt_in = event("loan_event_opt_in.json", phone=PHONE)
    send_event(stack, opt_in, local(19, 9, 30))  # so that the next reminder is sent, not suppressed

    # Upstream has not erased its own copy yet: it changes L-E2 and opens a new loan for the borrower.
    seed_loans(
        {**loan("L-E2", "B-ERASE", PHONE, "王小明"), "amount_due": "2900.00"},
        {**loan("L-E3", "B-ERASE", PHONE, "王小明"), "due_date": "2026-11-17"},
    )

    controls = [i for i in scan(stack, "StateTable") if i["sk"] == "CONTROL" and i["pk"].startswith("LOAN#L-E")]
    assert {i["pk"] for i in controls} == {"LOAN#L-E1", "LOAN#L-E2", "LOAN#L-E3"}
    assert traces_of(PHONE, scan(stack, "StateTable")) == []
    assert all("borrower_name" not in i and "contact_of" not in i for i in controls)
    assert next(i for i in controls if i["pk"] == "LOAN#L-E2")["amount_due"] == Decimal("2900.00")  # still kept
    # Without the contact details on the index the job carries no snapshot: the sender reads the live loans.
    sent_before = len(sms_sent(PHONE))
    plan_and_send(stack, local(20, 10))
    assert len(sms_sent(PHONE)) == sent_before + 1


def test_erasing_twice_changes_nothing(erased_book: LocalStack) -> None:
    stack = erased_book
    send_event(stack, erasure(), local(19, 9))
    records, state = scan(stack, "DeliveriesTable"), scan(stack, "StateTable")

    again = send_event(stack, erasure(), local(19, 10))

    assert (again["records_erased"], again["state_items_deleted"]) == (0, 0)
    assert scan(stack, "DeliveriesTable") == records
    evidence_key = ("BORROWER#B-ERASE", "ERASED")
    assert [i for i in scan(stack, "StateTable") if (i["pk"], i["sk"]) != evidence_key] == [
        i for i in state if (i["pk"], i["sk"]) != evidence_key
    ]
    evidence = next(i for i in scan(stack, "StateTable") if (i["pk"], i["sk"]) == evidence_key)
    assert evidence["records_erased"] == 3  # counts add up over runs: the second erased nothing


def test_an_erasure_cut_short_is_finished_by_the_redelivery(erased_book: LocalStack) -> None:
    stack = erased_book
    deliveries = boto3.client("dynamodb")
    table = stack.physical_id("DeliveriesTable")
    first = next(r for r in scan(stack, "DeliveriesTable") if r["borrower_id"] == "B-ERASE")
    # A run that died after scrubbing one record: that record has lost its number, the rest not.
    deliveries.update_item(
        TableName=table,
        Key={"loan_id": {"S": first["loan_id"]}, "record_id": {"S": first["record_id"]}},
        UpdateExpression="REMOVE phone, body",
    )

    result = send_event(stack, erasure(), local(19, 9))

    assert result["records_erased"] == 2
    assert traces_of(PHONE, scan(stack, "DeliveriesTable") + scan(stack, "StateTable")) == []


def test_an_opt_out_stored_before_hashing_is_honoured_then_moved_under_the_hash_by_the_erasure(
    local_stack: LocalStack, seed_loans: Any
) -> None:
    state = stack_table = local_stack.physical_id("StateTable")
    legacy = {"pk": {"S": f"PHONE#{PHONE}"}, "sk": {"S": "OPTOUT"}}
    boto3.client("dynamodb").put_item(
        TableName=stack_table, Item={**legacy, "phone": {"S": PHONE}, "source": {"S": "inbound_sms"}}
    )
    boto3.client("dynamodb").put_item(
        TableName=state,
        Item={"pk": {"S": f"PHONE#{PHONE}"}, "sk": {"S": "NOTICE#opt_out_confirmation#old"}, "state": {"S": "SENT"}},
    )
    seed_loans(loan("L-E1", "B-ERASE", PHONE, "王小明"))
    assert plan_and_send(local_stack, local(17, 10))["suppressed"] == {"opted_out": 1}  # the dual read

    result = send_event(local_stack, erasure(), local(18, 9))

    assert result["state_items_deleted"] == 1  # the old notice; the opt-out was moved, then its raw item deleted
    items = scan(local_stack, "StateTable")
    assert traces_of(PHONE, items) == []
    moved = next(i for i in items if i["pk"] == phone_partition(local_stack, PHONE) and i["sk"] == "OPTOUT")
    assert moved["source"] == "inbound_sms"
    assert plan_and_send(local_stack, local(19, 10))["suppressed"] == {"opted_out": 1}
    assert sms_sent(PHONE) == []


def test_claims_expire_and_the_phone_hash_key_survives_a_new_container(erased_book: LocalStack) -> None:
    items = scan(erased_book, "StateTable")
    sends = [i for i in items if str(i["sk"]).startswith("SEND#")]
    notices = [i for i in items if str(i["sk"]).startswith("NOTICE#")]
    assert sends and notices
    cycle_end = dt.datetime(2026, 11, 16, tzinfo=dt.UTC) + dt.timedelta(days=400)
    assert {int(i["expires_at"]) for i in sends} == {int(cycle_end.timestamp())}
    assert all(int(i["expires_at"]) > int(local(18).timestamp()) for i in notices)

    # A cold container unwraps the stored key (KMS Decrypt) and hashes the number the same way.
    hashed = phone_partition(erased_book, PHONE)
    phone_keys._data_key.cache_clear()
    assert phone_partition(erased_book, PHONE) == hashed
    assert opted_out(erased_book, PHONE)
