"""Every delivery record names the version (content hash) of the policy that decided it."""

from __future__ import annotations

import boto3

from dunning.models.policy import DEFAULT_POLICY_PATH, load_policy_file, parse_policy
from dunning_tools.local import LocalStack, deploy_stack
from tests.integration.borrower_helpers import local, plan_and_send, put_loan, records

POLICY_PARAMETER = "/dunning/audit-test/policy"


def test_every_record_names_the_bundled_policys_version(local_stack: LocalStack) -> None:
    put_loan(local_stack)  # overdue: an SMS
    put_loan(local_stack, loan_id="L-BROKEN", currency="XXX")  # invalid: a SUPPRESSED record
    plan_and_send(local_stack, local(17, 10))

    written = records(local_stack)
    assert {r["outcome"] for r in written} >= {"SENT", "SUPPRESSED"}
    assert {r["policy_version"] for r in written} == {load_policy_file().digest}


def test_a_policy_from_ssm_is_named_by_its_own_version(moto_aws: None) -> None:
    text = DEFAULT_POLICY_PATH.read_text(encoding="utf-8").replace("pay_by_days: 3", "pay_by_days: 5")
    boto3.client("ssm").put_parameter(Name=POLICY_PARAMETER, Type="String", Value=text)
    stack = deploy_stack(parameters={"PolicyParameterName": POLICY_PARAMETER})
    put_loan(stack)
    plan_and_send(stack, local(17, 10))

    versions = {r["policy_version"] for r in records(stack)}
    assert versions == {parse_policy(text).digest}
    assert versions != {load_policy_file().digest}
