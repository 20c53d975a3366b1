"""What the local stack keeps across restarts: a snapshot of the product's data, by logical ID.

Saved (by the daemon, in-process with moto's backends, on stop and at each safe point):
  * every item of every `AWS::DynamoDB::Table` of the stack (DynamoDB JSON, one item a line);
  * every message of every `AWS::SQS::Queue` (body, attributes, FIFO group and deduplication ids),
    read from moto's queue objects, because reading them through ReceiveMessage would count a
    receive each time and walk them towards the dead-letter queue;
  * every object of every `AWS::S3::Bucket` (current versions);
  * the phone-hash data key in the clear (StateTable `KEY / PHONE_HASH`): a fresh deploy makes new
    KMS keys with new key material, so on restore the data key is wrapped again under the new
    `PhoneHashKey` and every stored `PHONEHASH#h` still matches its number (a local, fake key);
  * the stack's identity: name, region, template (path and SHA-256), parameters, physical IDs;
  * the LoansTable items whose stream records were not yet drained.
Restored into a fresh deploy of the template (same name and parameters unless told otherwise),
table by table, queue by queue, bucket by bucket, by logical ID: physical names may differ,
nothing the product stores names them. Stream records: restoring items writes new ones, so the
drain positions are moved past them, then the not-yet-drained items are written again, so the
next drain hands exactly those to LoanChangesFunction.
Not kept: SMS that moto's SNS recorded as sent, EventBridge events (nothing buffers them), and
CloudWatch logs. The snapshot folder is replaced whole (write aside, then rename).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from dunning_tools.local.stack import LocalStack, aws_session

IDENTITY_FILE = "stack.json"
KEY_FILE = "phone_hash_key.json"
FORMAT = 1
# StateTable's wrapped phone-hash key (dunning.dal.phone_keys.KEY_ITEM and ENCRYPTION_CONTEXT).
_KEY_PK, _KEY_SK = "KEY", "PHONE_HASH"
_ENCRYPTION_CONTEXT = {"purpose": "dunning-phone-hash"}


class SnapshotError(RuntimeError):
    """A snapshot cannot be read or restored; the message names what."""


def read_identity(folder: Path) -> dict[str, Any] | None:
    try:
        identity: dict[str, Any] = json.loads((folder / IDENTITY_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise SnapshotError(f"{folder / IDENTITY_FILE} is not JSON: {exc}") from exc
    return identity


# ---------------------------------------------------------------- save
def save(
    stack: LocalStack, folder: Path, positions_file: Path, template: str, parameters: Mapping[str, str]
) -> dict[str, Any]:
    """Write the snapshot of the stack's data to `folder` (replacing the previous one); its counts."""
    session = aws_session(stack.region)
    temporary = folder.with_name(folder.name + ".new")
    shutil.rmtree(temporary, ignore_errors=True)
    for part in ("dynamodb", "sqs", "s3"):
        (temporary / part).mkdir(parents=True)
    counts: dict[str, int] = {}

    dynamodb = session.client("dynamodb")
    phone_key: dict[str, str] | None = None
    for logical_id in stack.logical_ids("AWS::DynamoDB::Table"):
        items = list(_scan(dynamodb, stack.physical_id(logical_id)))
        _write_lines(temporary / "dynamodb" / f"{logical_id}.jsonl", (_encode(item) for item in items))
        counts[f"dynamodb/{logical_id}"] = len(items)
        for item in items:
            if item.get("pk") == {"S": _KEY_PK} and item.get("sk") == {"S": _KEY_SK}:
                phone_key = _unwrapped_key(session, item)

    for logical_id in stack.logical_ids("AWS::SQS::Queue"):
        messages = _queue_messages(stack, logical_id)
        _write_lines(temporary / "sqs" / f"{logical_id}.jsonl", messages)
        counts[f"sqs/{logical_id}"] = len(messages)

    s3 = session.client("s3")
    for logical_id in stack.logical_ids("AWS::S3::Bucket"):
        objects = list(_bucket_objects(s3, stack.physical_id(logical_id)))
        _write_lines(temporary / "s3" / f"{logical_id}.jsonl", objects)
        counts[f"s3/{logical_id}"] = len(objects)

    if phone_key is not None:
        # Readable by its owner only, from the first byte (a local, fake key, but a key).
        descriptor = os.open(temporary / KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as key_file:
            key_file.write(json.dumps(phone_key))
    template_file = Path(template)
    identity = {
        "format": FORMAT,
        "saved_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "stack_name": stack.name,
        "region": stack.region,
        "template": str(template_file),
        "template_sha256": hashlib.sha256(template_file.read_bytes()).hexdigest(),
        "parameters": dict(parameters),
        "physical_ids": {r.logical_id: r.physical_id for r in stack.resources.values()},
        "undrained_stream_keys": _undrained_keys(stack, positions_file),
        "counts": counts,
    }
    (temporary / IDENTITY_FILE).write_text(json.dumps(identity, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    previous = folder.with_name(folder.name + ".old")
    shutil.rmtree(previous, ignore_errors=True)
    if folder.exists():
        folder.rename(previous)
    temporary.rename(folder)
    shutil.rmtree(previous, ignore_errors=True)
    return {"saved_at": identity["saved_at"], "counts": counts}


def _scan(dynamodb: Any, table: str) -> Iterator[dict[str, Any]]:
    for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        yield from page.get("Items", [])


def _unwrapped_key(session: Any, item: Mapping[str, Any]) -> dict[str, str]:
    plaintext = session.client("kms").decrypt(
        CiphertextBlob=item["wrapped_key"]["B"], EncryptionContext=_ENCRYPTION_CONTEXT
    )["Plaintext"]
    return {"kms_key": str(item.get("kms_key", {}).get("S", "")), "plaintext": base64.b64encode(plaintext).decode()}


def _queue_messages(stack: LocalStack, logical_id: str) -> list[dict[str, Any]]:
    """Every message of the queue, in flight or not, from moto's own queue object (a read, no receive)."""
    from moto.sqs.models import sqs_backends

    from dunning_tools.local.context import DEFAULT_ACCOUNT_ID

    name = stack.queue_url(logical_id).rstrip("/").rsplit("/", 1)[-1]
    queue = sqs_backends[DEFAULT_ACCOUNT_ID][stack.region].queues.get(name)
    if queue is None:
        return []
    messages = []
    for message in list(queue._messages):
        saved: dict[str, Any] = {"body": message.body, "attributes": _attributes(message.message_attributes)}
        if message.group_id:
            saved["group_id"] = message.group_id
        if message.deduplication_id:
            saved["deduplication_id"] = message.deduplication_id
        messages.append(saved)
    return messages


def _attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    saved: dict[str, Any] = {}
    for name, value in attributes.items():
        entry = {"DataType": value["DataType"]}
        if value.get("StringValue") is not None:
            entry["StringValue"] = value["StringValue"]
        elif value.get("BinaryValue") is not None:
            binary = value["BinaryValue"]
            entry["BinaryValue"] = binary if isinstance(binary, str) else base64.b64encode(binary).decode()
        saved[name] = entry
    return saved


def _bucket_objects(s3: Any, bucket: str) -> Iterator[dict[str, Any]]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for summary in page.get("Contents", []):
            found = s3.get_object(Bucket=bucket, Key=summary["Key"])
            yield {
                "key": summary["Key"],
                "content_type": found.get("ContentType", "binary/octet-stream"),
                "body": base64.b64encode(found["Body"].read()).decode("ascii"),
            }


def _undrained_keys(stack: LocalStack, positions_file: Path) -> dict[str, list[dict[str, Any]]]:
    """Keys of the items whose stream records no drain has handed over yet, by table logical ID."""
    try:
        positions: dict[str, str] = json.loads(positions_file.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        positions = {}
    streams = _streams(stack)
    found: dict[str, list[dict[str, Any]]] = {}
    for mapping in stack.stream_mappings.values():
        table = _table_of_stream(stack, mapping.stream_arn)
        if table is None:
            continue
        keys: dict[str, dict[str, Any]] = {}
        for shard_id in _shard_ids(streams, mapping.stream_arn):
            after = positions.get(f"{mapping.logical_id}/{shard_id}")
            for record in _records(streams, mapping.stream_arn, shard_id, after):
                key = record["dynamodb"]["Keys"]
                keys[json.dumps(key, sort_keys=True)] = key
        if keys:
            found.setdefault(table, []).extend(keys.values())
    return found


# ---------------------------------------------------------------- restore
def restore(stack: LocalStack, folder: Path, positions_file: Path) -> dict[str, Any] | None:
    """Load the snapshot in `folder` into a freshly deployed stack; its identity's summary, or None."""
    identity = read_identity(folder)
    if identity is None:
        return None
    if identity.get("format") != FORMAT:
        raise SnapshotError(f"{folder} has snapshot format {identity.get('format')!r}; this runner reads {FORMAT}")
    session = aws_session(stack.region)
    skipped: list[str] = []
    dynamodb = session.client("dynamodb")
    phone_key = _read_phone_key(folder)
    undrained = identity.get("undrained_stream_keys", {})
    later: list[tuple[str, dict[str, Any]]] = []
    for path in sorted((folder / "dynamodb").glob("*.jsonl")):
        logical_id = path.stem
        if logical_id not in stack.resources:
            skipped.append(f"dynamodb/{logical_id}")
            continue
        table = stack.physical_id(logical_id)
        pending = {json.dumps(key, sort_keys=True) for key in undrained.get(logical_id, [])}
        now: list[dict[str, Any]] = []
        for item in (_decode(line) for line in _read_lines(path)):
            if item.get("pk") == {"S": _KEY_PK} and item.get("sk") == {"S": _KEY_SK} and phone_key is not None:
                item = _rewrapped(session, stack, identity, item, phone_key)
            key = _key_of(stack, logical_id, item)
            (later.append((table, item)) if json.dumps(key, sort_keys=True) in pending else now.append(item))
        _batch_write(dynamodb, table, now)
    # The restore's own writes are on the stream now: the next drain starts after them...
    _write_positions(positions_file, _stream_ends(stack))
    # ...and finds the records that were waiting at the snapshot, written once more.
    for table, item in later:
        dynamodb.put_item(TableName=table, Item=item)

    sqs = session.client("sqs")
    for path in sorted((folder / "sqs").glob("*.jsonl")):
        if path.stem not in stack.resources:
            skipped.append(f"sqs/{path.stem}")
            continue
        _send_all(sqs, stack.queue_url(path.stem), list(_read_lines(path)))

    s3 = session.client("s3")
    for path in sorted((folder / "s3").glob("*.jsonl")):
        if path.stem not in stack.resources:
            skipped.append(f"s3/{path.stem}")
            continue
        bucket = stack.physical_id(path.stem)
        for saved in _read_lines(path):
            s3.put_object(
                Bucket=bucket, Key=saved["key"], Body=base64.b64decode(saved["body"]), ContentType=saved["content_type"]
            )
    return {"saved_at": identity.get("saved_at", ""), "counts": identity.get("counts", {}), "skipped": skipped}


def _read_phone_key(folder: Path) -> dict[str, str] | None:
    try:
        loaded: dict[str, str] = json.loads((folder / KEY_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return loaded


def _rewrapped(
    session: Any, stack: LocalStack, identity: Mapping[str, Any], item: dict[str, Any], phone_key: Mapping[str, str]
) -> dict[str, Any]:
    """The key item, its data key wrapped under the new stack's key that replaced the old one."""
    old_key = phone_key["kms_key"]
    logical_id = next(
        (
            logical
            for logical, physical in identity.get("physical_ids", {}).items()
            if physical and stack.resources.get(logical) and physical in old_key
        ),
        "PhoneHashKey",
    )
    if logical_id not in stack.resources:
        raise SnapshotError(f"the snapshot's phone-hash key was {old_key}; the new stack has no key to replace it")
    made = session.client("kms").encrypt(
        KeyId=stack.physical_id(logical_id),
        Plaintext=base64.b64decode(phone_key["plaintext"]),
        EncryptionContext=_ENCRYPTION_CONTEXT,
    )
    return {**item, "wrapped_key": {"B": made["CiphertextBlob"]}, "kms_key": {"S": str(made["KeyId"])}}


def _key_of(stack: LocalStack, logical_id: str, item: Mapping[str, Any]) -> dict[str, Any]:
    schema = stack.template["Resources"].get(logical_id, {}).get("Properties", {}).get("KeySchema", [])
    return {part["AttributeName"]: item[part["AttributeName"]] for part in schema if part["AttributeName"] in item}


def _batch_write(dynamodb: Any, table: str, items: list[dict[str, Any]]) -> None:
    for start in range(0, len(items), 25):
        request: dict[str, Any] = {table: [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]}
        while request:
            request = dynamodb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}


def _send_all(sqs: Any, queue_url: str, messages: list[dict[str, Any]]) -> None:
    for start in range(0, len(messages), 10):
        entries = []
        for n, saved in enumerate(messages[start : start + 10]):
            entry: dict[str, Any] = {"Id": str(n), "MessageBody": saved["body"]}
            attributes = {
                name: (
                    {"DataType": value["DataType"], "BinaryValue": base64.b64decode(value["BinaryValue"])}
                    if "BinaryValue" in value
                    else value
                )
                for name, value in saved.get("attributes", {}).items()
            }
            if attributes:
                entry["MessageAttributes"] = attributes
            if "group_id" in saved:
                entry["MessageGroupId"] = saved["group_id"]
            if "deduplication_id" in saved:
                entry["MessageDeduplicationId"] = saved["deduplication_id"]
            entries.append(entry)
        failed = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries).get("Failed", [])
        if failed:
            raise SnapshotError(f"could not restore {len(failed)} message(s) to {queue_url}: {failed[0]}")


def _stream_ends(stack: LocalStack) -> dict[str, str]:
    """Each mapped stream shard's last sequence number: where a drain starting now would begin."""
    streams = _streams(stack)
    ends: dict[str, str] = {}
    for mapping in stack.stream_mappings.values():
        for shard_id in _shard_ids(streams, mapping.stream_arn):
            last = None
            for record in _records(streams, mapping.stream_arn, shard_id, None):
                last = str(record["dynamodb"]["SequenceNumber"])
            if last is not None:
                ends[f"{mapping.logical_id}/{shard_id}"] = last
    return ends


def _write_positions(path: Path, positions: Mapping[str, str]) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(dict(positions), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    temporary.replace(path)


# ---------------------------------------------------------------- streams and files
def _streams(stack: LocalStack) -> Any:
    from dunning_tools.local.stack import dynamodbstreams_client

    return dynamodbstreams_client(stack.region)


def _shard_ids(streams: Any, stream_arn: str) -> list[str]:
    from dunning_tools.local.invoke import _shard_ids as shard_ids

    return shard_ids(streams, stream_arn)


def _records(streams: Any, stream_arn: str, shard_id: str, after: str | None) -> Iterator[dict[str, Any]]:
    """The shard's records after a sequence number (or all), without moving any drain position."""
    arguments: dict[str, Any] = {"StreamArn": stream_arn, "ShardId": shard_id, "ShardIteratorType": "TRIM_HORIZON"}
    if after is not None:
        arguments.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=after)
    iterator = streams.get_shard_iterator(**arguments)["ShardIterator"]
    while iterator:
        page = streams.get_records(ShardIterator=iterator, Limit=1000)
        if not page["Records"]:
            return
        yield from page["Records"]
        iterator = page.get("NextShardIterator")


def _table_of_stream(stack: LocalStack, stream_arn: str) -> str | None:
    """The logical ID of the stack table whose stream this is (`...:table/<name>/stream/<label>`)."""
    name = stream_arn.split(":table/", 1)[-1].split("/stream/", 1)[0]
    return next(
        (
            logical_id
            for logical_id in stack.logical_ids("AWS::DynamoDB::Table")
            if stack.physical_id(logical_id) == name
        ),
        None,
    )


def _encode(value: Any) -> Any:
    """DynamoDB JSON with binary values as base64 text (`{"B": ...}`, `{"BS": [...]}`)."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {key: _encode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_encode(item) for item in value]
    return value


def _decode(value: Any, binary: bool = False) -> Any:
    if binary and isinstance(value, str):
        return base64.b64decode(value)
    if isinstance(value, dict):
        return {key: _decode(item, key in ("B", "BS")) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode(item, binary) for item in value]
    return value


def _write_lines(path: Path, rows: Iterator[Any] | list[Any]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")


def _read_lines(path: Path) -> Iterator[Any]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError as exc:
                    raise SnapshotError(f"{path}:{number} is not JSON: {exc}") from exc
