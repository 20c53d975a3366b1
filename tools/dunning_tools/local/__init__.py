"""Docker-free local runner: template.yaml as a moto stack, functions invoked in-process.

A dev tool, not part of the Lambda runtime path: it needs moto and aws-sam-translator.
Note that `dunning_tools.local.invoke` is the function here; import the module's other names
with `from dunning_tools.local.invoke import ...`.
"""

from dunning_tools.local.context import FakeLambdaContext
from dunning_tools.local.invoke import cli_invoke, drain_queue, drain_stream, invoke
from dunning_tools.local.schedule import (
    EXECUTE_STATE_MACHINES,
    ExecutionFailed,
    Invocation,
    ScheduleRun,
    enable_execution_over_http,
    run_schedule,
    run_state_machine,
    scheduler_event,
)
from dunning_tools.local.stack import (
    LocalStack,
    LocalStackError,
    StackResource,
    StateMachine,
    StreamMapping,
    deploy_stack,
)

__all__ = [
    "EXECUTE_STATE_MACHINES",
    "ExecutionFailed",
    "FakeLambdaContext",
    "Invocation",
    "LocalStack",
    "LocalStackError",
    "ScheduleRun",
    "StackResource",
    "StateMachine",
    "StreamMapping",
    "cli_invoke",
    "deploy_stack",
    "drain_queue",
    "drain_stream",
    "enable_execution_over_http",
    "invoke",
    "run_schedule",
    "run_state_machine",
    "scheduler_event",
]
