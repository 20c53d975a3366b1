"""LoanEventsBus: the product's own events out (docs/contract.md#events-out)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from dunning.dal.aws import events

SOURCE = "dunning"


class EventPublishFailed(RuntimeError):
    """EventBridge did not take the event; the caller retries on its next run."""


class EventBus:
    def __init__(self, name: str) -> None:
        self.name = name

    def put(self, detail_type: str, detail: dict[str, Any], time: dt.datetime) -> str:
        """Put one event; returns its EventBridge id."""
        response = events().put_events(
            Entries=[
                {
                    "EventBusName": self.name,
                    "Source": SOURCE,
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail, ensure_ascii=False, sort_keys=True),
                    "Time": time,
                }
            ]
        )
        entry = response["Entries"][0]
        if response.get("FailedEntryCount") or "EventId" not in entry:
            raise EventPublishFailed(f"{detail_type}: {entry.get('ErrorCode')} {entry.get('ErrorMessage')}")
        return str(entry["EventId"])
