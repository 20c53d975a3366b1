"""QuarantineQueue: what a function rejected, kept exactly as received with its reason, for `dunning replay`.

Each message's body is the event to invoke the function with again (JSON); its attributes say
which function rejected it (`function`, the template's logical ID), what it was (`kind`), why
(`reason`: field paths and messages, never input values) and when (`received_at`, ISO UTC).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from dunning.dal.aws import sqs

ATTRIBUTES = ("function", "kind", "reason", "received_at")
REASON_MAX_CHARS = 1000
# SendMessageBatch limits: 10 entries, and the whole request (bodies and attributes) within 256 KiB.
_BATCH_ENTRIES = 10
_BATCH_BYTES = 240 * 1024


class QuarantineWriteError(RuntimeError):
    """The quarantine did not take a rejected input: the caller must fail so the input is retried."""


@dataclass(frozen=True)
class QuarantineEntry:
    function: str
    kind: str
    reason: str
    received_at: dt.datetime
    body: str

    def attributes(self) -> dict[str, dict[str, str]]:
        values = {
            "function": self.function,
            "kind": self.kind,
            "reason": self.reason[:REASON_MAX_CHARS] or "(none)",
            "received_at": self.received_at.astimezone(dt.UTC).isoformat(),
        }
        return {name: {"DataType": "String", "StringValue": value} for name, value in values.items()}

    def size(self) -> int:
        attributes = self.attributes().items()
        return len(self.body.encode()) + sum(len(n) + len(v["StringValue"].encode()) for n, v in attributes)


class Quarantine:
    def __init__(self, url: str) -> None:
        self.url = url

    def put(self, entries: Sequence[QuarantineEntry]) -> None:
        """Keep every entry, or raise QuarantineWriteError (naming the SQS error codes, never the content)."""
        for batch in _batches(entries):
            request: list[Any] = [
                {"Id": str(i), "MessageBody": entry.body, "MessageAttributes": entry.attributes()}
                for i, entry in enumerate(batch)
            ]
            try:
                response = sqs().send_message_batch(QueueUrl=self.url, Entries=request)
            except (ClientError, BotoCoreError) as exc:
                code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
                raise QuarantineWriteError(
                    f"quarantine refused {len(batch)} message(s): {code or type(exc).__name__}"
                ) from exc
            failed = response.get("Failed", [])
            if failed:
                codes = sorted({str(f.get("Code", "")) for f in failed})
                raise QuarantineWriteError(f"quarantine refused {len(failed)} message(s): {', '.join(codes)}")


def _batches(entries: Sequence[QuarantineEntry]) -> Iterator[list[QuarantineEntry]]:
    batch: list[QuarantineEntry] = []
    size = 0
    for entry in entries:
        entry_size = entry.size()
        if batch and (len(batch) == _BATCH_ENTRIES or size + entry_size > _BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += entry_size
    if batch:
        yield batch
