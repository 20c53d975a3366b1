"""Credit-bureau reporting: the set of loans reported so far (StateTable) and the files (ReportsBucket).

The reported set is one partition, `BUREAU#REPORTED / LOAN#id`, so a run lists it with a Query
(never a scan of StateTable) to find the loans that need a SETTLED correction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from pydantic import ValidationError

from dunning.dal.aws import dynamodb, query_items, s3, to_item
from dunning.models.bureau import Reported
from dunning.observability import logger

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import WriteRequestTypeDef, WriteRequestUnionTypeDef

REPORTED_PK = "BUREAU#REPORTED"


class BureauState:
    def __init__(self, table: str) -> None:
        self.table = table

    def reported(self) -> dict[str, Reported]:
        """The reported set by loan id. An unreadable entry is logged and left out: it never fails the run."""
        reported: dict[str, Reported] = {}
        for item in query_items(
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": REPORTED_PK}},
            ConsistentRead=True,
        ):
            try:
                entry = Reported.model_validate(item)
            except ValidationError:
                logger.error("bureau: unreadable reported-set item ignored", extra={"sk": item.get("sk")})
                continue
            reported[entry.loan_id] = entry
        return reported

    def save(self, entries: list[dict[str, Any]]) -> None:
        """Put the entries (each with `loan_id`) into the reported set."""
        self._write(
            [{"PutRequest": {"Item": to_item({"pk": REPORTED_PK, "sk": f"LOAN#{e['loan_id']}", **e})}} for e in entries]
        )

    def remove(self, loan_ids: list[str]) -> None:
        self._write(
            [{"DeleteRequest": {"Key": {"pk": {"S": REPORTED_PK}, "sk": {"S": f"LOAN#{i}"}}}} for i in loan_ids]
        )

    def _write(self, requests: list[WriteRequestTypeDef]) -> None:
        for start in range(0, len(requests), 25):
            pending: Mapping[str, Sequence[WriteRequestUnionTypeDef]] = {self.table: requests[start : start + 25]}
            while pending:
                response = dynamodb().batch_write_item(RequestItems=pending)
                pending = response.get("UnprocessedItems") or {}


class ReportStore:
    def __init__(self, bucket: str) -> None:
        self.bucket = bucket

    def put(self, key: str, body: bytes, content_type: str) -> None:
        s3().put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)

    def get(self, key: str) -> bytes:
        """An object's bytes; FileNotFoundError when there is none (a part not written yet)."""
        try:
            body: bytes = s3().get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise FileNotFoundError(key) from None
            raise
        return body
