"""What `dunning simulate` prints: a per-day table, totals and estimated cost; two policies side by side; JSON."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from dunning_tools.simulate.engine import DayResult, SimulationResult
from dunning_tools.simulate.prices import PriceTable

CENT = Decimal("0.01")
OUT_OF_SCOPE = (
    "Not simulated: borrowers replying, paying, promising, disputing or opting out; repayment plans;"
    " escalation and the bureau; delivery failures and carrier filtering."
)


@dataclass(frozen=True)
class Run:
    """One simulated policy and how to name it."""

    label: str  # the policy file, its version and content hash
    result: SimulationResult


def _usd(amount: Decimal) -> str:
    return f"{amount.quantize(CENT, rounding=ROUND_HALF_UP):,}"


def _count(n: int) -> str:
    return f"{n:,}"


def _signed(n: int | Decimal, money: bool = False) -> str:
    if money:
        shown = _usd(Decimal(n))
        return shown if n < 0 else f"+{shown}"
    return f"{n:+,}"


def _reasons(counts: Counter[str]) -> str:
    return ", ".join(f"{reason} {n:,}" for reason, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


# ---------------------------------------------------------------------------- figures
def cost_by_country(result: SimulationResult, prices: PriceTable) -> dict[str, dict[str, Any]]:
    """SMS, segments, price and estimated cost per destination country; price and cost None when unpriced."""
    sms = result.counter("sms_by_country")
    segments = result.counter("segments_by_country")
    rows: dict[str, dict[str, Any]] = {}
    for country in sorted(sms):
        price = prices.price(country)
        rows[country] = {
            "sms": sms[country],
            "segments": segments[country],
            "usd_per_segment": price,
            "cost_usd": None if price is None else price * segments[country],
        }
    return rows


def total_cost(result: SimulationResult, prices: PriceTable) -> Decimal:
    return sum(
        (row["cost_usd"] for row in cost_by_country(result, prices).values() if row["cost_usd"] is not None), Decimal(0)
    )


def _unpriced(result: SimulationResult, prices: PriceTable) -> list[str]:
    return [country for country, row in cost_by_country(result, prices).items() if row["usd_per_segment"] is None]


# ---------------------------------------------------------------------------- JSON
def _day_json(day: DayResult, kinds: tuple[str, ...]) -> dict[str, Any]:
    return {
        "date": day.date.isoformat(),
        "sms": {kind: day.sms[kind] for kind in kinds},
        "suppressed": dict(sorted(day.suppressed.items())),
        "segments": day.segments,
        "loans_reminded": day.loans_reminded,
        "no_window": day.no_window,
    }


def _totals_json(result: SimulationResult, prices: PriceTable) -> dict[str, Any]:
    costs = cost_by_country(result, prices)
    return {
        "sms": result.total("sms_total"),
        "segments": result.total("segments"),
        "loans_reminded": result.total("loans_reminded"),
        "consolidated_sms": result.total("consolidated"),
        "no_window": result.total("no_window"),
        "sms_by_stage": {kind: result.counter("sms")[kind] for kind in result.stage_kinds},
        "suppressed": dict(sorted(result.counter("suppressed").items())),
        "cost_usd": str(total_cost(result, prices)),
        "by_country": {
            country: {
                "sms": row["sms"],
                "segments": row["segments"],
                "usd_per_segment": None if row["usd_per_segment"] is None else str(row["usd_per_segment"]),
                "cost_usd": None if row["cost_usd"] is None else str(row["cost_usd"]),
            }
            for country, row in costs.items()
        },
        "unpriced_countries": _unpriced(result, prices),
        "items": result.items,
        "invalid_items": result.invalid_items,
        "not_open": result.not_open,
    }


def _run_json(run: Run, prices: PriceTable) -> dict[str, Any]:
    return {
        "policy": run.label,
        "days": [_day_json(day, run.result.stage_kinds) for day in run.result.days],
        "totals": _totals_json(run.result, prices),
    }


def _difference(a: dict[str, Any], b: dict[str, Any], keys: list[str]) -> dict[str, int]:
    return {key: int(b.get(key, 0)) - int(a.get(key, 0)) for key in keys}


def as_json(book: str, start: str, runs: list[Run], prices: PriceTable) -> dict[str, Any]:
    """`{"days": [...], "totals": {...}}` for one policy; with a second, `compare` and `difference` beside them."""
    base = runs[0]
    document: dict[str, Any] = {
        "book": book,
        "start": start,
        **_run_json(base, prices),
        "prices": {"as_of": prices.as_of.isoformat(), "source": prices.source, "note": prices.note},
        "simulated": "planner hourly and the sender's checks: ladder, windows, caps, fees, templates, segments",
        "not_simulated": OUT_OF_SCOPE.removeprefix("Not simulated: "),
    }
    if len(runs) == 1:
        return document
    other = _run_json(runs[1], prices)
    document["compare"] = other
    kinds = list(dict.fromkeys([*base.result.stage_kinds, *runs[1].result.stage_kinds]))
    days = []
    for day_a, day_b in zip(document["days"], other["days"], strict=True):
        reasons = sorted(set(day_a["suppressed"]) | set(day_b["suppressed"]))
        days.append(
            {
                "date": day_a["date"],
                "sms": _difference(day_a["sms"], day_b["sms"], kinds),
                "suppressed": _difference(day_a["suppressed"], day_b["suppressed"], reasons),
                "segments": day_b["segments"] - day_a["segments"],
            }
        )
    totals_a, totals_b = document["totals"], other["totals"]
    reasons = sorted(set(totals_a["suppressed"]) | set(totals_b["suppressed"]))
    document["difference"] = {
        "days": days,
        "totals": {
            "sms": totals_b["sms"] - totals_a["sms"],
            "segments": totals_b["segments"] - totals_a["segments"],
            "loans_reminded": totals_b["loans_reminded"] - totals_a["loans_reminded"],
            "no_window": totals_b["no_window"] - totals_a["no_window"],
            "sms_by_stage": _difference(totals_a["sms_by_stage"], totals_b["sms_by_stage"], kinds),
            "suppressed": _difference(totals_a["suppressed"], totals_b["suppressed"], reasons),
            "cost_usd": str(Decimal(totals_b["cost_usd"]) - Decimal(totals_a["cost_usd"])),
        },
    }
    return document


# ---------------------------------------------------------------------------- text
def _table(header: list[str], rows: list[list[str]], left: frozenset[int] = frozenset({0})) -> list[str]:
    """Columns padded to their widest cell: those in `left` left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = (
            cell.ljust(width) if i in left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )
        return "  ".join(padded).rstrip()

    return [line(header), *(line(row) for row in rows)]


def _preamble(book: str, start: str, runs: list[Run], prices: PriceTable) -> list[str]:
    result = runs[0].result
    last = result.days[-1].date.isoformat()
    lines = [
        "dunning simulate: an estimate of what the schedule would send, not a forecast",
        f"  book:    {book}: {_count(result.items)} items ({_count(result.invalid_items)} invalid,"
        f" {_count(result.not_open)} not OPEN)",
    ]
    names = ["policy:", "compare:"]
    lines += [f"  {names[i]:<8} {run.label}" for i, run in enumerate(runs)]
    lines += [
        f"  days:    {start} to {last} ({len(result.days)} business days),"
        " the planner hourly, then the sender's checks",
        f"  {OUT_OF_SCOPE}",
        f"  Prices: {prices.source}, as of {prices.as_of}: estimates, check them before relying on them.",
        "",
    ]
    return lines


def _cost_lines(result: SimulationResult, prices: PriceTable) -> list[str]:
    rows = []
    for country, row in cost_by_country(result, prices).items():
        price, cost = row["usd_per_segment"], row["cost_usd"]
        rows.append(
            [
                country,
                _count(row["sms"]),
                _count(row["segments"]),
                "no price" if price is None else str(price),
                "-" if cost is None else _usd(cost),
            ]
        )
    rows.append(
        [
            "total",
            _count(result.total("sms_total")),
            _count(result.total("segments")),
            "",
            _usd(total_cost(result, prices)),
        ]
    )
    lines = ["Estimated SMS cost by destination country (USD)"]
    lines += _table(["country", "sms", "segments", "USD/segment", "est. USD"], rows)
    unpriced = _unpriced(result, prices)
    if unpriced:
        lines.append(f"  no price for {', '.join(unpriced)}: not in the total (add them with --prices FILE)")
    return lines


def as_text(book: str, start: str, runs: list[Run], prices: PriceTable) -> str:
    lines = _preamble(book, start, runs, prices)
    lines += (
        _single(runs[0].result, prices) if len(runs) == 1 else _side_by_side(runs[0].result, runs[1].result, prices)
    )
    return "\n".join(lines) + "\n"


def _single(result: SimulationResult, prices: PriceTable) -> list[str]:
    kinds = list(result.stage_kinds)
    rows = []
    for day in result.days:
        rows.append(
            [
                day.date.isoformat(),
                *(_count(day.sms[kind]) for kind in kinds),
                _count(day.sms_total),
                _count(day.segments),
                _count(day.no_window),
                _reasons(day.suppressed),
            ]
        )
    totals = result.counter("sms")
    rows.append(
        [
            "total",
            *(_count(totals[kind]) for kind in kinds),
            _count(result.total("sms_total")),
            _count(result.total("segments")),
            _count(result.total("no_window")),
            _count(sum(result.counter("suppressed").values())),
        ]
    )
    lines = ["SMS per day by stage (the stage of the loan each SMS leads with), and suppressions by reason"]
    header = ["date", *kinds, "sms", "segments", "no_window", "suppressed"]
    lines += _table(header, rows, left=frozenset({0, len(header) - 1}))
    lines += [
        "",
        f"Loans reminded: {_count(result.total('loans_reminded'))} in {_count(result.total('sms_total'))} SMS"
        f" ({_count(result.total('consolidated'))} covering several loans of one borrower)",
        f"Suppressed by reason: {_reasons(result.counter('suppressed')) or 'none'}",
        "no_window: loans with a stage due whose send window (shared by all their number's zones) never opened"
        " on a planner hour that day: no SMS that day",
        "",
    ]
    return lines + _cost_lines(result, prices)


def _side_by_side(a: SimulationResult, b: SimulationResult, prices: PriceTable) -> list[str]:
    rows = []
    for day_a, day_b in zip(a.days, b.days, strict=True):
        supp_a, supp_b = sum(day_a.suppressed.values()), sum(day_b.suppressed.values())
        rows.append(
            [
                day_a.date.isoformat(),
                _count(day_a.sms_total),
                _count(day_b.sms_total),
                _signed(day_b.sms_total - day_a.sms_total),
                _count(day_a.segments),
                _count(day_b.segments),
                _signed(day_b.segments - day_a.segments),
                _count(supp_a),
                _count(supp_b),
                _signed(supp_b - supp_a),
            ]
        )
    sms_a, sms_b = a.total("sms_total"), b.total("sms_total")
    seg_a, seg_b = a.total("segments"), b.total("segments")
    supp_a, supp_b = sum(a.counter("suppressed").values()), sum(b.counter("suppressed").values())
    rows.append(
        [
            "total",
            *(_count(n) for n in (sms_a, sms_b)),
            _signed(sms_b - sms_a),
            *(_count(n) for n in (seg_a, seg_b)),
            _signed(seg_b - seg_a),
            *(_count(n) for n in (supp_a, supp_b)),
            _signed(supp_b - supp_a),
        ]
    )
    header = ["date", "sms A", "sms B", "diff", "seg A", "seg B", "diff", "supp A", "supp B", "diff"]
    lines = ["Policy A (--policy) and policy B (--compare), per day: SMS, segments, suppressions"]
    lines += _table(header, rows)

    def compare(title: str, counts_a: Counter[str], counts_b: Counter[str], keys: list[str]) -> list[str]:
        body = [
            [key, _count(counts_a[key]), _count(counts_b[key]), _signed(counts_b[key] - counts_a[key])] for key in keys
        ]
        return ["", *_table([title, "A", "B", "diff"], body)]

    kinds = list(dict.fromkeys([*a.stage_kinds, *b.stage_kinds]))
    lines += compare("SMS by stage", a.counter("sms"), b.counter("sms"), kinds)
    reasons_a, reasons_b = a.counter("suppressed"), b.counter("suppressed")
    lines += compare("suppressed by reason", reasons_a, reasons_b, sorted(set(reasons_a) | set(reasons_b)))
    windowless = Counter({"no_window": a.total("no_window")}), Counter({"no_window": b.total("no_window")})
    lines += compare("waiting", *windowless, ["no_window"])

    costs_a, costs_b = cost_by_country(a, prices), cost_by_country(b, prices)
    body = []
    for country in sorted(set(costs_a) | set(costs_b)):
        cost_a = (costs_a.get(country) or {}).get("cost_usd")
        cost_b = (costs_b.get(country) or {}).get("cost_usd")
        if cost_a is None and cost_b is None:
            body.append([country, "no price", "no price", ""])
            continue
        cost_a, cost_b = cost_a or Decimal(0), cost_b or Decimal(0)
        body.append([country, _usd(cost_a), _usd(cost_b), _signed(cost_b - cost_a, money=True)])
    total_a, total_b = total_cost(a, prices), total_cost(b, prices)
    body.append(["total", _usd(total_a), _usd(total_b), _signed(total_b - total_a, money=True)])
    lines += ["", *_table(["est. USD by country", "A", "B", "diff"], body)]
    unpriced = sorted(set(_unpriced(a, prices)) | set(_unpriced(b, prices)))
    if unpriced:
        lines.append(f"  no price for {', '.join(unpriced)}: not in the totals (add them with --prices FILE)")
    return lines
