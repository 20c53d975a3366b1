"""Run the stack's functions in-process, the way Lambda would, and feed them their queue and stream.

An invocation swaps the process environment for the function's, so invocations take one process-wide
lock: the demo's own calls (queue and stream drains) and the ones moto's Step Functions threads make
never overlap, even when one of moto's threads is still finishing as the caller goes on.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import importlib
import json
import logging
import os
import sys
import threading
import traceback
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from dunning_tools.local.context import FakeLambdaContext
from dunning_tools.local.stack import (
    LocalStack,
    LocalStackError,
    StreamMapping,
    deploy_stack,
    dynamodbstreams_client,
    lambda_client,
    sqs_client,
)

# Ids of a batch whose messages all go back to the queue (what Lambda does on a failed invoke).
_WHOLE_BATCH = None
_SQS_MAX_BATCH = 10
_STREAM_DEFAULT_BATCH = 100  # Lambda's default for DynamoDB streams
_STREAM_MAX_GET_RECORDS = 1000  # GetRecords' limit; a larger BatchSize is gathered by Lambda over several reads


_INVOKE_LOCK = threading.RLock()  # one in-process invocation at a time: each swaps os.environ


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
    with _INVOKE_LOCK:  # reentrant: a function invoking another in-process
        return _invoke_locked(stack, logical_id, event, context, client_custom)


def _invoke_locked(
    stack: LocalStack, logical_id: str, event: Mapping[str, Any], context: Any, client_custom: Mapping[str, Any] | None
) -> Any:
    # Under the invoke lock from here on: the configuration read below is an AWS call, which reads os.environ.
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
    # There is no X-Ray daemon here: whatever the template's `Tracing`, a handler imported here does not trace.
    environment["POWERTOOLS_TRACE_DISABLED"] = "true"
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
    with _environment(environment), _log_level(environment.get("POWERTOOLS_LOG_LEVEL")):
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


@contextlib.contextmanager
def _log_level(level: str | None) -> Iterator[None]:
    """The function's POWERTOOLS_LOG_LEVEL (the template's LogLevel) for this call, as Lambda's init applies it.

    The service's one Logger is built once per process, at import, from whatever environment the
    process had then; a container is built per function, so each call sets the level its stack gave it.
    """
    from dunning.observability import logger

    previous = logger.log_level
    if level:
        logger.setLevel(level.upper())
    try:
        yield
    finally:
        logger.setLevel(previous)


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


def drain_stream(
    stack: LocalStack,
    function_logical_id: str = "LoanChangesFunction",
    max_batches: int = 1000,
    *,
    raise_on_error: bool = True,
) -> list[Any]:
    """Hand the function the DynamoDB stream records written since the last drain, as Lambda's poller would.

    Reads the mapped stream through the DynamoDB Streams API (DescribeStream, GetShardIterator,
    GetRecords; in-process moto and over HTTP alike), shard by shard from the mapping's
    `StartingPosition` (TRIM_HORIZON only) or from where the previous drain of this stack stopped,
    so each record is delivered once. Each batch (at most the mapping's `BatchSize`) is one
    invocation with Lambda's DynamoDB Streams event shape. With `ReportBatchItemFailures`, the
    lowest sequence number in `batchItemFailures` is where the shard resumes (the records before it
    are done); an empty or unknown identifier, or a handler that raises, fails the whole batch.
    A failed batch is retried at once up to the mapping's `MaximumRetryAttempts`, then its shard and
    sequence range go to the `DestinationConfig.OnFailure` queue (the message Lambda sends) and the
    shard moves on. `BisectBatchOnFunctionError` is not emulated: a raising batch is retried whole.
    With `raise_on_error=True` (the default) a handler that raises stops the drain and its batch is
    delivered again by the next one; with False the exception takes the batch's place in the result.

    `max_batches` bounds the invocations (a mapping without a retry limit retries for ever).
    Returns the handler's response for each batch, in order.
    """
    mapping = _stream_mapping(stack, function_logical_id)
    properties = mapping.properties
    if str(properties.get("StartingPosition", "TRIM_HORIZON")) != "TRIM_HORIZON":
        raise LocalStackError(f"{mapping.logical_id}: only StartingPosition TRIM_HORIZON is driven locally")
    batch_size = min(int(properties.get("BatchSize", _STREAM_DEFAULT_BATCH)), _STREAM_MAX_GET_RECORDS)
    reports_item_failures = "ReportBatchItemFailures" in properties.get("FunctionResponseTypes", [])
    max_retries = int(properties.get("MaximumRetryAttempts", -1))  # -1: until the record expires
    streams = dynamodbstreams_client(stack.region)

    responses: list[Any] = []
    attempts: Counter[str] = Counter()
    for shard_id in _shard_ids(streams, mapping.stream_arn):
        position_key = f"{mapping.logical_id}/{shard_id}"
        while len(responses) < max_batches:
            position = stack.stream_positions.get(position_key)
            if position is None:
                iterator = streams.get_shard_iterator(
                    StreamArn=mapping.stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            else:
                iterator = streams.get_shard_iterator(
                    StreamArn=mapping.stream_arn,
                    ShardId=shard_id,
                    ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                    SequenceNumber=position,
                )["ShardIterator"]
            records = streams.get_records(ShardIterator=iterator, Limit=batch_size)["Records"]
            if not records:
                break
            sequence_numbers = [str(r["dynamodb"]["SequenceNumber"]) for r in records]
            event = {"Records": [_stream_record(r, mapping.stream_arn, stack.region) for r in records]}
            raised = False
            try:
                response = invoke(stack, function_logical_id, event)
            except Exception as exc:
                if raise_on_error:
                    raise
                responses.append(exc)
                failed_at: int | None = 0
                raised = True
            else:
                responses.append(response)
                failed_at = _first_failed_record(response, sequence_numbers, reports_item_failures)
            if failed_at is None:
                stack.stream_positions[position_key] = sequence_numbers[-1]
                continue
            # The records before the first failure are done; the shard resumes at the failed one.
            if failed_at > 0:
                stack.stream_positions[position_key] = sequence_numbers[failed_at - 1]
            attempts[sequence_numbers[failed_at]] += 1
            if 0 <= max_retries < attempts[sequence_numbers[failed_at]]:
                failed = records[failed_at:]
                _send_on_failure(stack, mapping, shard_id, failed, attempts[sequence_numbers[failed_at]], raised)
                stack.stream_positions[position_key] = sequence_numbers[-1]
    return responses


def cli_invoke(
    function_logical_id: str,
    event_path: str | os.PathLike[str] | Mapping[str, Any],
    *,
    template_path: str | os.PathLike[str] = "template.yaml",
    parameters: Mapping[str, str] | None = None,
) -> int:
    """Deploy the template into an in-process moto, invoke one function with an event file (or
    the event itself), print the result as JSON on stdout. Returns the exit code (1 when the handler raised)."""
    import moto  # dev-only dependency; imported here so `dunning_tools.local` stays cheap to import

    if isinstance(event_path, Mapping):
        event = dict(event_path)
    else:
        event = json.loads(Path(event_path).read_text(encoding="utf-8"))
    # In-process moto only: an endpoint in the caller's environment would send the stack elsewhere.
    endpoints = [key for key in os.environ if key.startswith("AWS_ENDPOINT_URL")]
    # Like `sam local invoke`: the function's logs and metrics on stderr, only the result on stdout.
    with _environment({}, remove=endpoints), moto.mock_aws(), output_to_stderr():
        stack = deploy_stack(template_path, parameters)
        try:
            result = invoke(stack, function_logical_id, event)
        except Exception:
            traceback.print_exc()
            return 1
    print(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    return 0


@contextlib.contextmanager
def output_to_stderr() -> Iterator[None]:
    """Everything the functions print goes to stderr, so stdout carries only the command's result.

    `redirect_stdout` alone misses a log handler made before it (Powertools' Logger keeps the stream
    it found at import): such handlers write to stderr meanwhile, and file descriptor 1 itself points
    at stderr for anything else that holds the real stdout.
    """
    stdouts = {id(sys.stdout), id(sys.__stdout__)}
    handlers = [
        handler
        for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
        if isinstance(logger, logging.Logger)
        for handler in logger.handlers
        if isinstance(handler, logging.StreamHandler) and id(handler.stream) in stdouts
    ]
    sys.stdout.flush()
    saved = os.dup(1)
    previous = [(handler, handler.setStream(sys.stderr)) for handler in handlers]
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        for stream in (sys.stdout, sys.__stdout__):
            if stream is not None:
                stream.flush()
        os.dup2(saved, 1)
        os.close(saved)
        for handler, stream in previous:
            handler.setStream(stream)


def _mapping_settings(stack: LocalStack, function_logical_id: str, queue_arn: str) -> tuple[int, bool]:
    """Batch size and partial-batch reporting of the function's mapping on the queue."""
    client = lambda_client(stack.region)
    function_name = stack.physical_id(function_logical_id)
    for mapping in client.list_event_source_mappings(EventSourceArn=queue_arn).get("EventSourceMappings", []):
        if str(mapping.get("FunctionArn", "")).endswith(f":function:{function_name}"):
            batch_size = min(int(mapping.get("BatchSize", _SQS_MAX_BATCH)), _SQS_MAX_BATCH)
            return batch_size, "ReportBatchItemFailures" in mapping.get("FunctionResponseTypes", [])
    raise LocalStackError(f"{function_logical_id} has no event source mapping on {queue_arn}")


def _stream_mapping(stack: LocalStack, function_logical_id: str) -> StreamMapping:
    for mapping in stack.stream_mappings.values():
        if mapping.function_logical_id == function_logical_id:
            return mapping
    raise LocalStackError(f"{function_logical_id} has no DynamoDB stream mapping in stack {stack.name}")


def _shard_ids(streams: Any, stream_arn: str) -> list[str]:
    shard_ids: list[str] = []
    arguments: dict[str, Any] = {"StreamArn": stream_arn}
    while True:
        description = streams.describe_stream(**arguments)["StreamDescription"]
        shard_ids.extend(str(shard["ShardId"]) for shard in description.get("Shards", []))
        if not description.get("LastEvaluatedShardId"):
            return shard_ids
        arguments["ExclusiveStartShardId"] = description["LastEvaluatedShardId"]


def _stream_record(record: Mapping[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """One `Records` entry of the event Lambda's DynamoDB Streams poller sends."""
    change = record["dynamodb"]
    dynamodb: dict[str, Any] = {}
    created = change.get("ApproximateCreationDateTime")
    if isinstance(created, dt.datetime):  # Lambda sends epoch seconds, rounded down to the second
        dynamodb["ApproximateCreationDateTime"] = int(created.timestamp())
    for image in ("Keys", "NewImage", "OldImage"):
        if image in change:
            dynamodb[image] = _wire_attributes(change[image])
    dynamodb.update(
        {
            "SequenceNumber": str(change["SequenceNumber"]),
            "SizeBytes": int(change["SizeBytes"]),
            "StreamViewType": change["StreamViewType"],
        }
    )
    return {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    }


def _wire_attributes(value: Any) -> Any:
    """DynamoDB JSON as it travels in a Lambda event: boto3's binary values back to base64 text."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {key: _wire_attributes(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_wire_attributes(item) for item in value]
    return value


def _first_failed_record(response: Any, sequence_numbers: Sequence[str], reports_item_failures: bool) -> int | None:
    """Index of the record the shard resumes at after this response, or None when the batch is done."""
    failed = _failed_message_ids(response, sequence_numbers, reports_item_failures)
    if failed is _WHOLE_BATCH:
        return 0
    if not failed:
        return None
    return min(sequence_numbers.index(identifier) for identifier in failed)


def _send_on_failure(
    stack: LocalStack,
    mapping: StreamMapping,
    shard_id: str,
    records: Sequence[Mapping[str, Any]],
    invocations: int,
    raised: bool,
) -> None:
    """What Lambda sends to the mapping's OnFailure destination once a batch exhausts its retries."""
    destination = mapping.properties.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
    if destination is None:
        return  # no destination: Lambda drops the batch and moves on
    first, last = records[0]["dynamodb"], records[-1]["dynamodb"]
    response_context: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
    if raised:
        response_context["functionError"] = "Unhandled"
    message = {
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": stack.function_configuration(mapping.function_logical_id)["FunctionArn"],
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": invocations,
        },
        "responseContext": response_context,
        "version": "1.0",
        "timestamp": _iso_millis(dt.datetime.now(dt.UTC)),
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": str(first["SequenceNumber"]),
            "endSequenceNumber": str(last["SequenceNumber"]),
            "approximateArrivalOfFirstRecord": _iso_millis(first["ApproximateCreationDateTime"]),
            "approximateArrivalOfLastRecord": _iso_millis(last["ApproximateCreationDateTime"]),
            "batchSize": len(records),
            "streamArn": mapping.stream_arn,
        },
    }
    sqs_client(stack.region).send_message(QueueUrl=_queue_url_of(stack, destination), MessageBody=json.dumps(message))


def _queue_url_of(stack: LocalStack, destination: Any) -> str:
    """The URL of an OnFailure destination given as `!GetAtt Queue.Arn` (a stack queue) or a queue ARN."""
    if isinstance(destination, Mapping) and "Fn::GetAtt" in destination:
        return stack.queue_url(str(destination["Fn::GetAtt"][0]))
    if isinstance(destination, str) and destination.startswith("arn:") and ":sqs:" in destination:
        return str(sqs_client(stack.region).get_queue_url(QueueName=destination.rsplit(":", 1)[-1])["QueueUrl"])
    raise LocalStackError(f"cannot resolve the OnFailure destination {destination!r} locally (SQS only)")


def _iso_millis(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
