"""The policy document (docs/contract.md#policy-file): data, not code. Bundled YAML, optional SSM override."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dunning.models.loan import SUPPORTED_LOCALES, Locale, TimeZoneName
from dunning.models.money import ExactDecimal
from dunning.replies import opt_out_keywords

DEFAULT_POLICY_PATH = Path(__file__).resolve().parent.parent / "default_policy.yaml"
# libyaml's safe loader where PyYAML was built with it (its wheels are, the layer's arm64 one too): the same
# document, read about 10 times faster than by the pure-Python one, which most functions' cold start pays.
SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Template kinds: one per ladder stage kind, plus the service messages.
LADDER_KINDS = ("courtesy", "due_today", "overdue_notice", "follow_up")
SERVICE_KINDS = ("consolidated", "payment_confirmation", "opt_out_confirmation")
# Answers to inbound SMS (dunning.inbound): HELP and the outcomes of verifying a reference code.
REPLY_KINDS = ("help_reply", "verify_confirmed", "verify_settled", "verify_unmatched", "verify_malformed")


class PolicyError(ValueError):
    """A policy document that cannot be used; the message names what is wrong."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StageRule(_Strict):
    name: Annotated[str, Field(pattern=r"^[a-z_]+$", description="template kind and stage id")]
    day: Annotated[int, Field(ge=-30, le=365, description="days past due the stage starts on")]


class FollowUpRule(_Strict):
    first_day: Annotated[int, Field(ge=1)]
    every_days: Annotated[int, Field(ge=1)]
    last_day: Annotated[int, Field(ge=1)]


class Ladder(_Strict):
    stages: Annotated[tuple[StageRule, ...], Field(min_length=1)]
    follow_up: FollowUpRule
    escalation_day: Annotated[int, Field(ge=1, description="no collection SMS from this day on")]
    bureau_day: Annotated[int, Field(ge=1, description="credit-bureau reporting from this day on")]

    @model_validator(mode="after")
    def _ordered(self) -> Ladder:
        days = [s.day for s in self.stages]
        if days != sorted(set(days)):
            raise ValueError("ladder.stages must have strictly increasing days")
        if self.follow_up.first_day <= days[-1]:
            raise ValueError("ladder.follow_up.first_day must come after the last fixed stage")
        if self.follow_up.last_day >= self.escalation_day:
            raise ValueError("ladder.follow_up.last_day must come before escalation_day")
        return self


class Window(_Strict):
    start: dt.time
    end: dt.time

    @model_validator(mode="after")
    def _start_before_end(self) -> Window:
        if self.start >= self.end:
            raise ValueError("window start must be before its end")
        return self


class Caps(_Strict):
    per_borrower_per_day: Annotated[int, Field(ge=1)]
    per_borrower_per_7_days: Annotated[int, Field(ge=1)]


class LateFeeRule(_Strict):
    daily_rate: Annotated[ExactDecimal, Field(ge=0, le=Decimal("0.1"))]
    cap_rate: Annotated[ExactDecimal, Field(ge=0, le=Decimal(1))]


class Escalation(_Strict):
    failed_in_a_row: Annotated[int, Field(ge=1, description="open a case after this many failed SMS")]


class ReplyRules(_Strict):
    """How inbound SMS other than opt-outs are read and answered (dunning.replies, dunning.inbound)."""

    help_keywords: Annotated[
        list[str], Field(min_length=1, description="a reply that is one of these alone gets the HELP answer")
    ] = ["HELP", "INFO", "帮助", "求助", "客服"]
    verify_keywords: Annotated[
        list[str], Field(min_length=1, description="a reply with one of these and a reference code is verified")
    ] = ["VERIFY", "核实", "验证", "核对"]
    per_number_per_day: Annotated[
        int, Field(ge=1, le=20, description="answers of each kind (HELP, verify) per number per business day")
    ] = 3

    @field_validator("help_keywords", "verify_keywords")
    @classmethod
    def _readable_keywords(cls, value: list[str]) -> list[str]:
        opt_out_keywords(value)  # ValueError names a keyword that is only punctuation or spaces
        return value


class Policy(_Strict):
    version: Annotated[int, Field(ge=1)]
    brand: dict[Locale, Annotated[str, Field(min_length=1, max_length=16)]]
    hotline: Annotated[str, Field(pattern=r"^[0-9+\- ]{5,20}$")]
    repayment_methods: dict[Locale, Annotated[str, Field(min_length=1)]]
    business_timezone: TimeZoneName
    default_locale: Locale
    default_timezone: TimeZoneName
    ladder: Ladder
    pay_by_days: Annotated[int, Field(ge=1, le=30)]
    max_pause_days: Annotated[
        int, Field(ge=1, le=3650, description="a promise or grace period may pause collection at most this far ahead")
    ] = 90
    send_window: Window
    country_windows: dict[Annotated[str, Field(pattern=r"^[A-Z]{2}$")], Window] = {}
    caps: Caps
    late_fee: LateFeeRule
    max_segments: Annotated[int, Field(ge=1, le=10)]
    escalation: Escalation
    opt_out_keywords: Annotated[list[str], Field(min_length=1, description="read by dunning.replies")]
    replies: ReplyRules = ReplyRules()
    templates: dict[str, dict[Locale, Annotated[str, Field(min_length=1)]]]
    fragments: dict[str, dict[Locale, str]] = {}

    @field_validator("brand", "repayment_methods")
    @classmethod
    def _every_locale(cls, value: dict[str, str]) -> dict[str, str]:
        missing = [loc for loc in SUPPORTED_LOCALES if loc not in value]
        if missing:
            raise ValueError(f"missing locale(s) {', '.join(missing)}")
        return value

    @field_validator("opt_out_keywords")
    @classmethod
    def _readable_keywords(cls, value: list[str]) -> list[str]:
        opt_out_keywords(value)  # ValueError names a keyword that is only punctuation or spaces
        return value

    @model_validator(mode="after")
    def _templates_complete(self) -> Policy:
        kinds = {s.name for s in self.ladder.stages} | {"follow_up"} | set(SERVICE_KINDS) | set(REPLY_KINDS)
        for kind in sorted(kinds):
            for locale in SUPPORTED_LOCALES:
                if locale not in self.templates.get(kind, {}):
                    raise ValueError(f"templates.{kind}.{locale} is missing")
        return self

    @cached_property
    def digest(self) -> str:
        """The policy's version for the audit trail: a content hash of the validated document.

        Two documents that validate to the same policy (comments, key order, quoting aside) share it;
        any change that can change a decision changes it. Every delivery record carries it.
        """
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def parse_policy(text: str, source: str = "policy") -> Policy:
    """Parse and validate a policy YAML document; PolicyError names the field and the rule."""
    try:
        data: Any = yaml.load(text, Loader=SAFE_LOADER)  # noqa: S506 (SAFE_LOADER is a safe loader)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: must be a YAML mapping")
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(document)'}: {e['msg']}" for e in exc.errors())
        raise PolicyError(f"{source}: {problems}") from None


def load_policy_file(path: Path | str = DEFAULT_POLICY_PATH) -> Policy:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_policy(text, str(path))
