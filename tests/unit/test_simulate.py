"""`dunning simulate`: a policy over a JSON Lines book with the functions' pure code; no AWS, no moto."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from dunning.models.policy import DEFAULT_POLICY_PATH, Policy, Window, load_policy_file
from dunning_tools import cli
from dunning_tools.simulate import InputError, read_book, simulate
from dunning_tools.simulate.engine import MAX_LINES_PER_JOB, SimulationResult
from dunning_tools.simulate.prices import load_prices

POLICY = load_policy_file()
START = dt.date(2026, 12, 1)
KINDS = ("courtesy", "due_today", "overdue_notice", "follow_up")
ROOT = Path(__file__).resolve().parents[2]


def item(loan_id: str, borrower_id: str, phone: str, due: str, **changes: Any) -> dict[str, Any]:
    found: dict[str, Any] = {
        "loan_id": loan_id,
        "borrower_id": borrower_id,
        "borrower_name": "张三",
        "phone": phone,
        "status": "OPEN",
        "due_date": due,
        "amount_due": "1000.00",
        "currency": "CNY",
    }
    found.update(changes)
    return {k: v for k, v in found.items() if v is not None}


# The hand-checked book (default policy, business calendar Asia/Shanghai, 2026-12-01 .. 12-08):
# A  courtesy 12-01, due_today 12-04, overdue_notice 12-05, follow_up_3 12-07 (3 in the week before: allowed).
# B  a +1 212 number without a zone, 3 days overdue: follow_up_3 12-01, follow_up_6 12-04, follow_up_9 12-07,
#    each when New York's window opens (the business day 12-01 starts at 11-30 16:00Z, 11:00 in New York).
# C1, C2 one borrower, one number, both overdue: one SMS for both on 12-01 (led by C1's follow_up_6);
#    C2 follow_up_3 12-02; C1 follow_up_9 12-04; C2 follow_up_6 12-05; C1 follow_up_12 12-07 is the 5th
#    in 7 days: cap_weekly, deferred to the next local midnight; 12-08 C1 and C2 (follow_up_9) in one SMS.
# D  phone 12345, OPEN, due 12-02: the planner reads it every day and sets it aside: invalid_phone daily.
# E  due date 2026/12/01: the planner's index never finds it: recorded once, at intake, invalid_due_date.
# F  PAID: never read.
HAND_CHECKED = [
    item("A", "B1", "+8613800138000", "2026-12-04"),
    item("B", "B2", "+12125550147", "2026-11-28", amount_due=Decimal("420.50"), currency="USD", locale="en-US"),
    item("C1", "B3", "+8613900139001", "2026-11-25"),
    item("C2", "B3", "+8613900139001", "2026-11-29", amount_due=300),
    item("D", "B4", "12345", "2026-12-02"),
    item("E", "B5", "+8613700137005", "2026/12/01"),
    item("F", "B6", "+8613600136006", "2026-11-30", status="PAID"),
]
EXPECTED_SMS = {
    "2026-12-01": {"courtesy": 1, "follow_up": 2},
    "2026-12-02": {"follow_up": 1},
    "2026-12-03": {},
    "2026-12-04": {"due_today": 1, "follow_up": 2},
    "2026-12-05": {"overdue_notice": 1, "follow_up": 1},
    "2026-12-06": {},
    "2026-12-07": {"follow_up": 2},
    "2026-12-08": {"follow_up": 1},
}
EXPECTED_SUPPRESSED = {
    "2026-12-01": {"invalid_phone": 1, "invalid_due_date": 1},
    **{f"2026-12-0{d}": {"invalid_phone": 1} for d in (2, 3, 4, 5, 6, 8)},
    "2026-12-07": {"invalid_phone": 1, "cap_weekly": 1},
}


def write_book(path: Path, items: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(i, ensure_ascii=False, default=str) + "\n" for i in items), encoding="utf-8")
    return path


def run(tmp_path: Path, items: list[dict[str, Any]], days: int, policy: Policy = POLICY) -> SimulationResult:
    return simulate(read_book(write_book(tmp_path / "book.jsonl", items)), policy, START, days)


def sms_of(result: SimulationResult) -> dict[str, dict[str, int]]:
    return {day.date.isoformat(): {k: n for k, n in day.sms.items() if n} for day in result.days}


def test_hand_checked_book_day_by_day(tmp_path: Path) -> None:
    result = run(tmp_path, HAND_CHECKED, 8)
    assert sms_of(result) == EXPECTED_SMS
    assert {day.date.isoformat(): dict(day.suppressed) for day in result.days} == EXPECTED_SUPPRESSED
    assert [day.consolidated for day in result.days] == [1, 0, 0, 0, 0, 0, 0, 1]
    assert result.total("loans_reminded") == result.total("sms_total") + 2  # two SMS covered two loans each
    assert (result.items, result.invalid_items, result.not_open) == (7, 2, 1)
    # Every SMS of these templates is 1 or 2 segments (the policy's budget).
    for day in result.days:
        assert day.sms_total <= day.segments <= POLICY.max_segments * day.sms_total
    assert result.counter("sms_by_country") == {"CN": 9, "US": 3}


def test_a_courtesy_reminder_does_not_share_the_overdue_sms_and_waits_for_tomorrow(tmp_path: Path) -> None:
    book = [
        item("OVERDUE", "B1", "+8613800138000", "2026-11-30"),  # overdue_notice on 12-01
        item("COURTESY", "B1", "+8613800138000", "2026-12-04"),  # courtesy on 12-01: one SMS a day
    ]
    result = run(tmp_path, book, 2)
    assert sms_of(result) == {"2026-12-01": {"overdue_notice": 1}, "2026-12-02": {"courtesy": 1}}
    assert dict(result.days[0].suppressed) == {"cap_daily": 1}
    assert result.total("consolidated") == 0


def test_the_daily_cap_is_the_policys(tmp_path: Path) -> None:
    book = [
        item("OVERDUE", "B1", "+8613800138000", "2026-11-30"),
        item("COURTESY", "B1", "+8613800138000", "2026-12-04"),
        item("OTHER", "B1", "+8613900139001", "2026-11-30"),  # another number: not in the same SMS
    ]
    two_a_day = POLICY.model_copy(update={"caps": POLICY.caps.model_copy(update={"per_borrower_per_day": 2})})
    # The sender's rule stays: one SMS per job (the others wait for tomorrow) whatever the cap.
    assert sms_of(run(tmp_path, book, 1, two_a_day)) == {"2026-12-01": {"overdue_notice": 1}}
    assert dict(run(tmp_path, book, 1, two_a_day).days[0].suppressed) == {"cap_daily": 2}


def test_a_window_holding_no_planner_hour_sends_nothing(tmp_path: Path) -> None:
    half_hour = POLICY.model_copy(update={"send_window": Window(start=dt.time(9, 30), end=dt.time(10, 0))})
    result = run(tmp_path, HAND_CHECKED[:4], 3, half_hour)
    assert result.total("sms_total") == 0
    assert [day.no_window for day in result.days] == [4, 4, 4]  # A, B, C1, C2 each day


def test_a_number_whose_zones_share_no_window_gets_no_sms(tmp_path: Path) -> None:
    narrow = POLICY.model_copy(update={"send_window": Window(start=dt.time(10), end=dt.time(18))})
    book = [
        item("RU", "B1", "+79123456789", "2026-11-30", currency="RUB"),  # Bucharest to Anadyr
        item("CN", "B2", "+8613800138000", "2026-11-30"),
    ]
    result = run(tmp_path, book, 2, narrow)
    assert sms_of(result) == {"2026-12-01": {"overdue_notice": 1}, "2026-12-02": {}}
    assert [day.no_window for day in result.days] == [1, 1]
    # The default 09:00-20:00 window leaves the Russian number one shared hour (07:00-08:00Z): one planner fire.
    assert sms_of(run(tmp_path, book, 1))["2026-12-01"] == {"overdue_notice": 2}


def test_amounts_as_numbers_or_strings_and_bad_values_as_suppressions(tmp_path: Path) -> None:
    path = tmp_path / "book.jsonl"
    path.write_text(
        "\n".join(
            [
                '{"loan_id": "N", "borrower_id": "B1", "borrower_name": "Li", "phone": "+8613800138000",'
                ' "status": "OPEN", "due_date": "2026-11-30", "amount_due": 1234.56, "currency": "CNY"}',
                "",  # blank lines are skipped
                '{"loan_id": "S", "borrower_id": "B2", "borrower_name": "Li", "phone": "+8613900139001",'
                ' "status": "OPEN", "due_date": "2026-11-30", "amount_due": "99.5", "currency": "CNY"}',
                '{"loan_id": "X", "borrower_id": "B3", "borrower_name": "Li", "phone": "+8613700137003",'
                ' "status": "OPEN", "due_date": "2026-11-30", "amount_due": "abc", "currency": "CNY"}',
                '{"loan_id": "H", "borrower_id": "B4", "borrower_name": "Li", "phone": "+8613600136004",'
                ' "status": "OPEN", "due_date": "2026-11-30", "amount_due": 9E+125, "currency": "CNY"}',
                '{"loan_id": "F", "borrower_id": "B5", "borrower_name": "Li", "phone": "+8613500135005",'
                ' "status": "OPEN", "due_date": "2026-11-30", "amount_due": 1.234, "currency": "CNY"}',
            ]
        ),
        encoding="utf-8",
    )
    book = read_book(path)
    assert [entry.line for entry in book] == [1, 3, 4, 5, 6]
    assert book[0].item["amount_due"] == Decimal("1234.56")  # exact, never a float
    result = simulate(book, POLICY, START, 1)
    assert result.days[0].sms_total == 2
    assert dict(result.days[0].suppressed) == {"invalid_amount": 3}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"loan_id": "A"}\n{"loan_id": "B",\n', "line 2: not JSON"),
        ('{"loan_id": "A"}\n[1, 2]\n', "line 2: not a LoansTable item"),
        ('{"loan_id": "A"}\n\n{"loan_id": "A"}\n', "line 3: loan_id 'A' is already on line 1"),
        ('{"loan_id": {"S": "A"}}\n', "line 1: DynamoDB JSON"),
        ("\n\n", "the book has no items"),
    ],
)
def test_a_line_that_is_not_an_item_is_an_error_naming_it(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "book.jsonl"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=message) as caught:
        read_book(path)
    assert str(path) in str(caught.value)


def test_a_line_that_is_not_utf8_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "book.jsonl"
    path.write_bytes(b'{"loan_id": "A"}\n{"loan_id": "\xff"}\n')
    with pytest.raises(InputError, match="line 2: not UTF-8"):
        read_book(path)


def test_the_planners_job_size_is_the_simulators() -> None:
    from dunning import planner

    assert planner.MAX_LINES_PER_JOB == MAX_LINES_PER_JOB


def test_no_handler_imports_the_simulator() -> None:
    """Tooling, not Lambda code: importing every handler leaves dunning_tools.simulate unloaded."""
    handlers = sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py"))
    assert handlers
    code = (
        "import sys\n"
        + "".join(f"import functions.{name}.app\n" for name in handlers)
        + "print(sorted(m for m in sys.modules if m.startswith('dunning_tools.simulate')))\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={
            "PYTHONPATH": f"{ROOT}:{ROOT / 'shared'}:{ROOT / 'tools'}",
            "AWS_DEFAULT_REGION": "us-east-1",
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        check=True,
    )
    assert found.stdout.strip() == "[]"


# ---------------------------------------------------------------------------- the command
def main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = cli.main(["simulate", *argv])
    except SystemExit as exit_:  # argparse
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_json_output_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    book = write_book(tmp_path / "book.jsonl", HAND_CHECKED)
    code, out, err = main(capsys, "--book", str(book), "--start", "2026-12-01", "--days", "8", "--json")
    assert (code, err) == (0, "")
    document = json.loads(out)  # nothing but the JSON on stdout (no log line, no metric)
    assert [day["date"] for day in document["days"]] == list(EXPECTED_SMS)
    for day in document["days"]:
        assert set(day) >= {"date", "sms", "suppressed"}
        assert day["sms"] == {kind: EXPECTED_SMS[day["date"]].get(kind, 0) for kind in KINDS}
        assert day["suppressed"] == EXPECTED_SUPPRESSED[day["date"]]
    totals = document["totals"]
    assert totals["sms"] == 12
    assert totals["segments"] == sum(day["segments"] for day in document["days"])
    assert totals["suppressed"] == {"cap_weekly": 1, "invalid_due_date": 1, "invalid_phone": 8}
    prices = load_prices()
    us, cn = totals["by_country"]["US"], totals["by_country"]["CN"]
    assert Decimal(us["cost_usd"]) == prices.per_segment["US"] * us["segments"]
    assert Decimal(totals["cost_usd"]) == Decimal(us["cost_usd"]) + Decimal(cn["cost_usd"])
    assert document["prices"]["as_of"] == prices.as_of.isoformat()


def test_text_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    book = write_book(tmp_path / "book.jsonl", HAND_CHECKED)
    code, out, err = main(capsys, "--book", str(book), "--start", "2026-12-01", "--days", "8")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("date "))
    assert header.split() == ["date", *KINDS, "sms", "segments", "no_window", "suppressed"]
    first = next(line for line in lines if line.startswith("2026-12-01"))
    assert first.split()[1:6] == ["1", "0", "0", "2", "3"]
    assert "cap_weekly 1" in out and "Not simulated: borrowers replying, paying" in out
    assert "estimates, check them" in out
    assert any(line.startswith("total") and line.split()[1:6] == ["1", "1", "1", "9", "12"] for line in lines)


def test_compare_shows_both_policies_and_their_differences(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    book = write_book(tmp_path / "book.jsonl", HAND_CHECKED)
    stricter = tmp_path / "stricter.yaml"
    stricter.write_text(
        DEFAULT_POLICY_PATH.read_text(encoding="utf-8").replace(
            "per_borrower_per_7_days: 4", "per_borrower_per_7_days: 2"
        ),
        encoding="utf-8",
    )
    args = ["--book", str(book), "--compare", str(stricter), "--start", "2026-12-01", "--days", "8"]
    code, out, _ = main(capsys, *args, "--json")
    assert code == 0
    document = json.loads(out)
    a, b, diff = document["totals"], document["compare"]["totals"], document["difference"]["totals"]
    assert b["sms"] < a["sms"]
    assert diff["sms"] == b["sms"] - a["sms"]
    assert diff["suppressed"]["cap_weekly"] == b["suppressed"]["cap_weekly"] - a["suppressed"]["cap_weekly"] > 0
    assert Decimal(diff["cost_usd"]) == Decimal(b["cost_usd"]) - Decimal(a["cost_usd"])
    for day_a, day_b, day_diff in zip(
        document["days"], document["compare"]["days"], document["difference"]["days"], strict=True
    ):
        assert day_diff["sms"] == {kind: day_b["sms"][kind] - day_a["sms"][kind] for kind in KINDS}
    assert "stricter.yaml (version 1, sha256" in document["compare"]["policy"]

    code, out, _ = main(capsys, *args)
    assert code == 0
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("date")).split()
    assert header == [
        "date",
        "sms",
        "A",
        "sms",
        "B",
        "diff",
        "seg",
        "A",
        "seg",
        "B",
        "diff",
        "supp",
        "A",
        "supp",
        "B",
        "diff",
    ]
    total = next(line for line in lines if line.startswith("total")).split()
    assert [int(n.replace(",", "")) for n in total[1:4]] == [a["sms"], b["sms"], b["sms"] - a["sms"]]
    assert "suppressed by reason" in out and "cap_weekly" in out


def test_prices_file_overrides_and_unpriced_countries_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    book = write_book(tmp_path / "book.jsonl", HAND_CHECKED)
    prices = tmp_path / "prices.json"
    prices.write_text(
        json.dumps({"as_of": "2026-12-01", "currency": "USD", "source": "our contract", "per_segment": {"CN": "0.01"}}),
        encoding="utf-8",
    )
    code, out, _ = main(
        capsys, "--book", str(book), "--start", "2026-12-01", "--days", "8", "--prices", str(prices), "--json"
    )
    assert code == 0
    totals = json.loads(out)["totals"]
    cn = totals["by_country"]["CN"]
    assert Decimal(totals["cost_usd"]) == Decimal("0.01") * cn["segments"]
    assert totals["by_country"]["US"]["cost_usd"] is None
    assert totals["unpriced_countries"] == ["US"]


def bad_policy(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(
        DEFAULT_POLICY_PATH.read_text(encoding="utf-8").replace("version: 1", "version: 0"), encoding="utf-8"
    )
    return path


def threatening_policy(tmp_path: Path) -> Path:
    path = tmp_path / "threat.yaml"
    text = DEFAULT_POLICY_PATH.read_text(encoding="utf-8")
    path.write_text(
        text.replace("Reply STOP to opt out", "or we will sue you. Reply STOP to opt out", 1), encoding="utf-8"
    )
    return path


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda tmp: ["--book", str(tmp / "missing.jsonl")], "missing.jsonl: cannot read the book"),
        (lambda tmp: ["--book", "{book}", "--policy", str(tmp / "none.yaml")], "none.yaml: cannot read"),
        (lambda tmp: ["--book", "{book}", "--policy", str(bad_policy(tmp))], "bad.yaml: version"),
        (lambda tmp: ["--book", "{book}", "--compare", str(bad_policy(tmp))], "bad.yaml: version"),
        (
            lambda tmp: ["--book", "{book}", "--policy", str(threatening_policy(tmp))],
            "refused by `dunning policy check`",
        ),
        (
            lambda tmp: ["--book", "{book}", "--prices", str(tmp / "none.json")],
            "none.json: cannot read the price table",
        ),
        (lambda tmp: ["--book", "{broken}"], "broken.jsonl line 2: not JSON"),
    ],
)
def test_bad_input_is_exit_2_naming_the_file_with_nothing_on_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make_args: Any, message: str
) -> None:
    book = write_book(tmp_path / "book.jsonl", HAND_CHECKED)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"loan_id": "A"}\nnot json\n', encoding="utf-8")
    args = [a.format(book=book, broken=broken) for a in make_args(tmp_path)]
    code, out, err = main(capsys, *args, "--start", "2026-12-01", "--days", "3")
    assert code == 2
    assert out == ""
    assert message in err


@pytest.mark.parametrize(
    ("start", "days", "message"),
    [
        ("2026-02-30", "3", "argument --start: expected a date as YYYY-MM-DD, got '2026-02-30'"),
        ("2026/12/01", "3", "argument --start: expected a date as YYYY-MM-DD"),
        ("2026-12-01", "0", "argument --days: must be from 1 to 366 days, got 0"),
        ("2026-12-01", "-2", "argument --days: must be from 1 to 366 days, got -2"),
        ("2026-12-01", "ten", "argument --days: expected a whole number of days, got 'ten'"),
    ],
)
def test_bad_dates_and_days_are_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], start: str, days: str, message: str
) -> None:
    book = write_book(tmp_path / "book.jsonl", HAND_CHECKED)
    code, out, err = main(capsys, "--book", str(book), "--start", start, "--days", days)
    assert (code, out) == (2, "")
    assert message in err
