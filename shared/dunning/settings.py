"""The functions' environment, read once through a pydantic model.

A missing or malformed variable is a clear error at the first use, never a silent default.
"""

from __future__ import annotations

import functools
import os
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class SettingsError(RuntimeError):
    """The function's environment is incomplete or wrong."""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    loans_table: Annotated[str, Field(min_length=1, alias="LOANS_TABLE")]
    deliveries_table: Annotated[str, Field(min_length=1, alias="DELIVERIES_TABLE")]
    state_table: Annotated[str, Field(min_length=1, alias="STATE_TABLE")]
    reminder_queue_url: Annotated[str, Field(min_length=1, alias="REMINDER_QUEUE_URL")]
    quarantine_queue_url: Annotated[
        str, Field(min_length=1, alias="QUARANTINE_QUEUE_URL", description="where rejected input is kept for replay")
    ]
    event_bus_name: Annotated[str, Field(default="", alias="EVENT_BUS_NAME")]
    reports_bucket: Annotated[str, Field(default="", alias="REPORTS_BUCKET")]
    policy_parameter: Annotated[
        str, Field(default="", alias="POLICY_PARAMETER", description="SSM parameter overriding the bundled policy")
    ]
    sms_type: Annotated[Literal["Transactional", "Promotional"], Field(default="Transactional", alias="SMS_TYPE")]
    sender_id: Annotated[str, Field(default="", alias="SENDER_ID", max_length=11)]
    origination_number: Annotated[str, Field(default="", alias="ORIGINATION_NUMBER")]
    max_parts_per_second: Annotated[int, Field(default=20, ge=1, le=1000, alias="MAX_PARTS_PER_SECOND")]
    sender_concurrency: Annotated[
        int, Field(default=1, ge=1, le=1000, alias="SENDER_CONCURRENCY", description="senders running at once, at most")
    ]
    notice_share_percent: Annotated[
        int,
        Field(
            default=10, ge=1, le=50, alias="NOTICE_SHARE_PERCENT", description="of MAX_PARTS_PER_SECOND, for notices"
        ),
    ]
    record_retention_days: Annotated[int, Field(default=400, ge=1, alias="RECORD_RETENTION_DAYS")]
    planning_shards: Annotated[
        int, Field(default=1, ge=1, le=1024, alias="PLANNING_SHARDS", description="PlanningShards: how pokes are keyed")
    ]
    phone_hash_key: Annotated[
        str, Field(default="", alias="PHONE_HASH_KEY", description="KMS key wrapping the phone-hash key")
    ]

    @property
    def sender_parts_per_second(self) -> float:
        """Each sender's pace: the reminders' share of the identity's rate, split between the senders."""
        return self.max_parts_per_second * (100 - self.notice_share_percent) / 100 / self.sender_concurrency

    @property
    def notice_parts_per_second(self) -> float:
        """The pace of the payment and opt-out notices a container sends (their share of the rate)."""
        return self.max_parts_per_second * self.notice_share_percent / 100

    @field_validator("reminder_queue_url", "quarantine_queue_url")
    @classmethod
    def _queue_is_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an SQS queue URL")
        return value


@functools.cache
def get_settings() -> Settings:
    """The environment of this Lambda container, validated once."""
    try:
        return Settings.model_validate(dict(os.environ))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise SettingsError(f"function environment is invalid: {problems}") from None


def reset_settings() -> None:
    """Forget the cached settings (the local runner switches environments between invocations)."""
    get_settings.cache_clear()
