"""Argument types and options shared by the subcommand modules."""

from __future__ import annotations

import argparse
from pathlib import Path

# The functions that keep what they reject in QuarantineQueue (template.yaml logical IDs): `dunning replay`
# re-invokes only these, and only they may send to the queue.
QUARANTINING_FUNCTIONS = (
    "LoanEventsFunction",
    "InboundSmsFunction",
    "RecordDeliveryFunction",
    "PlanRemindersFunction",
    "EscalateFunction",
    "BureauReportFunction",
    "SyncOptOutsFunction",
)


def existing_file(value: str) -> Path:
    path = Path(value)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {value}")
    return path


def parameter(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected Key=Value, got {value!r}")
    return key, val


def state_dir_argument(command: argparse.ArgumentParser) -> None:
    """`--state-dir`: resolve it with `dunning_tools.local.server.state_dir(args.state_dir)` (kept lazy: that
    module imports boto3 and the SAM translator)."""
    command.add_argument(
        "--state-dir", default=None, help="the local stack's folder (env DUNNING_LOCAL_DIR; default ./.dunning)"
    )
