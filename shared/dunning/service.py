"""Wiring: the planner and sender built from the environment, once per container."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from dunning.settings import Settings, SettingsError

# Each function builds one service: it imports that service's module and the repositories it uses when it
# builds it, not every service's at cold start (issue 11: cold init; `benchmarks/scale.py` measures it, the
# service built included). Delivery status and the opt-out sync never read the policy, nor import it.
if TYPE_CHECKING:
    from dunning.borrower_events import BorrowerEvents
    from dunning.bureau import BureauReporter
    from dunning.case_closing import CaseCloser
    from dunning.dal.deliveries import DeliveriesRepository
    from dunning.dal.sms import Pacer, SmsGateway
    from dunning.dal.state import StateRepository
    from dunning.delivery_status import DeliveryStatusRecorder
    from dunning.escalation import Escalator
    from dunning.inbound import InboundReplies
    from dunning.loan_changes import LoanChanges
    from dunning.opt_out_sync import OptOutSync
    from dunning.planner import Planner
    from dunning.sender import Sender


def sms_gateway(settings: Settings) -> SmsGateway:
    from dunning.dal.sms import SmsGateway, SmsSettings

    return SmsGateway(SmsSettings(settings.sms_type, settings.sender_id, settings.origination_number))


def deliveries_repository(settings: Settings) -> DeliveriesRepository:
    """DeliveriesTable; every record written names the version of the policy in force (the audit trail)."""
    from dunning.config import current_policy
    from dunning.dal.deliveries import DeliveriesRepository

    return DeliveriesRepository(settings.deliveries_table, current_policy(settings).digest)


def state_repository(settings: Settings) -> StateRepository:
    """StateTable with phone numbers hashed (opt-outs, notices about a number)."""
    from dunning.dal.phone_keys import PhoneKeys
    from dunning.dal.state import StateRepository

    if not settings.phone_hash_key:
        raise SettingsError("function environment is invalid: PHONE_HASH_KEY is required to key phone numbers")
    return StateRepository(
        settings.state_table, PhoneKeys(settings.state_table, settings.phone_hash_key), settings.planning_shards
    )


def planner(settings: Settings) -> Planner:
    from dunning.config import current_policy
    from dunning.dal.ladder import LadderRepository
    from dunning.dal.queue import JobQueue
    from dunning.dal.state import StateRepository
    from dunning.planner import Planner

    return Planner(
        index=LadderRepository(settings.state_table),
        # No phone keys: the planner reads no opt-out (the sender does), so it needs no phone-hash key.
        state=StateRepository(settings.state_table, planning_shards=settings.planning_shards),
        deliveries=deliveries_repository(settings),
        queue=JobQueue(settings.reminder_queue_url),
        policy=current_policy(settings),
        retention_days=settings.record_retention_days,
    )


@cache
def _pacer(parts_per_second: float) -> Pacer:
    # One pacer per container (and rate): the budget holds across the invocations it serves.
    from dunning.dal.sms import Pacer

    return Pacer(parts_per_second)


def sender(settings: Settings) -> Sender:
    from dunning.config import current_policy
    from dunning.dal.loans import LoansRepository
    from dunning.sender import Sender

    return Sender(
        loans=LoansRepository(settings.loans_table),
        state=state_repository(settings),
        deliveries=deliveries_repository(settings),
        sms=sms_gateway(settings),
        pacer=_pacer(settings.sender_parts_per_second),
        policy=current_policy(settings),
        retention_days=settings.record_retention_days,
    )


def borrower_events(settings: Settings) -> BorrowerEvents:
    """Loan events (LoanEventsFunction)."""
    from dunning.borrower_events import BorrowerEvents
    from dunning.config import current_policy
    from dunning.dal.ladder import LadderRepository
    from dunning.dal.loans import LoansRepository
    from dunning.notices import Notices

    state = state_repository(settings)
    return BorrowerEvents(
        loans=LoansRepository(settings.loans_table),
        state=state,
        ladder=LadderRepository(settings.state_table),
        notices=Notices(
            state=state,
            deliveries=deliveries_repository(settings),
            sms=sms_gateway(settings),
            retention_days=settings.record_retention_days,
            pacer=_pacer(settings.notice_parts_per_second),
        ),
        policy=current_policy(settings),
        closer=case_closer(settings),
    )


def inbound_replies(settings: Settings) -> InboundReplies:
    """InboundSmsFunction: replies to our SMS (opt-out, HELP, a code to verify, BorrowerReplied)."""
    from dunning.config import current_policy
    from dunning.dal.bus import EventBus
    from dunning.dal.loans import LoansRepository
    from dunning.inbound import InboundReplies
    from dunning.notices import Notices

    if not settings.event_bus_name:
        raise SettingsError("function environment is invalid: EVENT_BUS_NAME is required to publish replies")
    state = state_repository(settings)
    deliveries = deliveries_repository(settings)
    return InboundReplies(
        loans=LoansRepository(settings.loans_table),
        state=state,
        deliveries=deliveries,
        notices=Notices(
            state=state, deliveries=deliveries, sms=sms_gateway(settings), retention_days=settings.record_retention_days
        ),
        bus=EventBus(settings.event_bus_name),
        policy=current_policy(settings),
    )


def case_closer(settings: Settings) -> CaseCloser:
    """Collection cases closed when their loan is paid or closed (CollectionCaseClosed)."""
    from dunning.case_closing import CaseCloser
    from dunning.dal.bus import EventBus
    from dunning.dal.cases import CaseRepository

    if not settings.event_bus_name:
        raise SettingsError("function environment is invalid: EVENT_BUS_NAME is required to announce closed cases")
    return CaseCloser(CaseRepository(settings.state_table), EventBus(settings.event_bus_name))


def delivery_recorder(settings: Settings) -> DeliveryStatusRecorder:
    """RecordDeliveryFunction: SNS SMS delivery-status logs onto delivery records."""
    from dunning.dal.deliveries import DeliveriesRepository
    from dunning.dal.state import StateRepository
    from dunning.delivery_status import DeliveryStatusRecorder

    return DeliveryStatusRecorder(
        deliveries=DeliveriesRepository(settings.deliveries_table), state=StateRepository(settings.state_table)
    )


def opt_out_sync(settings: Settings) -> OptOutSync:
    """SyncOptOutsFunction: SNS's opt-out list copied into the product's hashed opt-out items."""
    from dunning.opt_out_sync import OptOutSync

    return OptOutSync(state=state_repository(settings), sms=sms_gateway(settings))


def escalator(settings: Settings) -> Escalator:
    """EscalateFunction: collection cases for loans the SMS ladder could not bring back."""
    from dunning.config import current_policy
    from dunning.dal.bus import EventBus
    from dunning.dal.cases import CaseRepository
    from dunning.dal.ladder import LadderRepository
    from dunning.dal.loans import LoansRepository
    from dunning.escalation import Escalator

    if not settings.event_bus_name:
        raise SettingsError("function environment is invalid: EVENT_BUS_NAME is required to announce cases")
    return Escalator(
        index=LadderRepository(settings.state_table),
        loans=LoansRepository(settings.loans_table),
        deliveries=deliveries_repository(settings),
        state=state_repository(settings),
        cases=CaseRepository(settings.state_table),
        bus=EventBus(settings.event_bus_name),
        policy=current_policy(settings),
        retention_days=settings.record_retention_days,
    )


def bureau_reporter(settings: Settings) -> BureauReporter:
    """BureauReportFunction: the daily credit-bureau delinquency file."""
    from dunning.bureau import BureauReporter
    from dunning.config import current_policy
    from dunning.dal.bureau import BureauState, ReportStore
    from dunning.dal.ladder import LadderRepository
    from dunning.dal.loans import LoansRepository

    if not settings.reports_bucket:
        raise SettingsError("function environment is invalid: REPORTS_BUCKET is required to write the file")
    return BureauReporter(
        index=LadderRepository(settings.state_table),
        loans=LoansRepository(settings.loans_table),
        state=BureauState(settings.state_table),
        store=ReportStore(settings.reports_bucket),
        deliveries=deliveries_repository(settings),
        policy=current_policy(settings),
        retention_days=settings.record_retention_days,
    )


def loan_changes(settings: Settings) -> LoanChanges:
    """LoanChangesFunction: every LoansTable write checked as it happens (the table's stream)."""
    from dunning.config import current_policy
    from dunning.dal.ladder import LadderRepository
    from dunning.dal.state import StateRepository
    from dunning.loan_changes import LoanChanges

    return LoanChanges(
        deliveries=deliveries_repository(settings),
        ladder=LadderRepository(settings.state_table),
        retention_days=settings.record_retention_days,
        closer=case_closer(settings),
        policy=current_policy(settings),  # the ladder: whether a loan written is due now
        # Only the planner's pokes, keyed by the deployment's PlanningShards: no phone-hash key needed.
        state=StateRepository(settings.state_table, planning_shards=settings.planning_shards),
    )
