"""Fire the template's schedules locally: start the state machine a ScheduleV2 starts, execute it in moto.

In AWS the hourly and daily schedules start Step Functions state machines that map over the
shards and invoke the functions (template.yaml). Here the same definitions run in moto:

  * moto executes state machines only when asked to: in-process with
    `mock_aws(config=EXECUTE_STATE_MACHINES)`, over HTTP after `POST <endpoint>/moto-api/config`
    with that body (`enable_execution_over_http`). Nothing else in moto changes with it.
  * moto's CloudFormation puts the stack's state machines into its non-executing backend, so the
    first run registers each one with the executing backend through the Step Functions API (same
    name, hence the same ARN; the definition as the stack resolved it, `LocalStack.state_machines`).
    A stack whose state machine the API already knows is one whose moto does not execute them:
    refused with a clear error rather than a run that silently does nothing.
  * moto's Lambda tasks call `lambda:Invoke` through a boto3 client of boto3's default session.
    A `before-call.lambda.Invoke` handler on that session (botocore's public event hooks) answers
    an invocation of one of the stack's functions by running it in-process (`dunning_tools.local.invoke`)
    and hands back the Invoke response, `FunctionError` included when the handler raises. The Map
    state's iterations run in moto's threads; the invocations are serialised (the invoke lock, held from
    the function's configuration read to its result), since an in-process invocation swaps the process
    environment for the function's, and an AWS call in another thread reads it.

The Scheduler's event is the template's ScheduleV2 `Input`, filled as the Scheduler fills it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import io
import json
import os
import re
import sys
import threading
import time
import traceback
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import boto3
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import ClientError
from botocore.response import StreamingBody

from dunning_tools.local.invoke import _environment, drain_stream, invoke
from dunning_tools.local.stack import LocalStack, LocalStackError, StateMachine, aws_session, deploy_stack

if TYPE_CHECKING:
    from moto.core.config import DefaultConfig

# The moto configuration under which it executes state machines (Map states included).
EXECUTE_STATE_MACHINES: DefaultConfig = {"stepfunctions": {"execute_state_machine": True}}
# Short names of the template's schedules: what each starts.
SCHEDULES = {"plan": "PlanningStateMachine", "daily": "DailyStateMachine"}
_FINISHED = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}
# How often a run asks moto whether its execution finished: each DescribeExecution costs a few ms of
# the CPU the execution's threads need, so the wait grows from the first to the longest.
_POLL_FIRST_SECONDS = 0.005
_POLL_LONGEST_SECONDS = 0.05
_HANDLER_ID = "dunning-local-in-process-invoke"
_FUNCTION_IN_PATH = re.compile(r"/functions/(?P<name>[^/]+)/invocations")


class ExecutionFailed(LocalStackError):
    """A state machine execution ended other than SUCCEEDED."""

    def __init__(self, run: ScheduleRun) -> None:
        self.run = run
        super().__init__(f"{run.state_machine} execution {run.status}: {run.error}: {run.cause}")


@dataclass(frozen=True)
class Invocation:
    """One Lambda invocation made by a state machine's task, as the function saw and answered it."""

    function: str  # the function's logical ID
    event: Mapping[str, Any]
    result: Any  # what it returned, or the error payload when it raised
    raised: bool = False


@dataclass(frozen=True)
class ScheduleRun:
    """One execution of a state machine, and the invocations it made."""

    state_machine: str
    execution_arn: str
    status: str
    output: Any
    error: str | None = None
    cause: str | None = None
    invocations: tuple[Invocation, ...] = field(default_factory=tuple, repr=False)


def run_schedule(
    stack: LocalStack, schedule: str, at: dt.datetime, *, timeout_seconds: float = 600.0, check: bool = True
) -> ScheduleRun:
    """What the schedule does when it fires at `at`: start its state machine with the Scheduler's event, wait.

    `schedule` is `plan` or `daily` (SCHEDULES) or a state machine's logical ID. With `check`
    (the default), an execution that does not succeed raises `ExecutionFailed`.
    """
    machine = _state_machine(stack, SCHEDULES.get(schedule, schedule))
    return run_state_machine(
        stack, machine.logical_id, scheduler_event(stack, machine.logical_id, at), timeout_seconds, check=check
    )


def run_state_machine(
    stack: LocalStack,
    logical_id: str,
    execution_input: Mapping[str, Any],
    timeout_seconds: float = 600.0,
    *,
    check: bool = True,
) -> ScheduleRun:
    """Execute one of the stack's state machines with this input, its Lambda tasks run in-process; wait for the end."""
    machine = _state_machine(stack, logical_id)
    client = _stepfunctions_client(stack.region, os.environ.get("AWS_ENDPOINT_URL", ""))
    _make_executable(stack, machine, client)
    recorder = _attach(stack)
    first = len(recorder)
    name = f"{logical_id[:40]}-{uuid.uuid4().hex}"
    threads_before = set(threading.enumerate())
    execution_arn = client.start_execution(
        stateMachineArn=machine.arn, name=name, input=json.dumps(execution_input, ensure_ascii=False)
    )["executionArn"]
    deadline = time.monotonic() + timeout_seconds
    poll = _POLL_FIRST_SECONDS
    while True:
        description = client.describe_execution(executionArn=execution_arn)
        if description["status"] in _FINISHED:
            break
        if time.monotonic() > deadline:
            client.stop_execution(executionArn=execution_arn, error="LocalTimeout", cause="run_state_machine timed out")
            raise LocalStackError(f"{logical_id} execution still running after {timeout_seconds} s: {execution_arn}")
        time.sleep(poll)  # moto runs the execution in its own threads: wait for them
        poll = min(poll * 2, _POLL_LONGEST_SECONDS)
    _join_new_threads(threads_before, deadline)
    output = description.get("output")
    run = ScheduleRun(
        state_machine=logical_id,
        execution_arn=execution_arn,
        status=description["status"],
        output=json.loads(output) if output else None,
        error=description.get("error"),
        cause=description.get("cause"),
        invocations=tuple(recorder[first:]),
    )
    if check and run.status != "SUCCEEDED":
        raise ExecutionFailed(run)
    return run


def _join_new_threads(before: set[threading.Thread], deadline: float) -> None:
    """Wait for the threads moto started for the execution (in-process moto; over HTTP there are none).

    An execution can end while some of its threads still run: a Map whose first iteration failed
    ends FAILED with the others still in their Lambda task. Such a late invocation would swap the
    process environment under whatever the caller does next (another test's set-up, say).
    """
    while True:
        running = [
            t for t in threading.enumerate() if t not in before and t.is_alive() and t is not threading.current_thread()
        ]
        if not running or time.monotonic() > deadline:
            return
        for thread in running:
            thread.join(max(0.0, deadline - time.monotonic()))


def scheduler_event(stack: LocalStack, logical_id: str, at: dt.datetime) -> dict[str, Any]:
    """The event the state machine's ScheduleV2 delivers at `at`: its template `Input`, filled as the Scheduler does.

    CloudFormation fills the pseudo parameters at deploy time; the Scheduler fills its context
    attributes (execution id, schedule ARN, scheduled time) at each fire.
    """
    if at.tzinfo is None:
        raise ValueError("the scheduled time must be timezone-aware")
    schedules = [
        (schedule_id, resource["Properties"])
        for schedule_id, resource in stack.template["Resources"].items()
        if resource.get("Type") == "AWS::Scheduler::Schedule"
        and resource.get("Properties", {}).get("Target", {}).get("Arn") == {"Ref": logical_id}
    ]
    if len(schedules) != 1:
        raise LocalStackError(f"{logical_id} is started by {len(schedules)} schedules in the template, not one")
    schedule_id, properties = schedules[0]
    text = _substitute_pseudo_parameters(properties["Target"].get("Input", "{}"), stack, logical_id)
    account = _state_machine(stack, logical_id).arn.split(":")[4]
    group = properties.get("GroupName", "default")
    context = {
        "<aws.scheduler.execution-id>": str(uuid.uuid4()),
        "<aws.scheduler.schedule-arn>": f"arn:aws:scheduler:{stack.region}:{account}:schedule/{group}/{schedule_id}",
        "<aws.scheduler.scheduled-time>": at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    for placeholder, value in context.items():
        text = text.replace(placeholder, value)
    event: dict[str, Any] = json.loads(text)
    return event


def enable_execution_over_http(endpoint_url: str) -> None:
    """Ask a moto server to execute state machines (its `/moto-api/config`; nothing else changes)."""
    request = urllib.request.Request(  # noqa: S310 - the moto endpoint the caller chose
        f"{endpoint_url.rstrip('/')}/moto-api/config",
        data=json.dumps(EXECUTE_STATE_MACHINES).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - as above
        pass


def cli_schedule(
    schedule: str,
    at: dt.datetime,
    *,
    loans_path: str | os.PathLike[str] | None = None,
    template_path: str | os.PathLike[str] = "template.yaml",
    parameters: Mapping[str, str] | None = None,
) -> int:
    """`dunning schedule`: deploy the template into an in-process moto, seed the loans, fire the schedule.

    Prints the execution (status, output, each invocation's detail and result) as JSON on stdout;
    the functions' logs go to stderr. Returns 0 when the execution succeeded, else 1.
    """
    import moto  # dev-only dependency; imported here so `dunning_tools.local` stays cheap to import

    loans = json.loads(Path(loans_path).read_text(encoding="utf-8"), parse_float=Decimal) if loans_path else []
    if not isinstance(loans, list) or not all(isinstance(item, dict) for item in loans):
        raise LocalStackError(f"{loans_path}: expected a JSON list of LoansTable items (objects)")
    # In-process moto only: an endpoint in the caller's environment would send the stack elsewhere.
    endpoints = [key for key in os.environ if key.startswith("AWS_ENDPOINT_URL")]
    with (
        _environment({}, remove=endpoints),
        moto.mock_aws(config=EXECUTE_STATE_MACHINES),
        contextlib.redirect_stdout(sys.stderr),
    ):
        stack = deploy_stack(template_path, parameters)
        table = boto3.resource("dynamodb", region_name=stack.region).Table(stack.physical_id("LoansTable"))
        with table.batch_writer() as batch:
            for item in loans:
                batch.put_item(Item=item)
        drain_stream(stack)  # LoanChangesFunction keeps the ladder index the scheduled functions read
        run = run_schedule(stack, schedule, at, check=False)
    summary = {
        "state_machine": run.state_machine,
        "status": run.status,
        "error": run.error,
        "cause": run.cause,
        "output": run.output,
        "invocations": [
            {"function": i.function, "detail": i.event.get("detail"), "raised": i.raised, "result": i.result}
            for i in run.invocations
        ],
    }
    print(json.dumps(summary, indent=2, ensure_ascii=False, default=str))
    return 0 if run.status == "SUCCEEDED" else 1


# ---------------------------------------------------------------- in-process Lambda tasks


class _Registry:
    """Function name -> (stack, logical ID) of the functions the hook runs in-process, and what they were asked."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # the registry's own dicts (Map iterations run in moto's threads)
        self.functions: dict[str, tuple[LocalStack, str]] = {}
        self.invocations: dict[str, list[Invocation]] = {}  # per stack name


_REGISTRY = _Registry()


def _attach(stack: LocalStack) -> list[Invocation]:
    """Route the stack's functions to the in-process hook on boto3's default session; its invocation log."""
    with _REGISTRY.lock:
        for logical_id in stack.logical_ids("AWS::Lambda::Function"):
            _REGISTRY.functions[stack.physical_id(logical_id)] = (stack, logical_id)
        recorder = _REGISTRY.invocations.setdefault(stack.name, [])
    if boto3.DEFAULT_SESSION is None:  # moto resets it when a mock starts; moto's tasks use it
        boto3.setup_default_session()
    session = boto3.DEFAULT_SESSION
    assert session is not None
    # botocore uses a before-call handler's non-None answer as the response (its stubs type handlers as -> None).
    handler = cast("Callable[..., None]", _invoke_in_process)
    session.events.register("before-call.lambda.Invoke", handler, unique_id=_HANDLER_ID)
    return recorder


def _invoke_in_process(params: Mapping[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
    """botocore `before-call` hook: answer Invoke of a registered function; None lets the call go on as usual."""
    match = _FUNCTION_IN_PATH.search(str(params.get("url_path", "")))
    if match is None:
        return None
    name = urllib.parse.unquote(match.group("name"))
    if name.startswith("arn:"):
        name = name.split(":")[6]  # arn:partition:lambda:region:account:function:name[:qualifier]
    target = _REGISTRY.functions.get(name)
    invocation_type = dict(params.get("headers", {})).get("X-Amz-Invocation-Type", "RequestResponse")
    if target is None or invocation_type != "RequestResponse":
        return None
    stack, logical_id = target
    body = params.get("body") or b"{}"
    event = json.loads(body.decode("utf-8") if isinstance(body, bytes) else str(body))
    response: dict[str, Any] = {"StatusCode": 200, "ExecutedVersion": "$LATEST"}
    try:  # `invoke` holds the invoke lock from the function's configuration read to its result
        result: Any = invoke(stack, logical_id, event)
        raised = False
    except Exception as exc:  # what Lambda reports for an unhandled error
        result = {
            "errorMessage": str(exc),
            "errorType": type(exc).__name__,
            "stackTrace": traceback.format_tb(exc.__traceback__),
        }
        response["FunctionError"] = "Unhandled"
        raised = True
    with _REGISTRY.lock:
        _REGISTRY.invocations.setdefault(stack.name, []).append(Invocation(logical_id, event, result, raised))
    payload = json.dumps(result).encode("utf-8")
    response["Payload"] = StreamingBody(io.BytesIO(payload), len(payload))
    response["ResponseMetadata"] = {"HTTPStatusCode": 200, "HTTPHeaders": {}, "RetryAttempts": 0}
    return AWSResponse(str(params.get("url", "")), 200, HTTPHeaders(), None), response


# ---------------------------------------------------------------- helpers


def _state_machine(stack: LocalStack, logical_id: str) -> StateMachine:
    machine = stack.state_machines.get(logical_id)
    if machine is None:
        known = sorted(stack.state_machines) + sorted(SCHEDULES)
        raise LocalStackError(f"stack {stack.name} has no state machine {logical_id!r}; try one of {known}")
    return machine


def _make_executable(stack: LocalStack, machine: StateMachine, client: Any) -> None:
    """Register the state machine with moto's executing backend, once per stack (see the module's doc)."""
    if machine.logical_id in stack.executable_state_machines:
        return
    try:
        client.describe_state_machine(stateMachineArn=machine.arn)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "StateMachineDoesNotExist":
            raise
    else:
        raise LocalStackError(
            f"moto does not execute state machines here: start it with mock_aws(config={EXECUTE_STATE_MACHINES}) "
            "(dunning_tools.local.EXECUTE_STATE_MACHINES), or POST that to <endpoint>/moto-api/config over HTTP"
        )
    name = machine.arn.rsplit(":", 1)[1]
    definition = json.dumps(_maps_one_at_a_time(json.loads(machine.definition)))
    created = client.create_state_machine(name=name, definition=definition, roleArn=machine.role_arn)
    if created["stateMachineArn"] != machine.arn:
        raise LocalStackError(f"{machine.logical_id}: registered as {created['stateMachineArn']}, not {machine.arn}")
    stack.executable_state_machines.add(machine.logical_id)


def _maps_one_at_a_time(node: Any) -> Any:
    """The definition with every Map state's concurrency at 1, the rest unchanged.

    The in-process invocations run one at a time anyway (each swaps os.environ for its function's);
    iterations left to run side by side in moto's threads would only create their Lambda clients,
    which read os.environ, while another iteration's invocation is swapping it. One at a time is
    within what the template allows (MaxConcurrency is an upper bound): the same invocations,
    results and output, the shards in turn.
    """
    if isinstance(node, list):
        return [_maps_one_at_a_time(value) for value in node]
    if not isinstance(node, dict):
        return node
    copy = {key: _maps_one_at_a_time(value) for key, value in node.items()}
    if copy.get("Type") == "Map":
        copy.pop("MaxConcurrencyPath", None)
        copy["MaxConcurrency"] = 1
    return copy


def _substitute_pseudo_parameters(value: Any, stack: LocalStack, logical_id: str) -> str:
    """The text of a ScheduleV2 Input: a string, or a `!Sub` of one naming only pseudo parameters."""
    text = value["Fn::Sub"] if isinstance(value, Mapping) and set(value) == {"Fn::Sub"} else value
    if not isinstance(text, str):
        raise LocalStackError(f"the schedule of {logical_id} has an Input the local runner cannot fill: {value!r}")
    arn = _state_machine(stack, logical_id).arn.split(":")
    pseudo = {"AWS::AccountId": arn[4], "AWS::Region": stack.region, "AWS::Partition": arn[1]}

    def fill(match: re.Match[str]) -> str:
        if match.group(1) not in pseudo:
            raise LocalStackError(f"the schedule of {logical_id} refers to ${{{match.group(1)}}} in its Input")
        return pseudo[match.group(1)]

    return re.sub(r"\$\{([^}]*)\}", fill, text)


@functools.cache
def _stepfunctions_client(region: str, endpoint: str) -> Any:
    # The endpoint is part of the cache key: botocore reads it from the environment at creation.
    return aws_session(region).client("stepfunctions")
