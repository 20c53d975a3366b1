"""`dunning local start|stop|status`, `seed`, `invoke`, `local drain` and `loan` as a user runs them: each
command its own process, the stack in a background moto server on 127.0.0.1 that keeps its data across
a restart. Every command is bounded in time; a server left behind by a failure is stopped by its pid."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from dunning.dal.aws import reset_clients
from dunning.dal.phone_keys import PhoneKeys

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT = 180  # seconds; a start deploys the template (a few seconds) and restores the snapshot
PLAN_EVENT = {**json.loads((REPO_ROOT / "events" / "scheduled_plan.json").read_text()), "time": "2026-12-01T02:00:00Z"}


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The state folder of one local stack; whatever server it still names at the end is stopped."""
    folder = tmp_path / "state"
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    yield folder
    pid_file = folder / "server.pid"
    if pid_file.exists():
        pid = int(pid_file.read_text())
        try:
            os.kill(pid, signal.SIGTERM)  # the daemon this test started
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 60
        while pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)


def dunning(state: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "DUNNING_LOCAL_DIR": str(state),
        "PYTHONPATH": f"{REPO_ROOT}:{REPO_ROOT / 'shared'}:{REPO_ROOT / 'tools'}",
    }
    return subprocess.run(
        [sys.executable, "-m", "dunning_tools.cli", *args],
        cwd=REPO_ROOT,
        env=environment,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (
        f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr[-3000:]}"
    )
    return result.stdout


def server(state: Path) -> dict[str, Any]:
    info: dict[str, Any] = json.loads((state / "server.json").read_text())
    return info


def contents(state: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Every item of the stack's tables (by logical ID), and the hash the stack gives a seeded number."""
    info = server(state)
    assert info["endpoint"].startswith("http://127.0.0.1:")
    monkeypatch.setenv("AWS_ENDPOINT_URL", info["endpoint"])
    reset_clients()
    cloudformation = boto3.client("cloudformation")
    physical = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in cloudformation.list_stack_resources(StackName=info["stack_name"])["StackResourceSummaries"]
    }
    dynamodb = boto3.client("dynamodb")
    found: dict[str, Any] = {}
    for table in ("LoansTable", "DeliveriesTable", "StateTable"):
        items = dynamodb.scan(TableName=physical[table], ConsistentRead=True)["Items"]
        # The phone-hash key item is wrapped again under the new stack's KMS key: compared by its effect below.
        found[table] = sorted(json.dumps(i, sort_keys=True) for i in items if i.get("pk") != {"S": "KEY"})
    found["hash"] = PhoneKeys(physical["StateTable"], physical["PhoneHashKey"]).partition("+8613800138000")
    found["queue"] = boto3.client("sqs").get_queue_attributes(
        QueueUrl=physical["ReminderQueue"], AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]["ApproximateNumberOfMessages"]
    return found


def test_the_local_stack_keeps_its_records_across_a_restart(state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert dunning(state, "local", "status").returncode == 3
    stopped = dunning(state, "local", "stop")
    assert stopped.returncode == 1 and "no local stack is running" in stopped.stderr

    started = ok(dunning(state, "local", "start"))
    assert "a fresh stack" in started and server(state)["endpoint"] in started
    again = dunning(state, "local", "start")
    assert again.returncode == 1 and "already running" in again.stderr
    assert f"pid {server(state)['pid']}" in ok(dunning(state, "local", "status"))

    seeded = ok(dunning(state, "seed", "--loans", "20", "--seed", "3", "--start", "2026-12-01"))
    assert "seeded 20 loans and 6 malformed items" in seeded
    planned = json.loads(ok(dunning(state, "invoke", "PlanRemindersFunction", "-e", "-", stdin=json.dumps(PLAN_EVENT))))
    assert planned["now"] == "2026-12-01T02:00:00+00:00"
    assert planned["loans_read"] > 0 and planned["jobs_enqueued"] > 0  # the seeded book, not an empty stack
    drained = json.loads(ok(dunning(state, "local", "drain")))
    assert drained["batches"]["SendRemindersFunction"] >= 1
    before = contents(state, monkeypatch)
    assert before["queue"] == "0"
    assert any('"SENT"' in item or '"SUPPRESSED"' in item for item in before["DeliveriesTable"])
    assert any('"SEND#' in item for item in before["StateTable"])  # the planner's claims

    first_endpoint = server(state)["endpoint"]
    assert "snapshot saved" in ok(dunning(state, "local", "stop"))
    assert not (state / "server.pid").exists()
    assert dunning(state, "local", "status").returncode == 3

    restarted = ok(dunning(state, "local", "start"))
    assert "restored the snapshot" in restarted
    after = contents(state, monkeypatch)
    assert after == before, f"restarted on {server(state)['endpoint']} (was {first_endpoint})"

    # The restored stack is the one `loan` and `invoke` use.
    loan_id = json.loads(before["DeliveriesTable"][0])["loan_id"]["S"]
    timeline = ok(dunning(state, "loan", loan_id)).splitlines()
    assert timeline[0].startswith(f"loan {loan_id}: ")
    assert any(" record " in line for line in timeline[1:])
    missing = dunning(state, "loan", "LN999999")
    assert missing.returncode == 1 and "no trace" in missing.stdout
    generated = (REPO_ROOT / "events" / "scheduled_generate_event.json").read_text()
    replanned = json.loads(ok(dunning(state, "invoke", "PlanRemindersFunction", "-e", "-", stdin=generated)))
    assert replanned["now"] == "1970-01-01T00:00:00+00:00"  # sam local generate-event's clock, piped in

    ok(dunning(state, "local", "stop"))
    assert not (state / "server.pid").exists()


def test_a_taken_port_is_a_clear_error(state: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = dunning(state, "local", "start", "--port", str(port))
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is taken" in result.stderr
    assert not (state / "server.pid").exists()


def test_commands_that_need_the_local_stack_say_so(state: Path) -> None:
    result = dunning(state, "seed", "--loans", "5")
    assert result.returncode == 2 and "no local stack is running: `dunning local start` first" in result.stderr
    assert dunning(state, "local", "drain").returncode == 2
    bad = dunning(state, "seed", "--loans", "0")
    assert bad.returncode == 2 and "expected a number of loans from 1 to 20000" in bad.stderr
