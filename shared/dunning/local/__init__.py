"""Docker-free local runner: template.yaml as a moto stack, functions invoked in-process.

A dev tool, not part of the Lambda runtime path: it needs moto and aws-sam-translator.
Note that `dunning.local.invoke` is the function here; import the module's other names
with `from dunning.local.invoke import ...`.
"""

from dunning.local.context import FakeLambdaContext
from dunning.local.invoke import cli_invoke, drain_queue, drain_stream, invoke
from dunning.local.stack import LocalStack, LocalStackError, StackResource, StreamMapping, deploy_stack

__all__ = [
    "FakeLambdaContext",
    "LocalStack",
    "LocalStackError",
    "StackResource",
    "StreamMapping",
    "cli_invoke",
    "deploy_stack",
    "drain_queue",
    "drain_stream",
    "invoke",
]
