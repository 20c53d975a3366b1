"""A day of the functions in a process that traces as Lambda does (`Tracing: Active`); run by test_tracing.py.

`python -m tests.integration.traced_lambda RESULT.json`, with the environment Lambda gives a traced
function: LAMBDA_TASK_ROOT (the Powertools Tracer is on and patches botocore, the X-Ray SDK uses
Lambda's facade segment), `_X_AMZN_TRACE_ID` (sampled) and AWS_XRAY_DAEMON_ADDRESS (where the
test listens, as the X-Ray daemon would). `dunning.observability` is imported here, at the process's
start as a function's modules are at init, so the local runner's POWERTOOLS_TRACE_DISABLED (set per
invoke) does not turn it off. The functions run on the moto stack through the local runner; RESULT.json gets the SMS SNS
took (message id -> [phone, body]) and each invocation's result.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import time_machine
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns import sns_backends

from dunning.observability import tracer
from dunning_tools.local import deploy_stack, drain_queue, drain_stream, invoke
from tests.integration.after_sms_helpers import delivery_status_event

EVENTS = Path(__file__).resolve().parents[2] / "events"
MORNING = dt.datetime(2026, 11, 23, 2, tzinfo=dt.UTC)  # 10:00 in Shanghai: the window is open
SHARDS = 2

BOOK: list[dict[str, Any]] = [
    {  # overdue 3 days: an SMS
        "loan_id": "TR-1",
        "borrower_id": "TB-1",
        "borrower_name": "韩梅梅",
        "phone": "+8613912345678",
        "status": "OPEN",
        "due_date": "2026-11-20",
        "amount_due": Decimal("2400.00"),
        "currency": "CNY",
    },
    {  # overdue 3 days, another borrower: an SMS
        "loan_id": "TR-2",
        "borrower_id": "TB-2",
        "borrower_name": "李雷",
        "phone": "+8613812340021",
        "status": "OPEN",
        "due_date": "2026-11-20",
        "amount_due": Decimal("800.00"),
        "currency": "CNY",
    },
    {  # on SNS's opt-out list: suppressed by the sender
        "loan_id": "TR-3",
        "borrower_id": "TB-3",
        "borrower_name": "欧阳娜娜",
        "phone": "+8613766554399",
        "status": "OPEN",
        "due_date": "2026-11-20",
        "amount_due": Decimal("900.00"),
        "currency": "CNY",
    },
    {  # past the ladder: a collection case and a bureau line
        "loan_id": "TR-4",
        "borrower_id": "TB-4",
        "borrower_name": "Theodora Quill",
        "phone": "+8615011223344",
        "status": "OPEN",
        "due_date": "2026-10-15",
        "amount_due": Decimal("1200.00"),
        "currency": "CNY",
    },
]


def scheduled(sample: str, at: dt.datetime, detail: dict[str, Any]) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / sample).read_text(encoding="utf-8"))
    event["time"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    event["detail"] = detail
    return event


def main(result_path: str) -> None:
    # Built at import, here as in a function's init: before any invoke sets POWERTOOLS_TRACE_DISABLED.
    if tracer.disabled:
        raise SystemExit("the Tracer is off: run with LAMBDA_TASK_ROOT set and POWERTOOLS_TRACE_DISABLED unset")
    results: dict[str, Any] = {}
    with mock_aws():
        stack = deploy_stack(parameters={"MaxPartsPerSecond": "1000"})
        loans = boto3.resource("dynamodb", region_name=stack.region).Table(stack.physical_id("LoansTable"))
        with loans.batch_writer() as batch:
            for item in BOOK:
                batch.put_item(Item=item)
        drain_stream(stack)
        sns_backends[DEFAULT_ACCOUNT_ID][stack.region].opt_out_numbers.append(BOOK[2]["phone"])
        with time_machine.travel(MORNING, tick=False):
            results["sync"] = invoke(stack, "SyncOptOutsFunction", scheduled("scheduled_plan.json", MORNING, {}))
            results["plan"] = [
                invoke(
                    stack,
                    "PlanRemindersFunction",
                    scheduled("scheduled_plan.json", MORNING, {"shard": shard, "shards": SHARDS}),
                )
                for shard in range(SHARDS)
            ]
            results["send"] = drain_queue(stack)
        sms = dict(sns_backends[DEFAULT_ACCOUNT_ID][stack.region].sms_messages)
        later = MORNING + dt.timedelta(hours=4)
        with time_machine.travel(later, tick=False):
            results["delivery"] = [
                invoke(stack, "RecordDeliveryFunction", delivery_status_event(message_id, phone, later))
                for message_id, (phone, _) in sms.items()
            ]
            malformed = json.loads((EVENTS / "loan_event_malformed.json").read_text(encoding="utf-8"))
            results["rejected"] = invoke(stack, "LoanEventsFunction", malformed)
            results["escalate"] = invoke(stack, "EscalateFunction", scheduled("scheduled_escalate.json", later, {}))
            results["bureau"] = [
                invoke(
                    stack,
                    "BureauReportFunction",
                    scheduled("scheduled_bureau.json", later, {"shard": shard, "shards": SHARDS}),
                )
                for shard in range(SHARDS)
            ]
            results["bureau"].append(
                invoke(
                    stack,
                    "BureauReportFunction",
                    scheduled("scheduled_bureau.json", later, {"shards": SHARDS, "assemble": True}),
                )
            )
    Path(result_path).write_text(
        json.dumps({"sms": {k: list(v) for k, v in sms.items()}, "results": results}, ensure_ascii=False),
        encoding="utf-8",
    )


if __name__ == "__main__":
    main(sys.argv[1])
