"""What every handler shares: a rejected input gets a clear log line, a metric and a place in the quarantine.

Nothing rejected is only logged: the input goes to QuarantineQueue exactly as received, with its
reason, for `dunning replay`. When the quarantine cannot take it the handler raises, so Lambda's
retries and then FailedInvocationsQueue keep the event instead.
"""

from __future__ import annotations

import ast
import base64
import datetime as dt
import gzip
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from dunning.dal.quarantine import Quarantine, QuarantineEntry, QuarantineWriteError
from dunning.observability import MetricUnit, logger, metrics, tracer
from dunning.settings import get_settings

if TYPE_CHECKING:  # a type only: the model is built where a handler parses with it (RecordDeliveryFunction)
    from aws_lambda_powertools.utilities.parser.models import CloudWatchLogsLogEvent

# The ClientContext `custom` key `dunning replay` sets: the input is already in the quarantine,
# so a replay that is rejected again only says so in its reply.
REPLAY_MARKER = "dunning-replay"


def describe(exc: ValidationError) -> str:
    """Field paths and messages only: never the input values (they may hold phone numbers)."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '(event)'}: {_message(e)}" for e in exc.errors())


def _message(error: Any) -> str:
    ctx = error.get("ctx", {})
    # The one pydantic message that quotes the input: the unknown discriminator value.
    if error["type"] == "union_tag_invalid":
        return f"unknown {ctx.get('discriminator', 'tag')}; expected one of {ctx.get('expected_tags', '')}"
    # Our own validators may quote what they refused ("'XXX' is not an ISO 4217 currency"): masked.
    given = str(error.get("input", ""))
    return _QUOTED.sub(
        lambda quoted: "<input>" if _quotes_input(quoted.group(0), given) else quoted.group(0), error["msg"]
    )


_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'" + r'|"(?:[^"\\]|\\.)*"')  # a Python repr, in either quote


def _quotes_input(token: str, given: str) -> bool:
    try:
        text = str(ast.literal_eval(token))
    except (ValueError, SyntaxError):
        text = token[1:-1]
    return bool(text) and text in given


@dataclass(frozen=True)
class Rejection:
    """One rejected input: `event` is what the function would be invoked with to try it again."""

    kind: str
    reason: str
    event: Mapping[str, Any]


def is_replay(context: Any) -> bool:
    custom = getattr(getattr(context, "client_context", None), "custom", None)
    return isinstance(custom, Mapping) and bool(custom.get(REPLAY_MARKER))


def note_rejected(kind: str, reason: str, context: Any) -> None:
    """The log line and the `MalformedEvents` metric of one rejected input (counted once: not again on replay)."""
    logger.error("malformed event rejected", extra={"event_kind": kind, "validation_error": reason})
    tracer.put_annotation(key="rejected", value=True)  # searchable: `annotation.rejected = true`
    if not is_replay(context):
        metrics.add_metric(name="MalformedEvents", unit=MetricUnit.Count, value=1)


def quarantine(function: str, rejections: Sequence[Rejection], context: Any) -> None:
    """Keep the rejected inputs in QuarantineQueue; raises QuarantineWriteError when it cannot."""
    if not rejections or is_replay(context):
        return
    now = dt.datetime.now(dt.UTC)
    entries = [
        QuarantineEntry(function, r.kind, r.reason, now, json.dumps(r.event, ensure_ascii=False)) for r in rejections
    ]
    try:
        Quarantine(get_settings().quarantine_queue_url).put(entries)
    except QuarantineWriteError as exc:
        logger.error(
            "quarantine write failed; failing the invocation so the event is retried",
            extra={"function": function, "rejected": len(entries), "error": str(exc)},
        )
        raise


def rejected(
    function: str, kind: str, error: ValidationError | str, event: Mapping[str, Any], context: Any
) -> dict[str, Any]:
    """A whole event rejected: logged, counted and quarantined; the reply says why."""
    reason = describe(error) if isinstance(error, ValidationError) else error
    note_rejected(kind, reason, context)
    quarantine(function, [Rejection(kind, reason, event)], context)
    return {"status": "rejected", "error": reason}


def cloudwatch_logs_event(batch: Mapping[str, Any], log_events: Sequence[CloudWatchLogsLogEvent]) -> dict[str, Any]:
    """The subscription event Lambda would get for `log_events` alone, with their batch's metadata."""
    payload = {
        **batch,
        "logEvents": [
            {"id": e.id, "timestamp": round(e.timestamp.timestamp() * 1000), "message": str(e.message)}
            for e in log_events
        ],
    }
    data = gzip.compress(json.dumps(payload, ensure_ascii=False).encode("utf-8"), mtime=0)
    return {"awslogs": {"data": base64.b64encode(data).decode("ascii")}}
