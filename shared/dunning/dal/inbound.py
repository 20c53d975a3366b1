"""StateTable items of inbound SMS: answers counted per number and day, BorrowerReplied published once.

Both live under the number's keyed hash (`PHONEHASH#h`, see `phone_keys`), never the number:
- `PHONEHASH#h / REPLIES#kind#yyyy-mm-dd`: `count` of answers of one kind (help, verify) that
  business day and the inbound message `ids` they answered (so a redelivery is not counted twice);
  TTL 8 days.
- `PHONEHASH#h / REPLIED#message-id`: BorrowerReplied for that inbound message (`state` PLANNED,
  then PUBLISHED with the EventBridge `event_id`); TTL 90 days, as notice claims.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dunning.dal.aws import conditional_write, dynamodb
from dunning.dal.state import NOTICE_RETENTION_DAYS, StateRepository, expiry
from dunning.models.timestamps import utc_iso

if TYPE_CHECKING:
    from dunning.dal.aws import RawItem

COUNTER_RETENTION_DAYS = 8
PLANNED = "PLANNED"
PUBLISHED = "PUBLISHED"


@dataclass
class InboundState:
    state: StateRepository

    def _key(self, phone: str, sort_key: str) -> RawItem:
        return {"pk": {"S": self.state.phone_partition(phone)}, "sk": {"S": sort_key}}

    def take_answer_slot(self, phone: str, kind: str, day: dt.date, message_id: str, cap: int) -> bool:
        """Count one answer of `kind` to this number on `day` if fewer than `cap` were; False when full.

        One conditional update. The message's id is kept with the count: the same message
        (an SNS redelivery) finds its slot already taken and gets True without a second count.
        """
        key = self._key(phone, f"REPLIES#{kind}#{day.isoformat()}")
        written = conditional_write(
            {
                "Update": {
                    "TableName": self.state.table,
                    "Key": key,
                    "UpdateExpression": "ADD #c :one, #ids :id SET expires_at = :exp",
                    "ConditionExpression": "(attribute_not_exists(#c) OR #c < :cap) AND NOT contains(#ids, :mid)",
                    "ExpressionAttributeNames": {"#c": "count", "#ids": "ids"},
                    "ExpressionAttributeValues": {
                        ":one": {"N": "1"},
                        ":id": {"SS": [message_id]},
                        ":mid": {"S": message_id},
                        ":cap": {"N": str(cap)},
                        ":exp": {"N": str(expiry(day, COUNTER_RETENTION_DAYS))},
                    },
                }
            }
        )
        return written.ok or message_id in (written.item or {}).get("ids", set())

    def claim_reply_event(self, phone: str, message_id: str, now: dt.datetime) -> bool:
        """Take the BorrowerReplied of one inbound message; False when it was already published."""
        key = self._key(phone, f"REPLIED#{message_id}")
        return conditional_write(
            {
                "Put": {
                    "TableName": self.state.table,
                    "Item": {
                        **key,
                        "state": {"S": PLANNED},
                        "updated_at": {"S": utc_iso(now)},
                        "expires_at": {"N": str(expiry(now, NOTICE_RETENTION_DAYS))},
                    },
                    "ConditionExpression": "attribute_not_exists(pk) OR #s = :planned",
                    "ExpressionAttributeNames": {"#s": "state"},
                    "ExpressionAttributeValues": {":planned": {"S": PLANNED}},
                }
            }
        ).ok

    def reply_event_published(self, phone: str, message_id: str, event_id: str, now: dt.datetime) -> None:
        dynamodb().update_item(
            TableName=self.state.table,
            Key=self._key(phone, f"REPLIED#{message_id}"),
            UpdateExpression="SET #s = :published, event_id = :event, updated_at = :now",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={
                ":published": {"S": PUBLISHED},
                ":event": {"S": event_id},
                ":now": {"S": utc_iso(now)},
            },
        )
