"""StateTable: the product's own state, kept apart from the upstream-owned loans.

Items: `LOAN#id / SEND#cycle#stage` (send claim), `LOAN#id / CONTROL` (holds and pauses),
`BORROWER#id / DAY#yyyy-mm-dd` (SMS sent that local day), `PHONE#e164 / OPTOUT`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from botocore.exceptions import ClientError

from dunning.dal.aws import client, from_item, to_item
from dunning.models.jobs import utc_iso
from dunning.models.state import ClaimState, LoanControl, SendClaim

ClaimKey = tuple[str, str, str]  # loan_id, cycle, stage


def claim_key(loan_id: str, cycle: str, stage: str) -> dict[str, Any]:
    return {"pk": {"S": f"LOAN#{loan_id}"}, "sk": {"S": f"SEND#{cycle}#{stage}"}}


def control_key(loan_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"LOAN#{loan_id}"}, "sk": {"S": "CONTROL"}}


def day_key(borrower_id: str, day: dt.date) -> dict[str, Any]:
    return {"pk": {"S": f"BORROWER#{borrower_id}"}, "sk": {"S": f"DAY#{day.isoformat()}"}}


def optout_key(phone: str) -> dict[str, Any]:
    return {"pk": {"S": f"PHONE#{phone}"}, "sk": {"S": "OPTOUT"}}


def is_conditional_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class StateRepository:
    def __init__(self, table: str) -> None:
        self.table = table

    # ---------------------------------------------------------------- reads
    def _batch_get(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        unique = list({(k["pk"]["S"], k["sk"]["S"]): k for k in keys}.values())
        items: list[dict[str, Any]] = []
        for start in range(0, len(unique), 100):
            request: dict[str, Any] = {self.table: {"Keys": unique[start : start + 100], "ConsistentRead": True}}
            while request:
                response = client("dynamodb").batch_get_item(RequestItems=request)
                items.extend(from_item(i) for i in response.get("Responses", {}).get(self.table, []))
                request = response.get("UnprocessedKeys") or {}
        return items

    def load(
        self, claims: list[ClaimKey], phones: list[str]
    ) -> tuple[dict[ClaimKey, SendClaim], dict[str, LoanControl], set[str]]:
        """Claims, controls and opted-out phones for a set of loans, in batched reads."""
        keys = [claim_key(*k) for k in claims]
        keys += [control_key(loan_id) for loan_id, _, _ in claims]
        keys += [optout_key(phone) for phone in phones]
        found_claims: dict[ClaimKey, SendClaim] = {}
        controls: dict[str, LoanControl] = {}
        opted_out: set[str] = set()
        for item in self._batch_get(keys):
            pk, sk = str(item["pk"]), str(item["sk"])
            if sk.startswith("SEND#"):
                claim = SendClaim.model_validate(item)
                found_claims[(claim.loan_id, claim.cycle, claim.stage)] = claim
            elif sk == "CONTROL":
                control = LoanControl.model_validate(item)
                controls[control.loan_id] = control
            elif sk == "OPTOUT":
                opted_out.add(pk.removeprefix("PHONE#"))
        return found_claims, controls, opted_out

    def sent_by_day(self, borrower_id: str, today: dt.date) -> dict[dt.date, int]:
        """SMS counted against the borrower on each of the last 7 local days."""
        first = today - dt.timedelta(days=6)
        response = client("dynamodb").query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :a AND :b",
            ExpressionAttributeValues={
                ":pk": {"S": f"BORROWER#{borrower_id}"},
                ":a": {"S": f"DAY#{first.isoformat()}"},
                ":b": {"S": f"DAY#{today.isoformat()}"},
            },
            ConsistentRead=True,
        )
        counts: dict[dt.date, int] = {}
        for raw in response.get("Items", []):
            item = from_item(raw)
            counts[dt.date.fromisoformat(str(item["sk"]).removeprefix("DAY#"))] = int(item.get("count", 0))
        return counts

    # ---------------------------------------------------------------- claims
    def plan(self, key: ClaimKey, borrower_id: str, now: dt.datetime, stale_before: dt.datetime) -> bool:
        """Take the stage for a new job; False when another run holds it (then enqueue nothing)."""
        try:
            client("dynamodb").put_item(
                TableName=self.table,
                Item=to_item(self._claim_values(key, borrower_id, ClaimState.PLANNED, now)),
                ConditionExpression=(
                    "attribute_not_exists(pk)"
                    " OR (#s = :planned AND updated_at < :stale)"
                    " OR (#s = :deferred AND retry_after <= :now)"
                ),
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={
                    ":planned": {"S": ClaimState.PLANNED.value},
                    ":deferred": {"S": ClaimState.DEFERRED.value},
                    ":stale": {"S": utc_iso(stale_before)},
                    ":now": {"S": utc_iso(now)},
                },
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                return False
            raise
        return True

    def settle(
        self,
        key: ClaimKey,
        borrower_id: str,
        state: ClaimState,
        now: dt.datetime,
        *,
        reason: str | None = None,
        retry_after: dt.datetime | None = None,
        record_id: str | None = None,
        message_id: str | None = None,
        only_from: tuple[ClaimState, ...] | None = None,
    ) -> bool:
        """Write the claim's new state; with only_from, only if it is currently in one of those."""
        values = self._claim_values(key, borrower_id, state, now)
        values.update(reason=reason, record_id=record_id, message_id=message_id)
        values["retry_after"] = utc_iso(retry_after) if retry_after else None
        request: dict[str, Any] = {"TableName": self.table, "Item": to_item(values)}
        if only_from:
            names = {f":s{i}": {"S": s.value} for i, s in enumerate(only_from)}
            request["ConditionExpression"] = f"#s IN ({', '.join(names)})"
            request["ExpressionAttributeNames"] = {"#s": "state"}
            request["ExpressionAttributeValues"] = names
        try:
            client("dynamodb").put_item(**request)
        except ClientError as exc:
            if is_conditional_failure(exc):
                return False
            raise
        return True

    def claim_transition(
        self, key: ClaimKey, to: ClaimState, now: dt.datetime, from_state: ClaimState, **extra: Any
    ) -> dict[str, Any]:
        """A TransactWriteItems Update moving a claim between states (conditional on the current one)."""
        names = {"#s": "state"}
        values: dict[str, Any] = {":to": {"S": to.value}, ":from": {"S": from_state.value}, ":now": {"S": utc_iso(now)}}
        sets = ["#s = :to", "updated_at = :now"]
        for i, (name, value) in enumerate(sorted(extra.items())):
            names[f"#x{i}"] = name
            values[f":x{i}"] = to_item({"v": value})["v"]
            sets.append(f"#x{i} = :x{i}")
        return {
            "Update": {
                "TableName": self.table,
                "Key": claim_key(*key),
                "UpdateExpression": "SET " + ", ".join(sets),
                "ConditionExpression": "#s = :from",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

    def day_slot(self, borrower_id: str, day: dt.date, cap: int, expires_at: int, delta: int = 1) -> dict[str, Any]:
        """A TransactWriteItems Update counting one SMS on the borrower's local day, within the cap."""
        update: dict[str, Any] = {
            "TableName": self.table,
            "Key": day_key(borrower_id, day),
            "UpdateExpression": "ADD #c :one SET expires_at = :exp",
            "ExpressionAttributeNames": {"#c": "count"},
            "ExpressionAttributeValues": {":one": {"N": str(delta)}, ":exp": {"N": str(expires_at)}},
        }
        if delta > 0:
            update["ConditionExpression"] = "attribute_not_exists(#c) OR #c < :cap"
            update["ExpressionAttributeValues"][":cap"] = {"N": str(cap)}
        return {"Update": update}

    def transact(self, items: list[dict[str, Any]]) -> None:
        client("dynamodb").transact_write_items(TransactItems=items)

    # ---------------------------------------------------------------- helpers
    def _claim_values(self, key: ClaimKey, borrower_id: str, state: ClaimState, now: dt.datetime) -> dict[str, Any]:
        loan_id, cycle, stage = key
        return {
            "pk": f"LOAN#{loan_id}",
            "sk": f"SEND#{cycle}#{stage}",
            "loan_id": loan_id,
            "cycle": cycle,
            "stage": stage,
            "borrower_id": borrower_id,
            "state": state.value,
            "updated_at": utc_iso(now),
        }
