"""The unit tier's escalation stores (tests/fakes_escalation.py) do what the DynamoDB repositories do on moto.

One script of operations, played on both; every answer and every read must be the same. A fake that drifts
from the repository it stands for would let the unit tier pass on behaviour production does not have.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from dunning.dal.cases import CaseRepository
from dunning.dal.state import StateRepository
from dunning_tools.local import LocalStack
from tests.fakes import FakeStateTable
from tests.fakes_escalation import FakeCases, FakeEscalationState

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
