"""`make demo` in small: the same command on a 50-loan book over 3 days prints everything it promises."""

from __future__ import annotations

import re

import pytest

from dunning_tools import cli


def test_the_demo_runs_the_loop_and_prints_its_report(
    aws_credentials: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from moto.dynamodb.responses import DynamoResult

    stock = DynamoResult.execute_result

    assert cli.main(["demo", "--loans", "50", "--days", "3", "--seed", "11"]) == 0

    out = capsys.readouterr().out
    assert "56 loans seeded (6 malformed)" in out
    assert "SMS per day" in out
    assert "Sample zh-CN" in out and "UCS-2" in out
    assert "Sample en-US" in out and "GSM-7" in out
    totals = re.search(r"Totals over 3 days: (\d+) SMS published; records by outcome: (.*)", out)
    assert totals is not None and int(totals.group(1)) > 0
    assert "DELIVERED" in totals.group(2) and "SUPPRESSED" in totals.group(2)
    # The six malformed items are recorded with their reasons, each once a day.
    for reason in ("invalid_phone", "invalid_amount", "invalid_currency", "invalid_timezone", "missing_phone"):
        assert reason in out
    assert "Credit-bureau files written: 3" in out
    # They are recorded as upstream writes them too, by LoanChangesFunction from LoansTable's stream.
    assert "Invalid loan items recorded at intake (LoanChangesFunction, from LoansTable's stream): 6," in out
    # The demo's faster moto serialisation does not outlive the demo.
    assert DynamoResult.execute_result is stock


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--loans", "10"], "--loans must be between 50 and 20000"),
        (["demo", "--days", "0"], "--days must be between 1 and 120"),
    ],
)
def test_demo_arguments_out_of_range_name_the_argument(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        cli.main(argv)
    assert message in capsys.readouterr().err
