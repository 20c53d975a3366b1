"""`make bench` at scale (issue 11, deliverables 6 and 7): what planning a large book costs, and cold init.

Synthetic books of 20k, 100k and 400k open loans in the ladder index, due dates skewed (60 % of the
loans on four days of the month, 5 % overdue), borrowers with one or two loans and ids shaped like a
lender's (`BR` + 9 digits). Prints:

- planning CPU per window loan: the real `Planner` (decide per index item, claim and mark, build and
  serialise jobs) over in-memory stores behind its Protocols (tests/fakes.py), so no moto and no SDK
  time is in the figure; a sample of shards per book keeps the run short. The SDK's own CPU per page
  (botocore parsing a Query answer, `from_item`) is measured apart, for the projection;
- peak memory (tracemalloc) of one shard run for growing shard sizes: flat, since the planner streams
  pages and flushes jobs;
- shard skew max/mean over PlanningShards (template.yaml's default) with `sharding.bucket_of`;
- a projected wall time for a 10M-loan book (500k in the ladder) at the template's PlanningShards and
  PlanningConcurrency, from the measured per-page CPU and calls and AWS's documented limits;
- cold init of every function (import + module init, then the service its handler builds on the
  first event and the same three clients as the baseline, as the function makes them; CPU seconds
  in a fresh process, best of 5) against a fresh process that imports boto3 and builds three bare
  clients; in Lambda's environment (LAMBDA_TASK_ROOT: Powertools' Tracer and the
  X-Ray SDK behave as they do there), once with template.yaml's `Tracing` Active (the default: the
  Tracer is built and patches botocore) and once with PassThrough (POWERTOOLS_TRACE_DISABLED=true).
  The project's modules are compiled to bytecode first, as pip compiled the dependencies.

CPU figures are process CPU time, not wall time: on a shared machine the wall clock measures the
neighbours. They still vary by ±10-20 % with the machine's load (caches, SMT): the report prints the
load average next to the machine.

Items read per overdue loan and AWS calls per SMS are `benchmarks/send_path.py`'s (the next line of
`make bench`; the README shows its table): not measured twice.

    PYTHONPATH=.:shared .venv/bin/python benchmarks/scale.py
"""

from __future__ import annotations

import compileall
import datetime as dt
import gc
import json
import math
import os
import platform
import random
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "shared")]

from dunning import ladder, sharding  # noqa: E402
from dunning.models.policy import Policy, load_policy_file  # noqa: E402
from dunning.observability import metrics  # noqa: E402
from dunning.planner import PAGE_SIZE, Planner  # noqa: E402
from tests.fakes import FakeStores  # noqa: E402

# 12:00 in Shanghai: the Chinese borrowers are inside the send window, the US ones (23:00) are not.
PLAN_AT = dt.datetime(2026, 11, 20, 4, 0, tzinfo=dt.UTC)
SIZES = (20_000, 100_000, 400_000)
OVERDUE_SHARE = 0.05
POPULAR_DAYS = (1, 8, 15, 22)  # days of the month most instalments fall on
POPULAR_SHARE = 0.60
TWO_LOANS_SHARE = 0.15
PLANNED_PER_BOOK = 8_000  # window loans planned per book (a sample of its shards): keeps the run short
MEMORY_SHARD_WINDOW = (2_000, 6_000, 18_000)  # window loans in the one shard whose run is traced
SEED = 11
RETENTION_DAYS = 400


# ---------------------------------------------------------------- the template's defaults
def template_defaults() -> dict[str, Any]:
    """PlanningShards, PlanningConcurrency and the planner's timeout and memory, as template.yaml sets them."""
    from samtranslator.yaml_helper import yaml_parse

    template = yaml_parse((ROOT / "template.yaml").read_text(encoding="utf-8"))
    function = template["Resources"]["PlanRemindersFunction"]["Properties"]
    globals_ = template.get("Globals", {}).get("Function", {})
    return {
        "shards": int(template["Parameters"]["PlanningShards"]["Default"]),
        "concurrency": int(template["Parameters"]["PlanningConcurrency"]["Default"]),
        "timeout": int(function.get("Timeout", globals_.get("Timeout", 3))),
        "memory_mb": int(function.get("MemorySize", globals_.get("MemorySize", 128))),
    }


# ---------------------------------------------------------------- synthetic books
@dataclass(frozen=True)
class Loan:
    loan_id: str
    borrower_id: str
    due_date: str


def _due_dates(today: dt.date) -> tuple[list[str], list[str], list[str], list[str]]:
    """Popular and other due dates, past (overdue: up to 90 days) and coming (the next month)."""
    past = [today - dt.timedelta(days=d) for d in range(1, 91)]
    coming = [today + dt.timedelta(days=d) for d in range(32)]
    return (
        [d.isoformat() for d in past if d.day in POPULAR_DAYS],
        [d.isoformat() for d in past],
        [d.isoformat() for d in coming if d.day in POPULAR_DAYS],
        [d.isoformat() for d in coming],
    )


def book(size: int, today: dt.date, seed: int = SEED) -> Iterator[Loan]:
    """`size` open loans: 5 % overdue, 60 % of all due on a popular day; 15 % of borrowers hold two loans."""
    rng = random.Random(seed)  # benchmark data, not security
    popular_past, any_past, popular_coming, any_coming = _due_dates(today)
    borrower, made = 0, 0
    while made < size:
        borrower += 1
        for _ in range(min(2 if rng.random() < TWO_LOANS_SHARE else 1, size - made)):
            made += 1
            overdue = rng.random() < OVERDUE_SHARE
            popular = rng.random() < POPULAR_SHARE
            days = (popular_past if popular else any_past) if overdue else (popular_coming if popular else any_coming)
            yield Loan(f"LN{made:010d}", f"BR{borrower:09d}", rng.choice(days))


# What LoanChangesFunction copies and derives for typical numbers (loan_changes.index_values and
# contact_values): a number pattern (filled with the borrower's digits) and a name per profile.
_CN = {"currency": "CNY", "locale": "zh-CN", "phone_region": "CN", "phone_zones": ["Asia/Shanghai"]}
_PROFILES = (
    (0.80, ("+86139", 8), "王小明", _CN),
    (0.12, ("+86138", 8), "李娜", {**_CN, "timezone": "Asia/Urumqi"}),
    (0.05, ("+1212555", 4), "Jane Roe", {"currency": "USD", "locale": "en-US", "phone_region": "US",
                                         "phone_zones": ["America/New_York"]}),
    (0.03, ("+659", 7), "Tan Wei", {"currency": "CNY", "locale": "zh-CN", "phone_region": "SG",
                                    "phone_zones": ["Asia/Singapore"]}),
)  # fmt: skip


def index_item(loan: Loan, bucket: int, rng: random.Random) -> dict[str, Any]:
    """The loan's CONTROL item as the ladder index holds it (values as `dal.aws.from_item` gives them)."""
    pick, (_, number, name, profile) = rng.random(), _PROFILES[-1]
    for share, candidate_number, candidate_name, candidate in _PROFILES:
        if pick < share:
            number, name, profile = candidate_number, candidate_name, candidate
            break
        pick -= share
    prefix, width = number
    item: dict[str, Any] = {
        "pk": f"LOAN#{loan.loan_id}",
        "sk": "CONTROL",
        "loan_id": loan.loan_id,
        "borrower_id": loan.borrower_id,
        "status": "OPEN",
        "due_date": loan.due_date,
        "amount_due": Decimal(rng.randrange(50_000, 5_000_000)) / 100,
        **{k: list(v) if isinstance(v, list) else v for k, v in profile.items()},
        "phone": f"{prefix}{int(loan.borrower_id[2:]) % 10**width:0{width}d}",
        "borrower_name": name,
        "contact_of": loan.borrower_id,
        "ladder_bucket": sharding.bucket_key(bucket),
        "ladder_part": sharding.partition_key(bucket),
        "ladder_due": f"{loan.due_date}#{loan.loan_id}",
        "upstream_seq": f"{rng.randrange(10**20):040d}",
    }
    if rng.random() < 0.2:
        item["late_fees"] = (item["amount_due"] * Decimal("0.01")).quantize(Decimal("0.01"))
    return item


def window(policy: Policy, now: dt.datetime = PLAN_AT) -> tuple[str, str]:
    """The due dates the planner reads (inclusive)."""
    earliest, latest = ladder.due_date_window(ladder.business_date(now, policy), policy)
    return earliest.isoformat(), latest.isoformat()


# ---------------------------------------------------------------- shard skew
@dataclass
class BookShape:
    size: int
    shards: int
    open_per_shard: Counter[int] = field(default_factory=Counter)
    window_per_shard: Counter[int] = field(default_factory=Counter)

    @property
    def window_loans(self) -> int:
        return sum(self.window_per_shard.values())

    @staticmethod
    def _skew(counts: Counter[int], shards: int) -> float:
        mean = sum(counts.values()) / shards
        return max(counts[s] for s in range(shards)) / mean if mean else 0.0

    @property
    def skew_open(self) -> float:
        return self._skew(self.open_per_shard, self.shards)

    @property
    def skew_window(self) -> float:
        return self._skew(self.window_per_shard, self.shards)


def shape(size: int, shards: int, policy: Policy) -> BookShape:
    """Loans per shard (all open loans, and those in the ladder window) with the real bucket function."""
    first, last = window(policy)
    result = BookShape(size, shards)
    buckets: dict[str, int] = {}
    for loan in book(size, ladder.business_date(PLAN_AT, policy)):
        bucket = buckets.get(loan.borrower_id)
        if bucket is None:
            bucket = buckets[loan.borrower_id] = sharding.bucket_of(loan.borrower_id)
        shard = sharding.shard_of_bucket(bucket, shards)
        result.open_per_shard[shard] += 1
        if first <= loan.due_date <= last:
            result.window_per_shard[shard] += 1
    return result


# ---------------------------------------------------------------- planning CPU and calls
@dataclass
class PlanFigures:
    shards_run: int
    loans_read: int = 0
    pages: int = 0
    lines: int = 0
    jobs: int = 0
    cpu_s: float = 0.0
    calls: Counter[str] = field(default_factory=Counter)

    @property
    def us_per_loan(self) -> float:
        return self.cpu_s / self.loans_read * 1e6 if self.loans_read else 0.0

    def per_page(self, call: str) -> float:
        return self.calls[call] / self.pages if self.pages else 0.0


def stores_for(size: int, shards: int, chosen: set[int], policy: Policy, *, keep: bool = True) -> FakeStores:
    """The index items of the chosen shards of a book, in fresh in-memory stores."""
    rng = random.Random(SEED + size)
    stores = FakeStores.empty(keep=keep)
    buckets: dict[str, int] = {}
    items = []
    for loan in book(size, ladder.business_date(PLAN_AT, policy)):
        bucket = buckets.get(loan.borrower_id)
        if bucket is None:
            bucket = buckets[loan.borrower_id] = sharding.bucket_of(loan.borrower_id)
        if sharding.shard_of_bucket(bucket, shards) in chosen:
            items.append(index_item(loan, bucket, rng))
    stores.load(items)
    return stores


def planner_for(stores: FakeStores, policy: Policy) -> Planner:
    return Planner(stores.index, stores.state, stores.deliveries, stores.queue, policy, RETENTION_DAYS)


def plan(stores: FakeStores, chosen: list[int], shards: int, policy: Policy, now: dt.datetime = PLAN_AT) -> PlanFigures:
    """Run the real planner over the chosen shards; CPU time of the runs alone (the stores are in memory)."""
    planner = planner_for(stores, policy)
    figures = PlanFigures(shards_run=len(chosen))
    calls_before, stores_before = Counter(stores.meter.calls), stores.meter.cpu_s
    gc.collect()
    started = time.process_time()
    for shard in chosen:
        report = planner.run(now, shard=shard, shards=shards)
        metrics.clear_metrics()  # a Lambda flushes them per invocation; here they would pile up and print
        figures.loans_read += report.loans_read
        figures.pages += report.pages_read
        figures.lines += report.lines_enqueued
        figures.jobs += report.jobs_enqueued
    # The planner's own CPU: the time inside the in-memory stores stands for DynamoDB and SQS, not for it.
    figures.cpu_s = time.process_time() - started - (stores.meter.cpu_s - stores_before)
    figures.calls = stores.meter.calls - calls_before
    return figures


def sample_of_shards(shape_: BookShape, target: int = PLANNED_PER_BOOK) -> list[int]:
    """The first shards of the book holding about `target` window loans (every shard for a small book)."""
    per_shard = shape_.window_loans / shape_.shards
    return list(range(max(1, min(shape_.shards, math.ceil(target / per_shard) if per_shard else shape_.shards))))


def best_plan(stores: FakeStores, chosen: list[int], shards: int, policy: Policy, repeats: int) -> PlanFigures:
    """The fastest of `repeats` identical runs (stores that keep nothing: every run is the day's first)."""
    return min((plan(stores, chosen, shards, policy) for _ in range(repeats)), key=lambda f: f.cpu_s)


# ---------------------------------------------------------------- peak memory of one shard run
def shard_book(window_loans: int, shard: int, shards: int, policy: Policy, seed: int = SEED) -> list[dict[str, Any]]:
    """Index items of `window_loans` loans of one shard, all due in the ladder window (the only ones a run reads)."""
    rng = random.Random(seed)
    today = ladder.business_date(PLAN_AT, policy)
    first, last = window(policy)
    days = [d for d in _due_dates(today)[1] + _due_dates(today)[3] if first <= d <= last]
    popular = [d for d in days if dt.date.fromisoformat(d).day in POPULAR_DAYS]
    items: list[dict[str, Any]] = []
    borrower = 0
    while len(items) < window_loans:
        borrower += 1
        borrower_id = f"BR{borrower:09d}"
        bucket = sharding.bucket_of(borrower_id)
        if sharding.shard_of_bucket(bucket, shards) != shard:
            continue
        for _ in range(min(2 if rng.random() < TWO_LOANS_SHARE else 1, window_loans - len(items))):
            due = rng.choice(popular if rng.random() < POPULAR_SHARE else days)
            items.append(index_item(Loan(f"LN{len(items) + 1:010d}", borrower_id, due), bucket, rng))
    return items


@dataclass(frozen=True)
class MemoryFigure:
    window_loans: int
    lines: int
    peak_bytes: int


def shard_peak(
    window_loans: int, shards: int, policy: Policy, items: list[dict[str, Any]] | None = None
) -> MemoryFigure:
    """tracemalloc's peak over one shard run (the stores, as DynamoDB and SQS, hold nothing the run adds)."""
    stores = FakeStores.empty(keep=False)
    stores.load(items if items is not None else shard_book(window_loans, 0, shards, policy))
    planner = planner_for(stores, policy)
    gc.collect()
    tracemalloc.start()
    try:
        report = planner.run(PLAN_AT, shard=0, shards=shards)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        metrics.clear_metrics()
    return MemoryFigure(report.loans_read, report.lines_enqueued, peak)


# ---------------------------------------------------------------- the SDK's own CPU per call
@dataclass(frozen=True)
class SdkCosts:
    """CPU of one call through the real repository and botocore (build, validate, serialise, sign, parse)."""

    query_s: float  # LadderRepository.page: a Query answering PAGE_SIZE items
    claims_s: float  # StateRepository.take_claims: one TransactWriteItems of 50 claims and marks
    enqueue_s: float  # JobQueue.send: one SendMessageBatch of 10 jobs
    item_bytes: int  # an index item's size on the wire (JSON: a bound on DynamoDB's item size)


CLOSED_PORT = "http://127.0.0.1:9"  # the discard port: a request that escaped the canned answers fails here
STAGE = "follow_up_3"


class _Answer:
    """A canned HTTP body, streamed as urllib3 would."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


def sdk_costs(items: list[dict[str, Any]], policy: Policy, calls: int = 40) -> SdkCosts:
    """The real DAL over the real boto3 clients, every HTTP answer canned by a botocore `before-send`
    handler (nothing leaves the machine; the endpoint is a closed local port besides)."""
    import hashlib

    from botocore.awsrequest import AWSResponse

    from dunning.dal import aws
    from dunning.dal.ladder import LadderRepository
    from dunning.dal.queue import JobQueue
    from dunning.dal.state import CLAIMS_PER_TRANSACTION, ClaimWrite, StateRepository
    from dunning.models.jobs import JobLine, SendJob
    from dunning.models.state import ClaimState

    page = items[:PAGE_SIZE]
    wire = [aws.to_item(item) for item in page]
    query_body = json.dumps({"Items": wire, "Count": len(wire), "ScannedCount": len(wire)}).encode()

    def answer_query(**_: Any) -> AWSResponse:
        return AWSResponse(CLOSED_PORT, 200, {}, _Answer(query_body))

    def answer_transaction(**_: Any) -> AWSResponse:
        return AWSResponse(CLOSED_PORT, 200, {}, _Answer(b"{}"))

    def answer_batch(request: Any, **_: Any) -> AWSResponse:
        entries = json.loads(request.body)["Entries"]
        body = {
            "Successful": [
                {
                    "Id": entry["Id"],
                    "MessageId": f"m-{entry['Id']}",
                    "MD5OfMessageBody": hashlib.md5(entry["MessageBody"].encode()).hexdigest(),  # noqa: S324 (SQS's)
                }
                for entry in entries
            ]
        }
        return AWSResponse(CLOSED_PORT, 200, {}, _Answer(json.dumps(body).encode()))

    saved = {name: os.environ.get(name) for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL")}
    # Not credentials: botocore signs with something, and every answer is canned before any send.
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_ENDPOINT_URL=CLOSED_PORT)  # noqa: S106
    aws.reset_clients()
    try:
        dynamodb, sqs = aws.client("dynamodb").meta.events, aws.client("sqs").meta.events
        dynamodb.register("before-send.dynamodb.Query", answer_query)
        dynamodb.register("before-send.dynamodb.TransactWriteItems", answer_transaction)
        sqs.register("before-send.sqs.SendMessageBatch", answer_batch)
        index, state, queue = (
            LadderRepository("StateTable"),
            StateRepository("StateTable"),
            JobQueue(f"{CLOSED_PORT}/q"),
        )
        first, last = window(policy)
        writes = [
            ClaimWrite((str(i["loan_id"]), str(i["due_date"]), STAGE), str(i["borrower_id"]), ClaimState.PLANNED)
            for i in page[:CLAIMS_PER_TRANSACTION]
        ]
        jobs = [
            SendJob(
                borrower_id=str(i["borrower_id"]),
                lines=(JobLine(loan_id=str(i["loan_id"]), cycle=str(i["due_date"]), stage=STAGE),),
                planned_at=PLAN_AT,
            )
            for i in page[:10]
        ]

        def per_call(call: Any) -> float:
            call()  # the first call builds what botocore caches (the operation's shapes, the signer)
            started = time.process_time()
            for _ in range(calls):
                call()
            return (time.process_time() - started) / calls

        return SdkCosts(
            query_s=per_call(lambda: index.page("00", first, f"{last}#\uffff", None, PAGE_SIZE)),
            claims_s=per_call(lambda: state.take_claims(writes, PLAN_AT)),
            enqueue_s=per_call(lambda: queue.send(jobs)),
            item_bytes=len(json.dumps(wire)) // max(len(wire), 1),
        )
    finally:
        aws.reset_clients()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# ---------------------------------------------------------------- projected wall time of a 10M-loan book
# AWS's documented limits the projection rests on:
# - a Query page holds at most 1 MB; PAGE_SIZE items are far below it
#   (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Query.Pagination.html);
# - one partition serves at most 3,000 read units and 1,000 write units a second: the ladder index keeps a
#   shard's loans under one key, so a shard's marks (one index write each) are bound by 1,000 WCU/s
#   (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/warm-throughput-scenarios.html);
# - an eventually consistent read (every GSI Query) costs half a unit per 4 KB, a standard write one unit
#   per 1 KB, a transactional write two
#   (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html);
# - TransactWriteItems takes at most 100 actions, 4 MB (dal.state: 50 claims and their 50 marks)
#   (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html);
# - an on-demand table serves 40,000 read and write units a second by default (account quota)
#   (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/on-demand-capacity-mode-max-throughput.html);
# - SendMessageBatch takes at most 10 messages
#   (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html);
# - an inline Map runs at most 40 iterations at once
#   (https://docs.aws.amazon.com/step-functions/latest/dg/state-map-inline.html);
# - Lambda runs 1,000 concurrent executions per Region by default
#   (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html), and a function has one vCPU's
#   worth of CPU at 1,769 MB, proportionally less below (https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html).
PAGE_LIMIT_BYTES = 1_000_000
PARTITION_RCU, PARTITION_WCU = 3_000, 1_000
TABLE_UNITS = 40_000
# A stage taken: its claim Put and the CONTROL mark, transactional (2 units per KB each, both under 1 KB),
# and the index's copy of the mark (1 unit).
WCU_PER_STAGE = 2 + 2 + 1
MAX_TRANSACT_ACTIONS = 100
SQS_BATCH_MAX = 10
INLINE_MAP_MAX = 40
LAMBDA_CONCURRENCY = 1_000
FULL_VCPU_MB = 1_769
# Round trips inside a Region: assumptions (AWS documents no latency bound), deliberately pessimistic.
LATENCY_S = {
    "Query": 0.020,
    "TransactWriteItems": 0.050,
    "SendMessageBatch": 0.020,
    "BatchGetItem": 0.010,
    "PutItem": 0.010,
}


@dataclass(frozen=True)
class Projection:
    ladder_loans: int
    shards: int
    concurrency: int
    loans_per_shard: int  # the largest shard (mean x skew)
    pages: int
    cpu_s: float  # one shard's CPU on Lambda (planner + SDK, scaled to the function's share of a vCPU)
    io_s: float  # one shard's sequential round trips
    bound_s: float  # one shard's floor from write and read units (its index key, the table)
    invocations: int  # per shard: a run resumes in a new invocation near its timeout
    init_s: float  # cold init per invocation, on Lambda
    shard_s: float
    waves: int
    total_s: float
    table_wcu_per_s: float  # the whole table's write units a second at that pace


def project(
    ladder_loans: int,
    *,
    shards: int,
    concurrency: int,
    skew: float,
    figures: PlanFigures,
    sdk: SdkCosts,
    memory_mb: int,
    timeout_s: int,
    init_s: float,
    planner_s_per_loan: float | None = None,
) -> Projection:
    """One shard's wall time from measured per-page CPU and calls, the waves of the Map, and AWS's limits.

    Worst case: every window loan has a stage due at this hour (the product's first run on a book; on a
    normal day a stage falls due for about a third of them), each claimed and enqueued.
    """
    per_page = figures.loans_read / figures.pages  # window loans a page holds (Limit PAGE_SIZE)
    lines_per_loan = figures.lines / figures.loans_read
    calls = {name: figures.per_page(name) for name in LATENCY_S}
    page_cpu = (
        per_page * (planner_s_per_loan if planner_s_per_loan is not None else figures.cpu_s / figures.loans_read)
        + sdk.query_s
        + calls["TransactWriteItems"] * sdk.claims_s
        + calls["SendMessageBatch"] * sdk.enqueue_s
    )
    vcpu = min(1.0, memory_mb / FULL_VCPU_MB)
    loans = math.ceil(ladder_loans / shards * skew)
    pages = math.ceil(loans / per_page)
    cpu_s = pages * page_cpu / vcpu
    io_s = pages * sum(calls[name] * LATENCY_S[name] for name in LATENCY_S)
    # Each mark is one write of the shard's index key; each page a read of ~per_page x item size.
    page_rcu = math.ceil(per_page * sdk.item_bytes / 4096) / 2
    shard_wcu = loans * lines_per_loan * WCU_PER_STAGE
    waves = math.ceil(shards / concurrency)
    bound_s = max(
        loans * lines_per_loan / PARTITION_WCU,  # the shard's index key
        pages * page_rcu / PARTITION_RCU,
        min(shards, concurrency) * shard_wcu / TABLE_UNITS,  # the table, with a wave's shards writing at once
    )
    invocations = math.ceil((cpu_s + io_s) / max(timeout_s - 20, 1))
    shard_s = max(cpu_s + io_s, bound_s) + invocations * init_s / vcpu
    table_wcu = min(shards, concurrency) * shard_wcu / shard_s
    return Projection(
        ladder_loans, shards, concurrency, loans, pages, cpu_s, io_s, bound_s, invocations, init_s / vcpu,
        shard_s, waves, waves * shard_s, table_wcu,
    )  # fmt: skip


# ---------------------------------------------------------------- cold init
# CPU seconds (time.process_time): a wall clock on a shared machine measures the neighbours.
BOTO3_BASELINE = (
    "import time\n"
    "started = time.process_time()\n"
    "import boto3\n"
    "clients = [boto3.client(name) for name in ('dynamodb', 'sqs', 'sns')]\n"
    "print(time.process_time() - started)\n"
)
# The service each handler builds on its first event (`dunning.service`): the modules it imports then are
# part of its cold start too, so the bench counts them (import alone would reward merely deferring them).
SERVICES = {
    "bureau_report": "bureau_reporter",
    "escalate": "escalator",
    "inbound_sms": "inbound_replies",
    "loan_changes": "loan_changes",
    "loan_events": "borrower_events",
    "plan_reminders": "planner",
    "record_delivery": "delivery_recorder",
    "send_reminders": "sender",
    "sync_opt_outs": "opt_out_sync",
}
# The functions' environment: template.yaml's names, with placeholder values (nothing is called), and
# LAMBDA_TASK_ROOT, which Lambda sets: without it Powertools' Tracer is off and the X-Ray SDK's recorder
# builds the sampler a process outside Lambda needs (two botocore X-Ray clients), which a function never does.
FUNCTION_ENV = {
    "LAMBDA_TASK_ROOT": str(ROOT),
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_SERVICE_NAME": "dunning",
    "POWERTOOLS_METRICS_NAMESPACE": "Dunning",
    "LOANS_TABLE": "LoansTable",
    "DELIVERIES_TABLE": "DeliveriesTable",
    "STATE_TABLE": "StateTable",
    "REMINDER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/ReminderQueue",
    "QUARANTINE_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/QuarantineQueue",
    "EVENT_BUS_NAME": "LoanEventsBus",
    "REPORTS_BUCKET": "reports-bucket",
    "PHONE_HASH_KEY": "arn:aws:kms:us-east-1:123456789012:key/placeholder",
}


# template.yaml's `Tracing` -> the POWERTOOLS_TRACE_DISABLED its functions get.
TRACE_DISABLED = {True: "false", False: "true"}  # Active, PassThrough
# Set outside Lambda only (`sam local`, chalice): they would turn the Tracer off whatever the mode.
NOT_IN_LAMBDA = ("AWS_SAM_LOCAL", "AWS_CHALICE_CLI_MODE")


@dataclass(frozen=True)
class ColdInit:
    function: str
    traced: bool  # template.yaml `Tracing: Active` (the default), else PassThrough
    import_s: float  # import + module init of functions/<name>/app.py
    first_event_s: float  # ... + the service its handler builds on the first event, and the baseline's 3 clients


def function_names() -> list[str]:
    return sorted(path.parent.name for path in (ROOT / "functions").glob("*/app.py"))


def fresh_process_seconds(code: str, runs: int, *, traced: bool = True) -> list[float]:
    """Best of `runs` fresh interpreters running `code`, which prints the seconds it measured (one or more)."""
    env = {key: value for key, value in os.environ.items() if key not in NOT_IN_LAMBDA}
    env.update(PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'shared'}", POWERTOOLS_TRACE_DISABLED=TRACE_DISABLED[traced])
    env.update(FUNCTION_ENV)
    best: list[float] = []
    for _ in range(runs):
        done = subprocess.run(  # noqa: S603 (this interpreter, our own snippet)
            [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
        )
        seconds = [float(word) for word in done.stdout.split()]
        best = [min(pair) for pair in zip(best, seconds, strict=True)] if best else seconds
    return best


def compile_project() -> None:
    """Bytecode for the handlers and the domain package, as pip wrote it for every dependency the baseline and the
    functions import: both sides are timed running bytecode, never one of them compiling its source. Without this
    the figure depends on the checkout: a fresh one under PYTHONDONTWRITEBYTECODE compiled ~30 ms more per process."""
    for folder in (ROOT / "functions", ROOT / "shared" / "dunning"):
        if not compileall.compile_dir(folder, quiet=1):
            raise SystemExit(f"cannot compile {folder}")


def cold_starts(functions: list[str], runs: int = 5) -> tuple[float, list[ColdInit]]:
    """The boto3 baseline and every function's cold start traced and untraced, best of `runs` rounds taken in
    turn (a load that comes and goes then weighs on all of them alike)."""
    compile_project()
    modes = [(f, traced) for f in functions for traced in (True, False)]
    baseline, found = math.inf, {(f, t): ColdInit(f, t, math.inf, math.inf) for f, t in modes}
    for _ in range(runs):
        baseline = min(baseline, *fresh_process_seconds(BOTO3_BASELINE, 1))
        for function, traced in modes:
            once, best = cold_init(function, 1, traced=traced), found[function, traced]
            found[function, traced] = ColdInit(
                function, traced, min(once.import_s, best.import_s), min(once.first_event_s, best.first_event_s)
            )
    return baseline, [found[mode] for mode in modes]


def cold_init(function: str, runs: int = 5, *, traced: bool = True) -> ColdInit:
    """A function's cold start in a fresh process (best of `runs`): its handler imported, then its service and the
    baseline's three clients (DynamoDB, SQS, SNS, through `dunning.dal.aws`) built.

    `traced`: template.yaml's `Tracing` Active (the Tracer built, botocore patched), else PassThrough. The
    process checks, after the clock stops, that its tracer is the one the mode gives.
    """
    factory = SERVICES.get(function)
    build = (
        f"from dunning import service\nfrom dunning.settings import get_settings\nservice.{factory}(get_settings())\n"
        if factory
        else ""
    )
    # Like for like with the baseline: the same three clients, as the function makes them on its first calls.
    build += "from dunning.dal.aws import dynamodb, sns, sqs\ndynamodb(), sqs(), sns()\n"
    code = (
        f"import time\nstarted = time.process_time()\nimport functions.{function}.app\n"
        f"imported = time.process_time()\n{build}"
        "print(imported - started, time.process_time() - started)\n"
        "from dunning.observability import tracer\n"
        f"if tracer.disabled is not {not traced}:\n    raise SystemExit(f'tracer {{tracer!r}} in the wrong mode')\n"
    )
    import_s, first_event_s = fresh_process_seconds(code, runs, traced=traced)
    return ColdInit(function, traced, import_s, first_event_s)


# ---------------------------------------------------------------- the report
def report_cold_starts(baseline: float, inits: list[ColdInit]) -> None:
    """A row per function, traced (`Tracing: Active`, the default) and untraced (PassThrough), vs the baseline."""
    print(
        "| function | Active: import + module init | + its service and 3 clients (first event) | × baseline "
        "| PassThrough: + its service and 3 clients | × baseline |\n"
        "|---|--:|--:|--:|--:|--:|"
    )
    found = {(i.function, i.traced): i for i in inits}
    for function in sorted({i.function for i in inits}):
        active, passthrough = found[function, True], found[function, False]
        print(
            f"| {function} | {active.import_s:.3f} s | {active.first_event_s:.3f} s | "
            f"{active.first_event_s / baseline:.2f} | {passthrough.first_event_s:.3f} s | "
            f"{passthrough.first_event_s / baseline:.2f} |"
        )
    print(
        f"baseline: a fresh process importing boto3 and building three bare clients (dynamodb, sqs, sns), "
        f"{baseline:.3f} s; CPU seconds, best of 5 fresh processes each, in Lambda's environment (LAMBDA_TASK_ROOT),\n"
        "the project's modules compiled to bytecode first as the dependencies are (a Lambda built by `sam build` ships "
        "bytecode for neither)"
    )
    for traced, mode in ((True, "Tracing: Active (default)"), (False, "Tracing: PassThrough")):
        worst = max((i for i in inits if i.traced is traced), key=lambda i: i.first_event_s)
        print(f"worst, {mode}: {worst.function} {worst.first_event_s / baseline:.2f}× with its service and "
              "clients built (target ≤ 1.6)")  # fmt: skip


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}, load average {load:.1f}"


def main() -> int:
    started = time.perf_counter()
    policy = load_policy_file()
    defaults = template_defaults()
    shards, concurrency = defaults["shards"], defaults["concurrency"]
    print(f"dunning scale bench on {machine()}")
    print(
        f"template.yaml: PlanningShards {shards}, PlanningConcurrency {concurrency}, planner "
        f"{defaults['memory_mb']} MB / {defaults['timeout']} s; plan at {PLAN_AT.isoformat()} (12:00 in Shanghai)"
    )
    first, last = window(policy)
    print(f"books: 5 % overdue, 60 % of loans due on days {POPULAR_DAYS} of the month; window due {first}..{last}")
    print()
    print("| open loans in the index | window loans | shards planned | planner CPU µs / window loan | "
          "Query / TransactWriteItems / SendMessageBatch per page | skew max/mean (open, window) |")  # fmt: skip
    print("|--:|--:|--:|--:|--:|--:|")
    largest: tuple[BookShape, PlanFigures] | None = None
    slowest = 0.0
    for size in SIZES:
        shape_ = shape(size, shards, policy)
        chosen = sample_of_shards(shape_)
        figures = best_plan(stores_for(size, shards, set(chosen), policy, keep=False), chosen, shards, policy, 3)
        largest, slowest = (shape_, figures), max(slowest, figures.cpu_s / figures.loans_read)
        print(
            f"| {size:,} | {shape_.window_loans:,} | {len(chosen)} of {shards} | {figures.us_per_loan:.1f} | "
            f"{figures.per_page('Query'):.1f} / {figures.per_page('TransactWriteItems'):.2f} / "
            f"{figures.per_page('SendMessageBatch'):.2f} | {shape_.skew_open:.3f}, {shape_.skew_window:.3f} |"
        )
    assert largest is not None
    shape_, figures = largest
    print("planner CPU: the real Planner (decide, claim and mark, build jobs) over in-memory stores, best of 3;")
    print("  target ≤ 40 µs per window loan. Items read per overdue loan and calls per SMS: benchmarks/send_path.py.")
    print()

    print("| window loans in one shard (shard 0 of 64) | stages enqueued | peak memory (tracemalloc) |")
    print("|--:|--:|--:|")
    memory = [shard_peak(n, shards, policy) for n in MEMORY_SHARD_WINDOW]
    for figure in memory:
        print(f"| {figure.window_loans:,} | {figure.lines:,} | {figure.peak_bytes / 2**20:.2f} MiB |")
    flat = memory[-1].peak_bytes <= 1.25 * memory[-2].peak_bytes
    print(f"flat in shard size: {'yes' if flat else 'NO'} ({memory[-1].peak_bytes / memory[-2].peak_bytes:.2f}× "
          f"from {memory[-2].window_loans:,} to {memory[-1].window_loans:,} window loans)")  # fmt: skip
    print()

    sdk = sdk_costs(shard_book(PAGE_SIZE, 0, shards, policy), policy)
    print(
        "SDK CPU per call (real DAL + botocore, canned answers): "
        f"Query of {PAGE_SIZE} items {sdk.query_s * 1e3:.2f} ms, "
        f"TransactWriteItems of 50 claims {sdk.claims_s * 1e3:.2f} ms, SendMessageBatch of 10 jobs "
        f"{sdk.enqueue_s * 1e3:.2f} ms; index item ~{sdk.item_bytes} bytes"
    )
    baseline, inits = cold_starts(function_names())
    plan_init = next((i.first_event_s for i in inits if i.function == "plan_reminders" and i.traced), 1.0)
    print()
    print(
        "projection (worst case: every window loan due, claimed and enqueued at this hour; planner CPU the "
        f"slowest book's {slowest * 1e6:.1f} µs/loan, calls per page those of the {shape_.size:,}-loan book):"
    )
    for ladder_loans, label in ((500_000, "target ≤ 300 s"), (1_000_000, "twice the ladder: a courtesy-heavy day")):
        p = project(
            ladder_loans, shards=shards, concurrency=concurrency, skew=shape_.skew_window, figures=figures, sdk=sdk,
            memory_mb=defaults["memory_mb"], timeout_s=defaults["timeout"], init_s=plan_init,
            planner_s_per_loan=slowest,
        )  # fmt: skip
        print(
            f"10M-loan book, {ladder_loans:,} in the ladder: {p.total_s:.0f} s of planning ({label})\n"
            f"  per shard: {p.loans_per_shard:,} loans (mean × skew {shape_.skew_window:.3f}) = {p.pages} pages; "
            f"CPU {p.cpu_s:.1f} s (÷ {min(1.0, defaults['memory_mb'] / FULL_VCPU_MB):.2f} vCPU at "
            f"{defaults['memory_mb']} MB) + round trips {p.io_s:.1f} s; throughput floor {p.bound_s:.1f} s; "
            f"{p.invocations} invocation(s) × init {p.init_s:.1f} s → {p.shard_s:.1f} s\n"
            f"  total = ceil({shards} shards / {concurrency} at once) = {p.waves} waves × {p.shard_s:.1f} s; "
            f"table writes ~{p.table_wcu_per_s:,.0f} WCU/s (quota {TABLE_UNITS:,}); "
            f"{concurrency} concurrent ≤ {LAMBDA_CONCURRENCY:,} Lambda, ≤ {INLINE_MAP_MAX} inline Map"
        )
    print(
        "  shard time = max(pages × (CPU per page ÷ vCPU share + Σ calls per page × round trip), "
        "marks ÷ 1,000 WCU/s per index key, a wave's stage writes × 5 WCU ÷ 40,000 WCU/s per table) "
        "+ invocations × init; round trips assumed "
        + ", ".join(f"{name} {seconds * 1e3:.0f} ms" for name, seconds in LATENCY_S.items())
    )
    print()
    report_cold_starts(baseline, inits)
    print(f"\n(bench ran in {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
