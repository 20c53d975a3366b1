"""X-Ray traces of the functions, as Lambda would send them with `Tracing: Active`.

A day of the functions (loan changes, opt-out sync, the planner shard by shard, the sender, delivery
status, escalation, the bureau's parts and file) runs in a process of its own with Lambda's tracing
environment (`traced_lambda.py`), through the local runner on a moto stack; its X-Ray SDK sends every
subsegment over UDP to a socket here, where the X-Ray daemon would listen. The tests read what
would reach X-Ray: the annotations and figures each run promises, the traced units and AWS calls,
and no phone number, name or message body anywhere in it.

Apart from that, in-process: the local runner traces nothing and the X-Ray SDK warns nothing.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dunning.observability import tracer
from dunning_tools.local import LocalStack, invoke
from tests.conftest import scheduled_event
from tests.integration.traced_lambda import BOOK, MORNING

ROOT = Path(__file__).resolve().parents[2]
TRACE_HEADER = "Root=1-6741a2c0-5e0f3d2b8c9a1f4e7d6b5a49;Parent=53995c3f42cd8ad8;Sampled=1"


@dataclass
class TracedDay:
    datagrams: str  # everything sent to the daemon, as sent
    entities: list[dict[str, Any]]  # each datagram's segment document
    sms: dict[str, tuple[str, str]]  # what SNS took: message id -> (phone, body)
    results: dict[str, Any]

    def handlers(self, stage: str) -> list[dict[str, Any]]:
        """The `## lambda_handler` subsegments of the runs of one stage, in order."""
        return [
            entity
            for entity in self.entities
            if entity["name"] == "## lambda_handler" and entity.get("annotations", {}).get("function_stage") == stage
        ]

    def figures(self, stage: str) -> list[dict[str, Any]]:
        return [entity["metadata"]["dunning"]["figures"] for entity in self.handlers(stage)]


class _Daemon:
    """A UDP socket standing in for the X-Ray daemon; keeps every datagram it receives."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(0.1)
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def address(self) -> str:
        host, port = self.socket.getsockname()
        return f"{host}:{port}"

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                self.received.append(self.socket.recv(65535))
            except TimeoutError:
                continue

    def close(self) -> list[bytes]:
        self._stop.set()
        self._reader.join()
        self.socket.setblocking(False)
        while True:  # whatever arrived after the reader's last read
            try:
                self.received.append(self.socket.recv(65535))
            except BlockingIOError:
                break
        self.socket.close()
        return self.received


@pytest.fixture(scope="module")
def traced_day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TracedDay]:
    result_path = tmp_path_factory.mktemp("traced") / "result.json"
    daemon = _Daemon()
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "POWERTOOLS_"))}
    environment.update(
        {
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "shared"), str(ROOT / "tools")]),
            "LAMBDA_TASK_ROOT": str(ROOT),
            "_X_AMZN_TRACE_ID": TRACE_HEADER,
            "AWS_XRAY_DAEMON_ADDRESS": daemon.address,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    try:
        run = subprocess.run(
            [sys.executable, "-m", "tests.integration.traced_lambda", str(result_path)],
            cwd=ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        datagrams = daemon.close()
    assert run.returncode == 0, run.stderr[-3000:]
    texts = [datagram.decode("utf-8") for datagram in datagrams]
    # Each datagram: the daemon protocol's header line, then one segment document.
    assert texts and all(text.startswith('{"format":"json","version":1}\n') for text in texts)
    result = json.loads(result_path.read_text(encoding="utf-8"))
    yield TracedDay(
        datagrams="\n".join(texts),
        entities=[json.loads(text.split("\n", 1)[1]) for text in texts],
        sms={message_id: (phone, body) for message_id, (phone, body) in result["sms"].items()},
        results=result["results"],
    )


def test_each_run_is_annotated_with_its_stage_shard_and_outcome(traced_day: TracedDay) -> None:
    def annotations(stage: str) -> list[dict[str, Any]]:
        found = [dict(entity["annotations"]) for entity in traced_day.handlers(stage)]
        for each in found:
            assert each.pop("Service") == "dunning"  # Powertools' own, with ColdStart
            assert isinstance(each.pop("ColdStart"), bool)
        return found

    common = {"resumed": False, "complete": True}
    assert annotations("plan") == [
        {"function_stage": "plan", "shard": 0, "shards": 2, **common, "asleep": False, "jobs_enqueued": 1},
        {"function_stage": "plan", "shard": 1, "shards": 2, **common, "asleep": False, "jobs_enqueued": 2},
    ]
    assert annotations("send") == [{"function_stage": "send", "records": 3, "jobs": 3, "sms_sent": 2}]
    assert annotations("delivery_status") == [{"function_stage": "delivery_status"}] * 2
    assert annotations("escalate") == [{"function_stage": "escalate", "shards": 1, **common, "cases_opened": 2}]
    assert annotations("bureau_part") == [
        {"function_stage": "bureau_part", "shard": 0, "shards": 2, **common},
        {"function_stage": "bureau_part", "shard": 1, "shards": 2, **common},
    ]
    assert annotations("bureau_assemble") == [{"function_stage": "bureau_assemble", "shards": 2, **common}]
    assert annotations("opt_out_sync") == [{"function_stage": "opt_out_sync", "complete": True}]
    assert annotations("loan_change") == [{"function_stage": "loan_change", "records": len(BOOK)}]
    # A rejected event is marked (its stage is set once it parses: this one never did).
    rejected = [e for e in traced_day.entities if e.get("annotations", {}).get("rejected") is True]
    assert traced_day.results["rejected"]["status"] == "rejected"
    assert [e["name"] for e in rejected] == ["## lambda_handler"]
    assert "function_stage" not in rejected[0]["annotations"]
    # The first invocation of the process is the cold start.
    first = next(entity for entity in traced_day.entities if entity["name"] == "## lambda_handler")
    assert first["annotations"]["ColdStart"] is True


def test_each_run_keeps_its_counts_as_figures(traced_day: TracedDay) -> None:
    plan = traced_day.figures("plan")
    assert [figures["loans_read"] for figures in plan] == [1, 2]  # TR-4 is past the ladder's window
    assert sum(figures["jobs_enqueued"] for figures in plan) == 3
    (send,) = traced_day.figures("send")
    assert send["sms_sent"] == send["loans_reminded"] == 2
    assert send["suppressed"] == {"opted_out": 1}  # TR-3's number is on SNS's opt-out list
    assert (send["jobs_done"], send["jobs_failed"], send["uncertain"]) == (3, 0, 0)
    (escalate,) = traced_day.figures("escalate")
    assert escalate["opened"] == {"ladder_exhausted": 1, "opted_out": 1}
    (assembled,) = traced_day.figures("bureau_assemble")
    assert (assembled["lines"], assembled["delinquent"], assembled["buckets"]) == (1, 1, {"M2": 1})
    assert [figures["records"] for figures in traced_day.figures("delivery_status")] == [{"applied": 1}] * 2
    # Figures are counts only: the reports' cursors, dates, file keys and checksums stay out.
    assert "sha256" not in assembled and "file" not in assembled
    assert all("cursor" not in figures and "now" not in figures for figures in plan)


def test_units_and_aws_calls_are_subsegments_of_the_run(traced_day: TracedDay) -> None:
    names = Counter(entity["name"] for entity in traced_day.entities)
    assert names["## dunning.planner.Planner.run"] == 2
    assert names["## dunning.sender.Sender.send_batch"] == 1
    assert names["## dunning.dal.sms.SmsGateway.publish"] == len(traced_day.sms) == 2
    operations = Counter(
        (entity["name"], entity["aws"]["operation"])
        for entity in traced_day.entities
        if entity.get("namespace") == "aws"
    )
    assert operations["sns", "Publish"] == 2
    assert operations["sqs", "SendMessageBatch"] >= 1
    assert operations["dynamodb", "Query"] >= 1
    # The traced units record no return value (capture_response=False): only what trace_outcome puts there.
    units = [entity for entity in traced_day.entities if entity["name"].startswith("## dunning.")]
    assert units and not any("metadata" in entity for entity in units)


def _spellings(text: str) -> set[str]:
    """The ways `text` can appear in a segment document: as is and JSON-escaped."""
    return {text, json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1]}


def _secrets(sms: dict[str, tuple[str, str]]) -> dict[str, set[str]]:
    secrets: dict[str, set[str]] = {}
    for item in BOOK:
        digits = item["phone"].lstrip("+")
        secrets[f"{item['loan_id']} phone"] = {item["phone"], digits, digits[2:]}
        secrets[f"{item['loan_id']} name"] = _spellings(item["borrower_name"])
    for message_id, (_, body) in sms.items():
        secrets[f"body of {message_id}"] = _spellings(body) | _spellings(max(body.splitlines(), key=len))
    return secrets


def _leaks(text: str, secrets: dict[str, set[str]]) -> dict[str, list[str]]:
    found = {what: sorted(s for s in spellings if s in text) for what, spellings in secrets.items()}
    return {what: spellings for what, spellings in found.items() if spellings}


def test_no_trace_carries_a_phone_number_a_name_or_a_message_body(traced_day: TracedDay) -> None:
    # There was something to leak: two SMS went out, to numbers of the book, through traced Publish calls.
    assert sorted(phone for phone, _ in traced_day.sms.values()) == sorted([BOOK[0]["phone"], BOOK[1]["phone"]])
    assert len(traced_day.entities) > 100

    assert not _leaks(traced_day.datagrams, _secrets(traced_day.sms))


def test_the_leak_check_finds_a_number_or_a_body_in_a_segment_document() -> None:
    """The check above can fail: a careless annotation or metadata is found, JSON-escaped or not."""
    careless = json.dumps({"annotations": {"phone": BOOK[0]["phone"]}, "metadata": {"name": BOOK[3]["borrower_name"]}})
    sms = {"m-1": (BOOK[1]["phone"], "【品牌】您好，您的借款已逾期。\n回T退订")}

    found = _leaks(careless + json.dumps({"body": sms["m-1"][1]}), _secrets(sms))

    assert set(found) == {"TR-1 phone", "TR-4 name", "body of m-1"}


def test_the_local_runner_traces_nothing_and_the_xray_sdk_warns_nothing(
    local_stack: LocalStack, caplog: pytest.LogCaptureFixture
) -> None:
    """No X-Ray daemon locally: the Tracer is off (no LAMBDA_TASK_ROOT; the runner also sets
    POWERTOOLS_TRACE_DISABLED), so a handler run sends nothing and logs no 'cannot find segment'."""
    caplog.set_level(logging.DEBUG, logger="aws_xray_sdk")

    report = invoke(local_stack, "PlanRemindersFunction", scheduled_event(MORNING))

    assert report["complete"] is True
    assert tracer.disabled
    xray = [record for record in caplog.records if record.name.startswith("aws_xray_sdk")]
    assert [record.getMessage() for record in xray if record.levelno >= logging.WARNING] == []
