"""Run the stack's functions in-process, the way Lambda would, and feed them their queue.

Not thread-safe: an invocation swaps the process environment for the function's.
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import json
import os
import sys
import traceback
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from dunning.local.context import FakeLambdaContext
from dunning.local.stack import LocalStack, LocalStackError, deploy_stack, lambda_client, sqs_client

# Ids of a batch whose messages all go back to the queue (what Lambda does on a failed invoke).
_WHOLE_BATCH = None
_SQS_MAX_BATCH = 10


def invoke(
    stack: LocalStack,
    logical_id: str,
    event: Mapping[str, Any],
    context: Any = None,
    *,
    client_custom: Mapping[str, Any] | None = None,
) -> Any:
    """Call the function's handler in-process with the environment the stack gave it.

    `client_custom` is what an Invoke `ClientContext` would carry as `context.client_context.custom`.

    Like a warm Lambda container, the handler module is imported once and reused; the
    settings cache is cleared before and after, since each call may come from another stack.
    Event and result cross a JSON boundary as they do in Lambda: the handler gets its own copy
    of the event, and a result JSON cannot carry (a Decimal, say) raises here as Lambda's
    `Runtime.MarshalError` would fail the invocation there.
    """
    configuration = stack.function_configuration(logical_id)
    module_name, attribute = stack.function_handler(logical_id)
    function_name = configuration["FunctionName"]
    environment = {
        **stack.function_environment(logical_id, configuration),
        # Set by the Lambda runtime itself; a function's own variables cannot override them.
        "AWS_REGION": stack.region,
        "AWS_DEFAULT_REGION": stack.region,
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": configuration.get("Version", "$LATEST"),
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(configuration.get("MemorySize", 128)),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
        "_HANDLER": str(stack.template["Resources"][logical_id]["Properties"]["Handler"]),
    }
    # There is no X-Ray daemon here; the Powertools tracer would only complain.
    environment.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    if context is None:
        context = FakeLambdaContext(
            function_name,
            memory_limit_in_mb=int(configuration.get("MemorySize", 128)),
            timeout_seconds=int(configuration.get("Timeout", 3)),
            invoked_function_arn=configuration["FunctionArn"],
            region=stack.region,
            client_custom=client_custom,
        )
    elif client_custom is not None:
        raise LocalStackError("give client_custom or a context of your own, not both")

    _ensure_importable(stack.root)
    with _environment(environment):
        _reset_settings()
        try:
            handler = getattr(importlib.import_module(module_name), attribute)
            result = handler(json.loads(json.dumps(event)), context)
        finally:
            _reset_settings()
    try:
        return json.loads(json.dumps(result))
    except (TypeError, ValueError) as exc:
        raise LocalStackError(f"{logical_id} returned a result Lambda cannot serialise: {exc}") from exc


def drain_queue(
    stack: LocalStack,
    queue_logical_id: str = "ReminderQueue",
    function_logical_id: str = "SendRemindersFunction",
    max_batches: int = 1000,
    *,
    raise_on_error: bool = True,
) -> list[Any]:
    """Feed the queue to its consumer until it is empty, as the Lambda SQS poller would.

    Each batch is one invocation with a real-shaped SQS event. With the mapping's
    `ReportBatchItemFailures`, the messages named in `batchItemFailures` go back to the queue
    and the rest are deleted; without it, a returned batch is deleted whole. A handler that
    raises sends its whole batch back; with `raise_on_error=False` the exception takes the
    batch's place in the result and draining goes on. moto itself moves a message to the DLQ
    on the receive after `maxReceiveCount`, as SQS does.

    `max_batches` only guards against a consumer that keeps refilling its own queue.
    Returns the handler's response for each batch, in order.
    """
    sqs = sqs_client(stack.region)
    queue_url = stack.queue_url(queue_logical_id)
    queue_arn = stack.queue_arn(queue_logical_id)
    batch_size, reports_item_failures = _mapping_settings(stack, function_logical_id, queue_arn)

    responses: list[Any] = []
    for _ in range(max_batches):
        messages = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=batch_size,
            WaitTimeSeconds=0,  # an empty queue means drained: no long poll
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            break
        event = {"Records": [_sqs_record(message, queue_arn, stack.region) for message in messages]}
        try:
            response = invoke(stack, function_logical_id, event)
        except Exception as exc:
            _release(sqs, queue_url, messages)
            if raise_on_error:
                raise
            responses.append(exc)
            continue
        failed = _failed_message_ids(response, [m["MessageId"] for m in messages], reports_item_failures)
        _release(sqs, queue_url, [m for m in messages if failed is _WHOLE_BATCH or m["MessageId"] in failed])
        _delete(sqs, queue_url, [m for m in messages if failed is not _WHOLE_BATCH and m["MessageId"] not in failed])
        responses.append(response)
    return responses


def cli_invoke(
    function_logical_id: str,
    event_path: str | os.PathLike[str],
    *,
    template_path: str | os.PathLike[str] = "template.yaml",
    parameters: Mapping[str, str] | None = None,
) -> int:
    """Deploy the template into an in-process moto, invoke one function with an event file,
    print the result as JSON on stdout. Returns the exit code (1 when the handler raised)."""
    import moto  # dev-only dependency; imported here so `dunning.local` stays cheap to import

    event = json.loads(Path(event_path).read_text(encoding="utf-8"))
    # In-process moto only: an endpoint in the caller's environment would send the stack elsewhere.
    endpoints = [key for key in os.environ if key.startswith("AWS_ENDPOINT_URL")]
    # Like `sam local invoke`: the function's logs and metrics on stderr, only the result on stdout.
    with _environment({}, remove=endpoints), moto.mock_aws(), contextlib.redirect_stdout(sys.stderr):
        stack = deploy_stack(template_path, parameters)
        try:
            result = invoke(stack, function_logical_id, event)
        except Exception:
            traceback.print_exc()
            return 1
    print(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    return 0


def _mapping_settings(stack: LocalStack, function_logical_id: str, queue_arn: str) -> tuple[int, bool]:
    """Batch size and partial-batch reporting of the function's mapping on the queue."""
    client = lambda_client(stack.region)
    function_name = stack.physical_id(function_logical_id)
    for mapping in client.list_event_source_mappings(EventSourceArn=queue_arn).get("EventSourceMappings", []):
        if str(mapping.get("FunctionArn", "")).endswith(f":function:{function_name}"):
            batch_size = min(int(mapping.get("BatchSize", _SQS_MAX_BATCH)), _SQS_MAX_BATCH)
            return batch_size, "ReportBatchItemFailures" in mapping.get("FunctionResponseTypes", [])
    raise LocalStackError(f"{function_logical_id} has no event source mapping on {queue_arn}")


def _sqs_record(message: Mapping[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One `Records` entry of the event Lambda's SQS poller sends."""
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {
            name: _message_attribute(value) for name, value in message.get("MessageAttributes", {}).items()
        },
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    record.update(
        {
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn,
            "awsRegion": region,
        }
    )
    return record


def _message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    # Lambda camel-cases attributes and hands binary values over base64-encoded.
    attribute: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode("ascii")
    return attribute


def _failed_message_ids(response: Any, message_ids: Sequence[str], reports_item_failures: bool) -> set[str] | None:
    """The ids Lambda would put back on the queue, or `_WHOLE_BATCH`, per the partial-batch rules."""
    if not reports_item_failures or response is None:
        return set()
    if not isinstance(response, Mapping):
        return _WHOLE_BATCH
    failures = response.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return _WHOLE_BATCH
    failed: set[str] = set()
    for failure in failures:
        # An empty, missing or unknown itemIdentifier fails the whole batch, as in Lambda.
        identifier = failure.get("itemIdentifier") if isinstance(failure, Mapping) else None
        if not isinstance(identifier, str) or identifier not in message_ids:
            return _WHOLE_BATCH
        failed.add(identifier)
    return failed


def _release(sqs: Any, queue_url: str, messages: Sequence[Mapping[str, Any]]) -> None:
    """Make messages receivable again now, instead of after the visibility timeout."""
    if not messages:
        return
    # moto shows a message only once the clock is strictly past its visibility time, so under
    # a frozen clock a timeout of 0 hides it for good; -1 works in moto. Real SQS refuses -1,
    # hence the retry with 0 for whatever was refused.
    entries = [
        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": -1} for i, m in enumerate(messages)
    ]
    try:
        refused = {
            f["Id"] for f in sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries).get("Failed", [])
        }
    except ClientError:
        refused = {entry["Id"] for entry in entries}
    retry = [{**entry, "VisibilityTimeout": 0} for entry in entries if entry["Id"] in refused]
    if retry:
        sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=retry)


def _delete(sqs: Any, queue_url: str, messages: Sequence[Mapping[str, Any]]) -> None:
    if messages:
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)


def _reset_settings() -> None:
    # `dunning.settings` caches the environment once per container; each invoke may differ.
    try:
        settings = importlib.import_module("dunning.settings")
    except ModuleNotFoundError as exc:
        if exc.name != "dunning.settings":
            raise
        return
    reset = getattr(settings, "reset_settings", None)
    if callable(reset):
        reset()


def _ensure_importable(root: Path) -> None:
    # Handlers are imported as `functions.<name>.app` from the template's folder.
    if str(root) not in sys.path and not any(Path(p or ".").resolve() == root for p in sys.path):
        sys.path.append(str(root))


@contextlib.contextmanager
def _environment(variables: Mapping[str, str], remove: Sequence[str] = ()) -> Iterator[None]:
    """Overlay `variables` on os.environ (less `remove`), then put back exactly what was there before."""
    saved = dict(os.environ)
    for key in remove:
        os.environ.pop(key, None)
    os.environ.update(variables)
    try:
        yield
    finally:
        for key in [k for k in os.environ if k not in saved]:
            del os.environ[key]
        for key, value in saved.items():
            if os.environ.get(key) != value:
                os.environ[key] = value
