"""The one timestamp format of record ids and audit fields, shared by every store (no model to build)."""

from __future__ import annotations

import datetime as dt


def utc_iso(moment: dt.datetime) -> str:
    """ISO-8601 UTC with milliseconds and a Z: sortable, as record ids require."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
