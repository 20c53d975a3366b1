"""The policy in force: the bundled YAML, or the SSM parameter named by POLICY_PARAMETER."""

from __future__ import annotations

from functools import lru_cache

from dunning.models.policy import DEFAULT_POLICY_PATH, Policy, parse_policy
from dunning.settings import Settings

POLICY_CACHE_SECONDS = 300


def current_policy(settings: Settings) -> Policy:
    if settings.policy_parameter:
        # Imported only where the override is configured: without it, a cold start never reads SSM.
        from aws_lambda_powertools.utilities import parameters

        text = parameters.get_parameter(settings.policy_parameter, max_age=POLICY_CACHE_SECONDS)
        return _parsed(str(text), f"ssm:{settings.policy_parameter}")
    return _parsed(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"), str(DEFAULT_POLICY_PATH.name))


@lru_cache(maxsize=4)
def _parsed(text: str, source: str) -> Policy:
    return parse_policy(text, source)
