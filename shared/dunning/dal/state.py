"""StateTable: the product's own state, kept apart from the upstream-owned loans.

Items: `LOAN#id / SEND#cycle#stage` (send claim), `LOAN#id / CONTROL` (holds and pauses),
`BORROWER#id / CAP` (the local days of the borrower's latest SMS: the daily and weekly caps),
`MSG#message_id / MSG` (the delivery records of one SNS message, and its carrier outcome once
known), `PHONEHASH#h / OPTOUT`,
`LOAN#id / NOTICE#kind#id` and `PHONEHASH#h / NOTICE#kind#id` (one service SMS per event),
`BORROWER#id / ERASED` (evidence of an erasure, no personal data), `KEY / PHONE_HASH` (the
wrapped phone-hash key, see `phone_keys`: never delete it),
`PLANNER / AGENDA#shard#shards` (when that planner shard must read again),
`PLANNER / POKE#shard#shards` (a version bumped whenever something that shard read may have
changed; `shards` is the deployment's PlanningShards) and `PLANNER / POKE` (the same for every shard).
The CONTROL items are also the ladder index (`dal.ladder`); the planner marks on them the stage it
handled last (`planned` = `cycle#stage`, `planned_until`), in the same transaction as the claim.

A phone number is never a key here, and an attribute only on an open loan's CONTROL item (with the
name: what the sender composes with, `dal.ladder.CONTACT`, removed by an erasure): items about a number
are keyed by its keyed hash (`PHONEHASH#h`, h = `PhoneKeys.hash`). Items written before that (`PHONE#e164 / ...`) are
still read for opt-outs (a dual read, so no opt-out is missed after the upgrade), moved to the
hashed key when the number opts out again, and removed when the number is erased.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from dunning.dal.aws import (
    batch_get,
    cancellation_reasons,
    conditional_write,
    dynamodb,
    from_item,
    query_items,
    to_item,
)
from dunning.dal.phone_keys import PhoneKeys
from dunning.dal.transact import Unit, write_units
from dunning.models.state import ClaimState, LoanControl, PlannerAgenda, SendClaim
from dunning.models.timestamps import utc_iso
from dunning.sharding import LADDER_BUCKETS, buckets_of_shard

if TYPE_CHECKING:
    from dunning.dal.aws import CancellationReason, RawItem, Write

ClaimKey = tuple[str, str, str]  # loan_id, cycle, stage
CLAIMS_PER_TRANSACTION = 50  # each claim is two items (claim, CONTROL mark); a transaction takes 100
TRANSACTION_ATTEMPTS = 5  # conflicts with a concurrent write of the same items are retried this often
LEGACY_PHONE_PREFIX = "PHONE#"  # items keyed by the raw number, before the keyed hash
# A send claim outlives every stage of its cycle (a stage starts at most 365 days past due).
CLAIM_RETENTION_DAYS = 400
# A notice claim only stops redeliveries and replays of its event from sending twice.
NOTICE_RETENTION_DAYS = 90
NO_DAY = "0000-00-00"  # an empty place in a borrower's CAP item: older than any day


def claim_key(loan_id: str, cycle: str, stage: str) -> RawItem:
    return {"pk": {"S": f"LOAN#{loan_id}"}, "sk": {"S": f"SEND#{cycle}#{stage}"}}


def control_key(loan_id: str) -> RawItem:
    return {"pk": {"S": f"LOAN#{loan_id}"}, "sk": {"S": "CONTROL"}}


def cap_key(borrower_id: str) -> RawItem:
    return {"pk": {"S": f"BORROWER#{borrower_id}"}, "sk": {"S": "CAP"}}


def message_key(message_id: str) -> RawItem:
    return {"pk": {"S": f"MSG#{message_id}"}, "sk": {"S": "MSG"}}


def optout_key(partition: str) -> RawItem:
    """`partition` is `PHONEHASH#h` (or, for items written before the hash, `PHONE#e164`)."""
    return {"pk": {"S": partition}, "sk": {"S": "OPTOUT"}}


def notice_key(owner: str, notice: str) -> RawItem:
    """`owner` is `LOAN#id` or `PHONEHASH#h`; `notice` is `kind#event-or-payment-id`."""
    return {"pk": {"S": owner}, "sk": {"S": f"NOTICE#{notice}"}}


def expiry(day: dt.date | dt.datetime, days: int) -> int:
    """The TTL (epoch seconds) `days` after a date (midnight UTC) or an instant."""
    start = day if isinstance(day, dt.datetime) else dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC)
    return int((start + dt.timedelta(days=days)).timestamp())


def erasure_key(borrower_id: str) -> RawItem:
    return {"pk": {"S": f"BORROWER#{borrower_id}"}, "sk": {"S": "ERASED"}}


def agenda_key(shard: int, shards: int) -> RawItem:
    return {"pk": {"S": "PLANNER"}, "sk": {"S": f"AGENDA#{shard}#{shards}"}}


POKE_KEY: RawItem = {"pk": {"S": "PLANNER"}, "sk": {"S": "POKE"}}  # every shard's
OPT_OUT_SYNC_KEY: RawItem = {"pk": {"S": "OPTOUT_SYNC"}, "sk": {"S": "CURSOR"}}


def shard_poke_key(shard: int, shards: int) -> RawItem:
    return {"pk": {"S": "PLANNER"}, "sk": {"S": f"POKE#{shard}#{shards}"}}


def stage_mark(cycle: str, stage: str) -> str:
    """The CONTROL item's `planned` value for a stage."""
    return f"{cycle}#{stage}"


def marked_handled(
    item: Mapping[str, Any], cycle: str, stage: str, now: dt.datetime
) -> tuple[bool, dt.datetime | None]:
    """Whether a CONTROL item's mark says the planner handled the stage (a deferral only until `planned_until`),
    and that `planned_until` (None: no deferral on the item)."""
    until = dt.datetime.fromisoformat(str(item["planned_until"])) if item.get("planned_until") else None
    marked = item.get("planned") == stage_mark(cycle, stage)
    return marked and (until is None or now < until), until


@dataclass(frozen=True)
class ClaimWrite:
    """A stage the planner takes: PLANNED (a job follows), DEFERRED until `retry_after`, or SUPPRESSED."""

    key: ClaimKey
    borrower_id: str
    state: ClaimState
    reason: str | None = None
    retry_after: dt.datetime | None = None
    record_id: str | None = None


def _pointer_records(pointer: dict[str, Any]) -> list[tuple[str, str]]:
    return [(str(r["loan_id"]), str(r["record_id"])) for r in pointer.get("records") or []]


def _transact(items: list[Write]) -> list[CancellationReason] | None:
    """One TransactWriteItems; None when it went through, else its cancellation reasons (one per item)."""
    try:
        dynamodb().transact_write_items(TransactItems=items)
    except ClientError as exc:
        reasons = cancellation_reasons(exc)
        if len(reasons) != len(items):
            raise
        return reasons
    return None


class StateRepository:
    def __init__(self, table: str, phone_keys: PhoneKeys | None = None, planning_shards: int = 1) -> None:
        self.table = table
        self.phone_keys = phone_keys
        self.planning_shards = planning_shards  # the deployment's PlanningShards: how pokes are keyed

    def phone_partition(self, phone: str) -> str:
        """The partition of StateTable items about a number: its keyed hash, never the number."""
        if self.phone_keys is None:
            raise RuntimeError("this StateRepository was built without phone keys (PHONE_HASH_KEY)")
        return self.phone_keys.partition(phone)

    def _owner_partition(self, owner: str) -> str:
        """A notice owner `PHONE#e164` becomes the number's hashed partition; `LOAN#id` stays."""
        if owner.startswith(LEGACY_PHONE_PREFIX):
            return self.phone_partition(owner.removeprefix(LEGACY_PHONE_PREFIX))
        return owner

    # ---------------------------------------------------------------- reads
    def _batch_get(self, keys: list[RawItem]) -> list[dict[str, Any]]:
        return [from_item(item) for item in batch_get(self.table, keys)]

    def load(
        self, claims: list[ClaimKey], phones: list[str]
    ) -> tuple[dict[ClaimKey, SendClaim], dict[str, LoanControl], set[str]]:
        """Claims, controls and opted-out phones for a set of loans, in batched reads."""
        keys = [claim_key(*k) for k in claims]
        keys += [control_key(loan_id) for loan_id, _, _ in claims]
        by_partition: dict[str, str] = {}
        for phone in phones:
            by_partition[self.phone_partition(phone)] = phone
            by_partition[LEGACY_PHONE_PREFIX + phone] = phone  # dual read: an opt-out from before the hash
        keys += [optout_key(partition) for partition in by_partition]
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
            elif sk == "OPTOUT" and pk in by_partition:
                opted_out.add(by_partition[pk])
        return found_claims, controls, opted_out

    # ---------------------------------------------------------------- claims
    def take_claims(self, writes: list[ClaimWrite], now: dt.datetime) -> dict[ClaimKey, SendClaim | None]:
        """Take each stage unless its claim exists (or is DEFERRED to later), marking it on the CONTROL item.

        Per stage one conditional Put of the claim and one Update of the loan's CONTROL item (`planned`,
        `planned_until`), together in one TransactWriteItems (50 stages each): the mark is what lets the
        next run skip the stage without reading the claim. A claim that exists is never overwritten:
        PLANNED (its job may still be on the queue, however long it takes), SENDING or final. Returns,
        per key, None when taken now, else the claim as found (the write's own answer, no extra read).
        """
        found: dict[ClaimKey, SendClaim | None] = {}
        pending = list({w.key: w for w in writes}.values())
        for _ in range(TRANSACTION_ATTEMPTS):
            retry: list[ClaimWrite] = []
            for start in range(0, len(pending), CLAIMS_PER_TRANSACTION):
                chunk = pending[start : start + CLAIMS_PER_TRANSACTION]
                items = [entry for w in chunk for entry in (self._claim_put(w, now), self._mark_update(w))]
                reasons = _transact(items)
                if reasons is None:
                    found.update((w.key, None) for w in chunk)
                    continue
                for i, write in enumerate(chunk):
                    claim, mark = reasons[2 * i], reasons[2 * i + 1]
                    if claim.get("Code") == "ConditionalCheckFailed":
                        old = claim.get("Item")
                        found[write.key] = SendClaim.model_validate(from_item(old)) if old else None
                    elif {claim.get("Code"), mark.get("Code")} <= {None, "None", "TransactionConflict"}:
                        retry.append(write)  # cancelled by another item, or a concurrent write: again
                    else:
                        raise RuntimeError(f"claim transaction refused: {claim.get('Code')} / {mark.get('Code')}")
            pending = retry
            if not pending:
                return found
        raise RuntimeError(f"{len(pending)} claim(s) still conflicting after {TRANSACTION_ATTEMPTS} attempts")

    def give_back(self, keys: list[ClaimKey], now: dt.datetime) -> None:
        """Undo `take_claims` for stages whose job SQS did not take: the claim (PLANNED at `now` only) and the mark go.

        The next run then plans them again; a job that SQS took after all finds no claim and is dropped
        by the sender (`SendJobLinesNotPlanned`), so the stage still goes out once.
        """
        pending = list(dict.fromkeys(keys))
        for _ in range(TRANSACTION_ATTEMPTS):
            retry: list[ClaimKey] = []
            for start in range(0, len(pending), CLAIMS_PER_TRANSACTION):
                chunk = pending[start : start + CLAIMS_PER_TRANSACTION]
                items = [entry for key in chunk for entry in (self._claim_delete(key, now), self._mark_removal(key))]
                reasons = _transact(items)
                if reasons is None:
                    continue
                # A claim no longer PLANNED at `now` was taken by a sender (or by nobody): leave it. The
                # others were cancelled with it, or by a concurrent write: give them back again.
                retry += [key for i, key in enumerate(chunk) if reasons[2 * i].get("Code") != "ConditionalCheckFailed"]
            pending = retry
            if not pending:
                return
        raise RuntimeError(f"{len(pending)} claim(s) could not be given back")

    def mark_deferred(self, key: ClaimKey, retry_after: dt.datetime) -> None:
        """Note on the CONTROL mark that the stage was deferred (by the sender) until `retry_after`.

        Runs that trust the marks then come back to the stage at that time instead of skipping it for good.
        Only while the mark is still this stage's.
        """
        loan_id, cycle, stage = key
        conditional_write(
            {
                "Update": {
                    "TableName": self.table,
                    "Key": control_key(loan_id),
                    "UpdateExpression": "SET planned_until = :until",
                    "ConditionExpression": "planned = :mark",
                    "ExpressionAttributeValues": {
                        ":until": {"S": utc_iso(retry_after)},
                        ":mark": {"S": stage_mark(cycle, stage)},
                    },
                }
            }
        )

    def _claim_put(self, write: ClaimWrite, now: dt.datetime) -> Write:
        values = self._claim_values(write.key, write.borrower_id, write.state, now)
        values.update(reason=write.reason, record_id=write.record_id)
        values["retry_after"] = utc_iso(write.retry_after) if write.retry_after else None
        return {
            "Put": {
                "TableName": self.table,
                "Item": to_item(values),
                "ConditionExpression": "attribute_not_exists(pk) OR (#s = :deferred AND retry_after <= :now)",
                "ExpressionAttributeNames": {"#s": "state"},
                "ExpressionAttributeValues": {
                    ":deferred": {"S": ClaimState.DEFERRED.value},
                    ":now": {"S": utc_iso(now)},
                },
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def _mark_update(self, write: ClaimWrite) -> Write:
        loan_id, cycle, stage = write.key
        values: RawItem = {":mark": {"S": stage_mark(cycle, stage)}, ":loan": {"S": loan_id}}
        expression = "SET planned = :mark, loan_id = if_not_exists(loan_id, :loan)"
        if write.retry_after is not None:
            values[":until"] = {"S": utc_iso(write.retry_after)}
            expression += ", planned_until = :until"
        else:
            expression += " REMOVE planned_until"
        return {
            "Update": {
                "TableName": self.table,
                "Key": control_key(loan_id),
                "UpdateExpression": expression,
                "ExpressionAttributeValues": values,
            }
        }

    def _claim_delete(self, key: ClaimKey, now: dt.datetime) -> Write:
        return {
            "Delete": {
                "TableName": self.table,
                "Key": claim_key(*key),
                "ConditionExpression": "#s = :planned AND updated_at = :now",
                "ExpressionAttributeNames": {"#s": "state"},
                "ExpressionAttributeValues": {":planned": {"S": ClaimState.PLANNED.value}, ":now": {"S": utc_iso(now)}},
            }
        }

    def _mark_removal(self, key: ClaimKey) -> Write:
        return {
            "Update": {
                "TableName": self.table,
                "Key": control_key(key[0]),
                "UpdateExpression": "REMOVE planned, planned_until",
            }
        }

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
        put: Write = {"Put": {"TableName": self.table, "Item": to_item(values)}}
        if only_from:
            names: RawItem = {f":s{i}": {"S": s.value} for i, s in enumerate(only_from)}
            put["Put"]["ConditionExpression"] = f"#s IN ({', '.join(names)})"
            put["Put"]["ExpressionAttributeNames"] = {"#s": "state"}
            put["Put"]["ExpressionAttributeValues"] = names
        return conditional_write(put).ok

    def claim_transition(
        self, key: ClaimKey, to: ClaimState, now: dt.datetime, from_state: ClaimState, **extra: Any
    ) -> Write:
        """The Update request moving a claim between states (conditional on the current one)."""
        return self._state_update(claim_key(*key), to, now, from_state, **extra)

    def _state_update(
        self, key: RawItem, to: ClaimState, now: dt.datetime, from_state: ClaimState, **extra: Any
    ) -> Write:
        """An Update moving the item at `key` (a send or notice claim) from `from_state` to `to`, setting `extra`."""
        names = {"#s": "state"}
        values: RawItem = {":to": {"S": to.value}, ":from": {"S": from_state.value}, ":now": {"S": utc_iso(now)}}
        sets = ["#s = :to", "updated_at = :now"]
        for i, (name, value) in enumerate(sorted(extra.items())):
            names[f"#x{i}"] = name
            values[f":x{i}"] = to_item({"v": value})["v"]
            sets.append(f"#x{i} = :x{i}")
        return {
            "Update": {
                "TableName": self.table,
                "Key": key,
                "UpdateExpression": "SET " + ", ".join(sets),
                "ConditionExpression": "#s = :from",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

    def transition(self, key: ClaimKey, to: ClaimState, now: dt.datetime, from_state: ClaimState, **extra: Any) -> bool:
        """Move a claim between states with one conditional UpdateItem; False if it was not in from_state."""
        return conditional_write(self.claim_transition(key, to, now, from_state, **extra)).ok

    # ---------------------------------------------------------------- helpers
    def _claim_values(self, key: ClaimKey, borrower_id: str, state: ClaimState, now: dt.datetime) -> dict[str, Any]:
        loan_id, cycle, stage = key
        try:
            expires_at: int | None = expiry(dt.date.fromisoformat(cycle), CLAIM_RETENTION_DAYS)
        except ValueError:
            expires_at = None  # not a date: kept (to_item leaves None out)
        return {
            "pk": f"LOAN#{loan_id}",
            "sk": f"SEND#{cycle}#{stage}",
            "loan_id": loan_id,
            "cycle": cycle,
            "stage": stage,
            "borrower_id": borrower_id,
            "state": state.value,
            "updated_at": utc_iso(now),
            "expires_at": expires_at,
        }

    # ---------------------------------------------------------------- borrower events (LoanEventsFunction)
    def get_control(self, loan_id: str) -> LoanControl | None:
        item = dynamodb().get_item(TableName=self.table, Key=control_key(loan_id), ConsistentRead=True)
        return LoanControl.model_validate(from_item(item["Item"])) if "Item" in item else None

    def update_control(
        self, loan_id: str, aspect: str, event_time: dt.datetime, sets: dict[str, Any], removes: tuple[str, ...] = ()
    ) -> bool:
        """Apply one aspect (dispute, pause, plan) of the CONTROL item, only if `event_time` is newer.

        The aspect's last event time is kept on the item: a redelivered or older event of the
        same aspect changes nothing (False), whatever order EventBridge delivers them in.
        """
        stamp = f"{aspect}_event_at"
        names: dict[str, str] = {"#at": stamp, "#loan": "loan_id"}
        values: RawItem = {":at": {"S": utc_iso(event_time)}, ":loan": {"S": loan_id}}
        assignments = ["#at = :at", "#loan = :loan"]
        for i, (name, value) in enumerate(sorted(sets.items())):
            names[f"#s{i}"] = name
            values[f":s{i}"] = to_item({"v": value})["v"]
            assignments.append(f"#s{i} = :s{i}")
        expression = "SET " + ", ".join(assignments)
        if removes:
            names.update({f"#r{i}": name for i, name in enumerate(removes)})
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(removes)))
        return conditional_write(
            {
                "Update": {
                    "TableName": self.table,
                    "Key": control_key(loan_id),
                    "UpdateExpression": expression,
                    "ConditionExpression": "attribute_not_exists(#at) OR #at < :at",
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": values,
                }
            }
        ).ok

    # ---------------------------------------------------------------- the planner's agenda
    def _poke_keys(self, shard: int, shards: int) -> list[RawItem]:
        """The poke items a shard watches: every shard's, and those of the deployment's shards its buckets are in."""
        watched = {bucket % self.planning_shards for bucket in buckets_of_shard(shard, shards)}
        return [POKE_KEY, *(shard_poke_key(s, self.planning_shards) for s in sorted(watched))]

    def planner_agenda(self, shard: int, shards: int) -> tuple[PlannerAgenda | None, int]:
        """The shard's agenda (None before its first complete run) and the current poke version it watches."""
        key = agenda_key(shard, shards)
        found = {str(item["sk"]): item for item in self._batch_get([key, *self._poke_keys(shard, shards)])}
        agenda = found.pop(key["sk"]["S"], None)
        return (
            PlannerAgenda.model_validate(agenda) if agenda is not None else None,
            sum(int(item.get("version", 0)) for item in found.values()),
        )

    def save_planner_agenda(self, shard: int, shards: int, agenda: PlannerAgenda) -> None:
        item = {
            "wake_at": utc_iso(agenda.wake_at),
            "read_at": utc_iso(agenda.read_at),
            "poke_version": agenda.poke_version,
        }
        dynamodb().put_item(TableName=self.table, Item={**agenda_key(shard, shards), **to_item(item)})

    def wake_planner(self, bucket: int | None = None) -> None:
        """Something a planner shard read changed (a borrower event, a send-time deferral): read again.

        With the loan's bucket only the shard holding it wakes; without, every shard.
        """
        self._poke(POKE_KEY if bucket is None else shard_poke_key(self._shard_of(bucket), self.planning_shards))

    def wake_planners(self, buckets: Iterable[int]) -> int:
        """Wake the shards holding these buckets (the loans of a stream batch), each once however many of its
        loans there are: the poke items are few and hot. Returns how many shards were woken."""
        shards = sorted({self._shard_of(bucket) for bucket in buckets})
        for shard in shards:
            self._poke(shard_poke_key(shard, self.planning_shards))
        return len(shards)

    def _shard_of(self, bucket: int) -> int:
        """The deployment's shard (PlanningShards) whose poke a loan of this bucket bumps."""
        if not 0 <= bucket < LADDER_BUCKETS:
            raise ValueError(f"bucket must be in 0..{LADDER_BUCKETS - 1}, got {bucket}")
        return bucket % self.planning_shards

    def _poke(self, key: RawItem) -> None:
        dynamodb().update_item(
            TableName=self.table,
            Key=key,
            UpdateExpression="ADD #v :bump",
            ExpressionAttributeNames={"#v": "version"},
            ExpressionAttributeValues={":bump": {"N": "1"}},
        )

    def note_failed_delivery(self, loan_id: str, at: dt.datetime) -> None:
        """Mark the loan's CONTROL item: one of its SMS failed (idempotent; escalation's hint)."""
        dynamodb().update_item(
            TableName=self.table,
            Key=control_key(loan_id),
            UpdateExpression="SET #loan = :loan, #at = :at",
            ExpressionAttributeNames={"#loan": "loan_id", "#at": "last_failed_delivery_at"},
            ExpressionAttributeValues={":loan": {"S": loan_id}, ":at": {"S": utc_iso(at)}},
        )

    def clear_promise(self, loan_id: str, promised_date: dt.date) -> bool:
        """Forget a kept promise (only the one read: a newer promise stays)."""
        return conditional_write(
            {
                "Update": {
                    "TableName": self.table,
                    "Key": control_key(loan_id),
                    "UpdateExpression": "REMOVE promised_date, promise_amount",
                    "ConditionExpression": "promised_date = :d",
                    "ExpressionAttributeValues": {":d": {"S": promised_date.isoformat()}},
                }
            }
        ).ok

    def note_broken_promise(self, loan_id: str, promised_date: dt.date) -> None:
        """Remember a promise that passed unkept (a string-set ADD: idempotent, whatever else the item holds)."""
        dynamodb().update_item(
            TableName=self.table,
            Key=control_key(loan_id),
            UpdateExpression="SET #loan = if_not_exists(#loan, :loan) ADD #broken :date",
            ExpressionAttributeNames={"#loan": "loan_id", "#broken": "broken_promises"},
            ExpressionAttributeValues={":loan": {"S": loan_id}, ":date": {"SS": [promised_date.isoformat()]}},
        )

    def opt_out(self, phone: str, source: str, source_id: str, now: dt.datetime) -> str:
        """Add the number to the product's opt-out list; returns the source_id that opted it out.

        Idempotent: when the number is already opted out, the item (and its source) is kept. The
        item is keyed by the number's hash and holds no number. An opt-out from before the hash is
        moved to the hashed key first (so it keeps its source).
        """
        legacy = self._legacy_optout(phone)
        if legacy is not None:
            source, source_id, opted_at = (
                str(legacy.get("source", source)),
                str(legacy.get("source_id", source_id)),
                str(legacy.get("opted_out_at", utc_iso(now))),
            )
        else:
            opted_at = utc_iso(now)
        item = {
            **optout_key(self.phone_partition(phone)),
            **to_item({"source": source, "source_id": source_id, "opted_out_at": opted_at}),
        }
        put = conditional_write(
            {"Put": {"TableName": self.table, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}}
        )
        if not put.ok:  # opted out already: that opt-out and its source stay
            source_id = str((put.item or {}).get("source_id", ""))
        if legacy is not None:
            dynamodb().delete_item(TableName=self.table, Key=optout_key(LEGACY_PHONE_PREFIX + phone))
        return source_id

    def opt_in(self, phone: str) -> None:
        dynamodb().delete_item(TableName=self.table, Key=optout_key(self.phone_partition(phone)))
        dynamodb().delete_item(TableName=self.table, Key=optout_key(LEGACY_PHONE_PREFIX + phone))

    def opted_out_among(self, phones: list[str]) -> set[str]:
        """Which of these numbers already have a (hashed) opt-out item: keys only, 100 a BatchGetItem."""
        by_partition = {self.phone_partition(phone): phone for phone in phones}
        items = batch_get(self.table, [optout_key(partition) for partition in by_partition], projection="pk")
        return {by_partition[str(item["pk"]["S"])] for item in items}

    def opt_out_sync_cursor(self) -> str | None:
        """Where the last opt-out sync stopped in SNS's list (its page token), if it stopped early."""
        item = dynamodb().get_item(TableName=self.table, Key=OPT_OUT_SYNC_KEY, ConsistentRead=True)
        return str(item["Item"]["next_token"]["S"]) if "Item" in item else None

    def save_opt_out_sync_cursor(self, next_token: str | None) -> None:
        if next_token is None:
            dynamodb().delete_item(TableName=self.table, Key=OPT_OUT_SYNC_KEY)
        else:
            item = {**OPT_OUT_SYNC_KEY, "next_token": {"S": next_token}}
            dynamodb().put_item(TableName=self.table, Item=item)

    def _legacy_optout(self, phone: str) -> dict[str, Any] | None:
        found = dynamodb().get_item(
            TableName=self.table, Key=optout_key(LEGACY_PHONE_PREFIX + phone), ConsistentRead=True
        )
        return from_item(found["Item"]) if "Item" in found else None

    # ---------------------------------------------------------------- erasure (BorrowerErasureRequested)
    def forget_number(self, phone: str, now: dt.datetime) -> int:
        """Remove every item keyed by the raw number (written before the hash); keep its opt-out, hashed.

        Idempotent and safe to resume: the opt-out is rewritten under the hash before any raw
        item is deleted. Returns how many raw items were deleted. Items keyed by the hash hold
        no number and stay: they are what keeps an opt-out working after the erasure.
        """
        if self._legacy_optout(phone) is not None:
            self.opt_out(phone, "legacy", "", now)  # moves it under the hash, then deletes the raw one
        raw = list(
            query_items(
                TableName=self.table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": LEGACY_PHONE_PREFIX + phone}},
                ProjectionExpression="pk, sk",
                ConsistentRead=True,
            )
        )
        for item in raw:
            dynamodb().delete_item(TableName=self.table, Key=to_item({"pk": item["pk"], "sk": item["sk"]}))
        return len(raw)

    def erasure(self, borrower_id: str) -> dict[str, Any] | None:
        item = dynamodb().get_item(TableName=self.table, Key=erasure_key(borrower_id), ConsistentRead=True)
        return from_item(item["Item"]) if "Item" in item else None

    def note_erasure(
        self, borrower_id: str, event_id: str, now: dt.datetime, done: dict[str, int] | None = None
    ) -> None:
        """The erasure's evidence, without personal data: when first requested and last run; once a
        run has finished, `erased_at` and the counts of what it erased (added up over runs)."""
        values: dict[str, Any] = {":now": utc_iso(now), ":event": event_id}
        expression = "SET requested_at = if_not_exists(requested_at, :now), last_run_at = :now, last_event_id = :event"
        if done is not None:
            expression += ", erased_at = :now ADD " + ", ".join(f"{name} :{name}" for name in done)
            values.update({f":{name}": count for name, count in done.items()})
        dynamodb().update_item(
            TableName=self.table,
            Key=erasure_key(borrower_id),
            UpdateExpression=expression,
            ExpressionAttributeValues=to_item(values),
        )

    # ---------------------------------------------------------------- service notices (one SMS per event)
    def notice_take(self, owner: str, notice: str, to: ClaimState, now: dt.datetime, **extra: Any) -> Write:
        """A transaction Put taking the notice in state `to` (SENDING before Publish; SUPPRESSED when it will not go).

        Only while it is absent or PLANNED (given back after a throttled Publish). When the condition
        fails the notice comes back as found (ALL_OLD), so its state is known without a read. An owner
        `PHONE#e164` is stored under the number's hash.
        """
        values = {
            "pk": self._owner_partition(owner),
            "sk": f"NOTICE#{notice}",
            "state": to.value,
            "updated_at": utc_iso(now),
            "expires_at": expiry(now, NOTICE_RETENTION_DAYS),
            **extra,
        }
        return {
            "Put": {
                "TableName": self.table,
                "Item": to_item(values),
                "ConditionExpression": "attribute_not_exists(pk) OR #s = :planned",
                "ExpressionAttributeNames": {"#s": "state"},
                "ExpressionAttributeValues": {":planned": {"S": ClaimState.PLANNED.value}},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def notice_transition(
        self, owner: str, notice: str, to: ClaimState, now: dt.datetime, from_state: ClaimState, **extra: Any
    ) -> Write:
        """A transaction Update moving a notice between states (conditional on the current one; ALL_OLD on failure)."""
        update = self._state_update(notice_key(self._owner_partition(owner), notice), to, now, from_state, **extra)
        update["Update"]["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        return update

    # ---------------------------------------------------------------- the sender's transactions (dunning.sender)
    def claim_update(
        self, key: ClaimKey, to: ClaimState, now: dt.datetime, from_state: ClaimState, **extra: Any
    ) -> Write:
        """`claim_transition` that hands back the claim as it is when its condition fails (no read)."""
        update = self.claim_transition(key, to, now, from_state, **extra)
        update["Update"]["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        return update

    def settle_put(
        self,
        key: ClaimKey,
        borrower_id: str,
        state: ClaimState,
        now: dt.datetime,
        only_from: tuple[ClaimState, ...],
        **values: Any,
    ) -> Write:
        """A transaction Put settling the claim (SUPPRESSED, DEFERRED), only from one of `only_from`."""
        item = self._claim_values(key, borrower_id, state, now)
        item.update({k: utc_iso(v) if isinstance(v, dt.datetime) else v for k, v in values.items()})
        states: RawItem = {f":s{i}": {"S": s.value} for i, s in enumerate(only_from)}
        return {
            "Put": {
                "TableName": self.table,
                "Item": to_item(item),
                "ConditionExpression": f"#s IN ({', '.join(states)})",
                "ExpressionAttributeNames": {"#s": "state"},
                "ExpressionAttributeValues": states,
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def not_opted_out(self, phone: str) -> list[Write]:
        """ConditionChecks that the number is on neither opt-out item (hashed, and the raw key from before the hash)."""
        return [
            {
                "ConditionCheck": {
                    "TableName": self.table,
                    "Key": optout_key(partition),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
            for partition in (self.phone_partition(phone), LEGACY_PHONE_PREFIX + phone)
        ]

    def take_cap(self, borrower_id: str, day: dt.date, per_day: int, per_week: int, expires_at: int) -> Write:
        """Count one SMS on the borrower's local `day` if both caps allow it: one conditional Update, no read.

        The item keeps the local days of the borrower's latest `max(per_day, per_week)` SMS, newest
        first (`sent1`, `sent2`, ...). Another SMS today is allowed while the per_day-th newest is
        older than today, and this week while the per_week-th newest is older than 6 days ago: the
        rolling 7 days of `compliance.cap_reason`. Taking shifts the list down by one day.
        """
        slots = max(per_day, per_week)
        sets = ["sent1 = :day", "expires_at = :exp"]
        sets += [f"sent{n} = if_not_exists(sent{n - 1}, :none)" for n in range(2, slots + 1)]
        return {
            "Update": {
                "TableName": self.table,
                "Key": cap_key(borrower_id),
                "UpdateExpression": "SET " + ", ".join(sets),
                "ConditionExpression": (
                    f"(attribute_not_exists(sent{per_day}) OR sent{per_day} < :day)"
                    f" AND (attribute_not_exists(sent{per_week}) OR sent{per_week} < :week)"
                ),
                "ExpressionAttributeValues": {
                    ":day": {"S": day.isoformat()},
                    ":week": {"S": (day - dt.timedelta(days=6)).isoformat()},
                    ":none": {"S": NO_DAY},
                    ":exp": {"N": str(expires_at)},
                },
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def give_back_cap(self, borrower_id: str, day: dt.date, per_day: int, per_week: int) -> Write:
        """Undo one `take_cap` of `day` (its SMS never left): the list shifts back, if its newest is still that day."""
        slots = max(per_day, per_week)
        expression = " ".join(
            part
            for part in (
                "SET " + ", ".join(f"sent{n} = sent{n + 1}" for n in range(1, slots)) if slots > 1 else "",
                f"REMOVE sent{slots}",
            )
            if part
        )
        return {
            "Update": {
                "TableName": self.table,
                "Key": cap_key(borrower_id),
                "UpdateExpression": expression,
                "ConditionExpression": "sent1 = :day",
                "ExpressionAttributeValues": {":day": {"S": day.isoformat()}},
            }
        }

    def message_pointer(self, message_id: str, records: list[tuple[str, str]], expires_at: int) -> Write:
        """A transaction Put of `MSG#id / MSG`: the (loan_id, record_id) of each record of one SNS message."""
        item = {"records": [{"loan_id": loan, "record_id": rid} for loan, rid in records], "expires_at": expires_at}
        return {"Put": {"TableName": self.table, "Item": {**message_key(message_id), **to_item(item)}}}

    def message_outcome(
        self, message_id: str, outcome: str, now: dt.datetime
    ) -> tuple[list[tuple[str, str]] | None, str | None]:
        """Note a carrier outcome on the message's pointer (first final outcome wins) and learn its records: no read.

        One UpdateItem: SET `outcome` unless the pointer holds another one, returning the pointer (ALL_NEW,
        or ALL_OLD when the condition fails). Returns (records, None) when the outcome is the pointer's now
        (first time or a replay: apply it to the records), (records, the other outcome) when the pointer
        already holds another, and (None, None) when the message has no pointer.
        """
        written = conditional_write(
            {
                "Update": {
                    "TableName": self.table,
                    "Key": message_key(message_id),
                    "UpdateExpression": "SET outcome = :o, outcome_at = if_not_exists(outcome_at, :now)",
                    "ConditionExpression": "attribute_exists(pk) AND (attribute_not_exists(outcome) OR outcome = :o)",
                    "ExpressionAttributeValues": {":o": {"S": outcome}, ":now": {"S": utc_iso(now)}},
                }
            },
            return_new=True,
        )
        if written.ok:
            return _pointer_records(written.item or {}), None
        if not written.item:
            return None, None
        return _pointer_records(written.item), str(written.item.get("outcome"))

    def handled_update(
        self,
        key: ClaimKey,
        state: ClaimState,
        now: dt.datetime,
        *,
        retry_after: dt.datetime | None = None,
        failed_at: dt.datetime | None = None,
    ) -> Write:
        """A transaction Update of the loan's CONTROL item: the stage the sender settled last, for the planner.

        `handled` = `cycle#stage`, `handled_state` (SENT, SUPPRESSED, UNCERTAIN or DEFERRED),
        `handled_at`, and `handled_retry_after` for a DEFERRED stage: a planner reading CONTROL knows
        the stage is settled (or not before when) without reading its claim. With `failed_at`, also
        `last_failed_delivery_at` (escalation's hint, see `note_failed_delivery`).
        """
        loan_id, cycle, stage = key
        values: RawItem = {
            ":loan": {"S": loan_id},
            ":h": {"S": f"{cycle}#{stage}"},
            ":s": {"S": state.value},
            ":at": {"S": utc_iso(now)},
        }
        sets = ["#loan = if_not_exists(#loan, :loan)", "handled = :h", "handled_state = :s", "handled_at = :at"]
        if failed_at is not None:
            values[":failed"] = {"S": utc_iso(failed_at)}
            sets.append("last_failed_delivery_at = :failed")
        if retry_after is not None:
            values[":retry"] = {"S": utc_iso(retry_after)}
            sets.append("handled_retry_after = :retry")
        expression = "SET " + ", ".join(sets) + ("" if retry_after is not None else " REMOVE handled_retry_after")
        return {
            "Update": {
                "TableName": self.table,
                "Key": control_key(loan_id),
                "UpdateExpression": expression,
                "ExpressionAttributeNames": {"#loan": "loan_id"},
                "ExpressionAttributeValues": values,
            }
        }

    def failed_delivery_update(self, loan_id: str, at: dt.datetime) -> Write:
        """`note_failed_delivery` as a transaction Update (RecordDeliveryFunction, with the record's outcome)."""
        return {
            "Update": {
                "TableName": self.table,
                "Key": control_key(loan_id),
                "UpdateExpression": "SET #loan = if_not_exists(#loan, :loan), #at = :at",
                "ExpressionAttributeNames": {"#loan": "loan_id", "#at": "last_failed_delivery_at"},
                "ExpressionAttributeValues": {":loan": {"S": loan_id}, ":at": {"S": utc_iso(at)}},
            }
        }

    # ---------------------------------------------------------------- claims read back by a failed write (sender)
    def move_claim(
        self, key: ClaimKey, to: ClaimState, now: dt.datetime, from_state: ClaimState, **extra: Any
    ) -> tuple[bool, SendClaim | None]:
        """`transition`, and when its condition fails the claim as it is (returned by that same write).

        (True, None) when moved; (False, claim) when it was not in `from_state`; (False, None) when absent.
        """
        written = conditional_write(self.claim_transition(key, to, now, from_state, **extra))
        return written.ok, SendClaim.model_validate(written.item) if written.item and not written.ok else None

    def move_claim_with(
        self,
        writes: list[Write],
        key: ClaimKey,
        to: ClaimState,
        now: dt.datetime,
        from_state: ClaimState,
        **extra: Any,
    ) -> tuple[bool, SendClaim | None]:
        """`move_claim` and `writes` (TransactWriteItems entries) all or nothing, the claim's condition guarding all."""
        update = self.claim_update(key, to, now, from_state, **extra)
        refused = write_units([Unit(key, [*writes, update])])
        if not refused:
            return True, None
        found = refused[0].found
        if set(found) != {len(writes)}:  # only the claim carries a condition that can fail
            raise RuntimeError(f"claim write refused on entries {sorted(found)}, not on the claim")
        item = found[len(writes)]
        return False, SendClaim.model_validate(item) if item else None
