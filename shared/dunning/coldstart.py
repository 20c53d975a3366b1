"""A function's cold start: the cyclic garbage collector rests while the function's modules load.

Every handler (`functions/*/app.py`) imports this module first (ruff's isort keeps it there: the
"cold-start" section in pyproject.toml) and calls `loaded()` as its module's last statement.

Loading a function builds ~100,000 long-lived objects (modules, pydantic's validators, botocore's
service models) and leaves almost no garbage (~700 objects), yet with the collector on, the
collections it triggers walk them all: 35 to 45 ms of a ~0.4 s cold start (`make bench`, cold init).
`loaded()` then moves what was loaded out of the collector's sight for good (`gc.freeze`, as the
`gc` documentation advises before a fork) and turns it back on (if the process had it on), so the
collections of every later invocation skip those objects too.
"""

from __future__ import annotations

import gc

_COLLECTING = gc.isenabled()  # as the process had it (Lambda's runtime: on)
gc.disable()


def loaded() -> None:
    """The handler's module is loaded: what it built is kept for the container's life, collect the rest."""
    gc.freeze()
    if _COLLECTING:
        gc.enable()
