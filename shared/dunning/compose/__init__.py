"""Composition of the SMS a borrower receives: templates, money and dates, segments, references."""

from dunning.compose.formatting import format_date, format_money
from dunning.compose.names import printable_name
from dunning.compose.reference import REFERENCE_ALPHABET, is_reference_code, parse_reference_code, reference_code
from dunning.compose.render import (
    REPLY_KINDS,
    SERVICE_MESSAGE_KINDS,
    ComposedSms,
    ReminderContext,
    ReminderMessage,
    is_service_kind,
    render_reminder,
    render_reply,
    render_service,
)
from dunning.compose.segments import Encoding, is_gsm7, sms_encoding

__all__ = [
    "REFERENCE_ALPHABET",
    "REPLY_KINDS",
    "SERVICE_MESSAGE_KINDS",
    "ComposedSms",
    "Encoding",
    "ReminderContext",
    "ReminderMessage",
    "format_date",
    "format_money",
    "is_gsm7",
    "is_reference_code",
    "is_service_kind",
    "parse_reference_code",
    "printable_name",
    "reference_code",
    "render_reminder",
    "render_reply",
    "render_service",
    "sms_encoding",
]
