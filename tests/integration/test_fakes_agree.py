"""The unit tier's escalation stores (tests/fakes_escalation.py) do what the DynamoDB repositories do on moto.

One script of operations, played on both; every answer and every read must be the same. A fake that drifts
from the repository it stands for would let the unit tier pass on behaviour production does not have.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from dunning.dal.aws import from_item
from dunning.dal.cases import CaseRepository
from dunning.dal.state import StateRepository
from dunning_tools.local import LocalStack
from tests.fakes import FakeStateTable
from tests.fakes_escalation import FakeCases, FakeEscalationState
from tests.fakes_send import FakeTables

NOW = dt.datetime(2026, 12, 12, 1, 0, tzinfo=dt.UTC)


def play(cases: Any, state: Any) -> list[object]:
    """The operations escalation makes, and what each answers or leaves to read."""
    seen: list[object] = []

    def read(*pairs: tuple[str, str]) -> None:
        found, controls = cases.load(list(pairs))
        seen.append(
            (
                {loan_id: (case.cycle, case.reason, case.published) for loan_id, case in found.items()},
                {loan_id: (c.case_cycle, c.case_detail, sorted(c.broken_promises)) for loan_id, c in controls.items()},
            )
        )

    read(("L-1", "2026-11-01"))  # nothing yet
    seen.append(cases.open("L-1", "2026-11-01", "B-1", {"reason": "ladder_exhausted", "n": 1}, NOW))
    seen.append(cases.open("L-1", "2026-11-01", "B-1", {"reason": "opted_out", "n": 2}, NOW))  # once, ever
    read(("L-1", "2026-11-01"), ("L-2", "2026-11-01"))
    read(("L-1", "2026-12-01"))  # another cycle: no case, the CONTROL item as it is
    cases.mark_published("L-1", "2026-11-01", NOW)
    cases.stop_cycle("L-2", "2026-11-05")
    state.note_broken_promise("L-2", dt.date(2026, 11, 20))
    state.note_broken_promise("L-2", dt.date(2026, 11, 20))  # idempotent
    state.note_broken_promise("L-2", dt.date(2026, 11, 27))
    read(("L-1", "2026-11-01"), ("L-2", "2026-11-05"))
    return seen


def test_the_fake_case_store_answers_as_the_case_repository_on_moto(local_stack: LocalStack) -> None:
    table = local_stack.physical_id("StateTable")
    on_moto = play(CaseRepository(table), StateRepository(table))

    fake_table = FakeStateTable()
    in_memory = play(FakeCases(fake_table), FakeEscalationState(fake_table))

    assert in_memory == on_moto
    assert on_moto[1:3] == [True, False]


# ---------------------------------------------------------------- the sender's transactions (tests/fakes_send.py)


def _sender_scenario(state: Any, deliveries: Any, loans_table: str, tables: FakeTables | None) -> list[Any]:
    """Four borrowers through one send_batch: one sent, one opted out, one claim already SENT, one loan paid
    since planning. Returns every write_units call's units and what it refused (entry index -> item found)."""
    from dunning.dal.aws import dynamodb, to_item
    from dunning.dal.transact import write_units
    from dunning.models.jobs import SendJob
    from dunning.models.state import ClaimState
    from dunning.sender import Sender
    from tests.fakes_sms import FakePacer, FakeSms
    from tests.unit.test_sender_unit import NOW, POLICY, line

    jobs = []
    for n, claim in ((1, ClaimState.PLANNED), (2, ClaimState.PLANNED), (3, ClaimState.SENT), (4, ClaimState.PLANNED)):
        job_line = line(f"L-{n}", 6, "follow_up_6", borrower_id=f"B-{n}", phone=f"+861380013800{n}")
        jobs.append(SendJob(borrower_id=f"B-{n}", lines=[job_line], planned_at=NOW))
        assert job_line.snapshot is not None
        loan = {"loan_id": job_line.loan_id, **from_item(job_line.snapshot.loan)}
        if n == 4:
            loan["status"] = "PAID"
        if tables is None:
            dynamodb().put_item(TableName=loans_table, Item=to_item(loan))
        else:
            tables.put(loans_table, loan)
        state.settle((job_line.loan_id, job_line.cycle, job_line.stage), f"B-{n}", claim, NOW)
    optout = {"pk": state.phone_partition("+8613800138002"), "sk": "OPTOUT"}
    if tables is None:
        dynamodb().put_item(TableName=state.table, Item=to_item(optout))
    else:
        tables.put(state.table, optout)

    calls: list[Any] = []
    writer = write_units if tables is None else tables.write_units

    def recording(units: Any, sleep: Any = None) -> Any:
        refused = writer(units)
        by_unit = {id(r.unit): r.found for r in refused}
        calls.append([(len(u.items), by_unit.get(id(u))) for u in units])
        return refused

    class Loans:
        table = loans_table

    sender = Sender(Loans(), state, deliveries, FakeSms(), FakePacer(), POLICY, 400, lambda _: None, recording)
    outcomes = sender.send_batch(jobs, NOW)
    calls.append([(o.sent, dict(o.suppressed), dict(o.skipped)) for o in outcomes if not isinstance(o, Exception)])
    for job in jobs:
        (job_line,) = job.lines
        calls.append(
            state.move_claim(
                (job_line.loan_id, job_line.cycle, job_line.stage), ClaimState.SENT, NOW, ClaimState.PLANNED
            )[1]
        )
    return calls


def test_the_fake_transactions_answer_the_senders_units_as_dynamodb_on_moto(local_stack: LocalStack) -> None:
    from dunning.dal.deliveries import DeliveriesRepository
    from tests.fakes_send import FakeSendDeliveries, FakeSendState, phone_keys

    names = {n: local_stack.physical_id(n) for n in ("StateTable", "DeliveriesTable", "LoansTable")}
    moto_state = StateRepository(names["StateTable"], phone_keys())
    on_moto = _sender_scenario(moto_state, DeliveriesRepository(names["DeliveriesTable"]), names["LoansTable"], None)

    tables = FakeTables()
    in_memory = _sender_scenario(
        FakeSendState(tables, names["StateTable"]),
        FakeSendDeliveries(tables, names["DeliveriesTable"]),
        names["LoansTable"],
        tables,
    )

    assert in_memory == on_moto
    refused = [found for call in on_moto[:-5] for _, found in call if found]
    assert len(refused) >= 3  # opted out, claim SENT, loan changed: each refused, with what it found
