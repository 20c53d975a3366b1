"""Phone numbers as keys: a keyed hash of the number (HMAC-SHA256), never the number itself.

StateTable items about a number (opt-outs, opt-out confirmations) are keyed `PHONEHASH#<hash>`,
so the product's tables hold no number as a key, an erasure leaves nothing to find by number,
and an opt-out still matches the number after its owner is erased. The hash is keyed: without
the key, a table reader cannot enumerate the (small) space of phone numbers to reverse it.

The key is a 256-bit data key that KMS makes once (`GenerateDataKey` under the stack's
`PhoneHashKey`, envelope encryption) and that lives only wrapped, in StateTable's
`KEY / PHONE_HASH` item; each container unwraps it once (`Decrypt`) and keeps it in memory.
The first container that finds no key item makes it, with a conditional put: concurrent first
uses agree on one key. Rotating the KMS key is safe (KMS keeps old material for Decrypt);
replacing the data key is not: every stored hash would stop matching its number.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dunning.dal.aws import conditional_write, dynamodb, kms
from dunning.models.timestamps import utc_iso

if TYPE_CHECKING:
    from dunning.dal.aws import RawItem

KEY_ITEM: RawItem = {"pk": {"S": "KEY"}, "sk": {"S": "PHONE_HASH"}}
# Bound into the wrapped key (KMS encryption context) and required by the functions' IAM condition.
ENCRYPTION_CONTEXT = {"purpose": "dunning-phone-hash"}
HASH_PREFIX = "PHONEHASH#"
# Hex digits spelled as letters: a hash key never contains a digit, so never a run of a number's digits.
_AS_LETTERS = str.maketrans("0123456789abcdef", "abcdefghijklmnop")


class PhoneHasher:
    """The keyed hash of an E.164 number; pure once it has its key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the phone-hash key must be at least 256 bits")
        self._key = key

    def __call__(self, phone: str) -> str:
        digest = hmac.new(self._key, phone.encode("utf-8"), hashlib.sha256).hexdigest()
        return digest.translate(_AS_LETTERS)

    def __repr__(self) -> str:
        return "PhoneHasher(<key hidden>)"


@dataclass
class PhoneKeys:
    """The StateTable partition of a phone number, with the key loaded at first use (once per container)."""

    state_table: str
    kms_key: str
    _hasher: PhoneHasher | None = field(default=None, init=False, repr=False)

    def hash(self, phone: str) -> str:
        if self._hasher is None:
            endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
            self._hasher = PhoneHasher(_data_key(self.state_table, self.kms_key, endpoint))
        return self._hasher(phone)

    def partition(self, phone: str) -> str:
        """`PHONEHASH#<hash>`: what StateTable items about this number are keyed by."""
        return HASH_PREFIX + self.hash(phone)


@functools.cache
def _data_key(state_table: str, kms_key: str, endpoint: str) -> bytes:
    """The plaintext data key, unwrapped once per container (and per endpoint, for the local runner)."""
    found = dynamodb().get_item(TableName=state_table, Key=KEY_ITEM, ConsistentRead=True).get("Item")
    if found is None:
        made = kms().generate_data_key(KeyId=kms_key, KeySpec="AES_256", EncryptionContext=ENCRYPTION_CONTEXT)
        item: RawItem = {
            **KEY_ITEM,
            "wrapped_key": {"B": made["CiphertextBlob"]},
            "kms_key": {"S": str(made["KeyId"])},
            "created_at": {"S": utc_iso(dt.datetime.now(dt.UTC))},
        }
        put = conditional_write(
            {"Put": {"TableName": state_table, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}}
        )
        if put.ok:
            return bytes(made["Plaintext"])
        # Another container made the key first: use that one (the refused write returned it).
        wrapped = bytes((put.item or {})["wrapped_key"])
    else:
        wrapped = bytes(found["wrapped_key"]["B"])
    unwrapped = kms().decrypt(CiphertextBlob=wrapped, KeyId=kms_key, EncryptionContext=ENCRYPTION_CONTEXT)
    return bytes(unwrapped["Plaintext"])
