"""Wiring: the planner and sender built from the environment, once per container."""

from __future__ import annotations

from functools import cache

from dunning.config import current_policy
from dunning.dal.deliveries import DeliveriesRepository
from dunning.dal.loans import LoansRepository
from dunning.dal.queue import JobQueue
from dunning.dal.sms import Pacer, SmsGateway, SmsSettings
from dunning.dal.state import StateRepository
from dunning.planner import Planner
from dunning.sender import Sender
from dunning.settings import Settings


def planner(settings: Settings) -> Planner:
    return Planner(
        loans=LoansRepository(settings.loans_table),
        state=StateRepository(settings.state_table),
        deliveries=DeliveriesRepository(settings.deliveries_table),
        queue=JobQueue(settings.reminder_queue_url),
        policy=current_policy(settings),
        retention_days=settings.record_retention_days,
    )


@cache
def _pacer(parts_per_second: int) -> Pacer:
    # One pacer per container: the budget holds across the invocations it serves.
    return Pacer(parts_per_second)


def sender(settings: Settings) -> Sender:
    return Sender(
        loans=LoansRepository(settings.loans_table),
        state=StateRepository(settings.state_table),
        deliveries=DeliveriesRepository(settings.deliveries_table),
        sms=SmsGateway(SmsSettings(settings.sms_type, settings.sender_id, settings.origination_number)),
        pacer=_pacer(settings.max_parts_per_second),
        policy=current_policy(settings),
        retention_days=settings.record_retention_days,
    )
