"""The bureau's reported set reads back as models; an unreadable entry is left out, never fatal."""

from __future__ import annotations

import datetime as dt

import boto3
import pytest
from moto import mock_aws

from dunning.dal.bureau import BureauState
from dunning.models.bureau import Reported


@pytest.mark.usefixtures("aws_credentials")
def test_the_reported_set_reads_as_models_and_skips_an_unreadable_entry(caplog: pytest.LogCaptureFixture) -> None:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(
            TableName="state",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        state = BureauState("state")
        good = Reported(
            loan_id="L-1",
            borrower_id="B-1",
            currency="CNY",
            first_delinquency_date=dt.date(2026, 9, 1),
            reported_since=dt.date(2026, 10, 1),
        )
        state.save([good.to_entry(), {"loan_id": "L-2", "currency": "CNY"}])  # L-2 has no borrower or dates
        found = state.reported()
    assert found == {"L-1": good}
    assert any("unreadable reported-set item" in r.getMessage() for r in caplog.records)
