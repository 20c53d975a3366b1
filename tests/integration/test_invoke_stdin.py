"""`dunning invoke FUNCTION -e -`: the event from stdin, as `sam local generate-event ... | dunning invoke` pipes it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from dunning_tools.cli import main
from tests.conftest import EVENTS_DIR


def test_a_piped_generated_event_runs_on_a_throwaway_stack_when_none_is_running(
    aws_credentials: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DUNNING_LOCAL_DIR", str(tmp_path))  # an empty state folder: no local stack runs
    generated = (EVENTS_DIR / "scheduled_generate_event.json").read_text(encoding="utf-8")
    monkeypatch.setattr("sys.stdin", io.StringIO(generated))
    assert main(["invoke", "PlanRemindersFunction", "-e", "-"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["now"] == "1970-01-01T00:00:00+00:00"  # the generated event's `time` is the run's clock
    assert result["loans_read"] == 0
    assert "no local stack is running" in captured.err and "nothing it writes is kept" in captured.err


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        ("", "stdin holds no event"),
        ("{not json", "the event on stdin is not JSON"),
        ("[1, 2]", "the event on stdin is a JSON list, not an object"),
    ],
)
def test_a_bad_event_on_stdin_is_a_clear_error(
    stdin: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DUNNING_LOCAL_DIR", str(tmp_path))
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    with pytest.raises(SystemExit) as exited:
        main(["invoke", "PlanRemindersFunction", "-e", "-"])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_a_missing_event_file_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DUNNING_LOCAL_DIR", str(tmp_path))
    with pytest.raises(SystemExit):
        main(["invoke", "PlanRemindersFunction", "-e", str(tmp_path / "nope.json")])
    assert "no such file" in capsys.readouterr().err
