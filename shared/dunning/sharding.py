"""How the open book is cut into shards (docs/contract.md#shard-contract): by borrower, never by due date.

Every loan falls in one of `LADDER_BUCKETS` buckets, a stable hash of its `borrower_id`, so all loans
of one borrower share a bucket (one SMS per borrower stays possible) and buckets are near-equal
whatever the due dates. A run over `shards` shards gives shard i the buckets b with b % shards == i:
every bucket, hence every loan, is in exactly one shard for any shards <= LADDER_BUCKETS.

The ladder index (`dal.ladder`) is partitioned coarser, by `bucket % INDEX_PARTITIONS`: a full read
of the ladder is then 64 Queries, not 1,024 (on a small book most buckets hold no loan of the
window, and every Query is an AWS call), and a key holds 1/64 of the open book, one shard's share
for any PlanningShards up to 64. A shard reads the partitions its buckets are in; with a shard count
that divides 64 it reads exactly its own loans, otherwise it also reads (and skips) other shards'.
"""

from __future__ import annotations

import hashlib

LADDER_BUCKETS = 1024
MAX_SHARDS = LADDER_BUCKETS  # a shard with no bucket would read nothing


def bucket_of(borrower_id: str) -> int:
    """The borrower's bucket: sha256 of the id, mod LADDER_BUCKETS (stable across processes and versions)."""
    digest = hashlib.sha256(borrower_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % LADDER_BUCKETS


def bucket_key(bucket: int) -> str:
    """The bucket as the index's partition key: 4 digits (`0042`)."""
    if not 0 <= bucket < LADDER_BUCKETS:
        raise ValueError(f"bucket must be in 0..{LADDER_BUCKETS - 1}, got {bucket}")
    return f"{bucket:04d}"


def check_shard(shard: int, shards: int) -> None:
    """A clear error for a shard outside the contract (0 <= shard < shards <= MAX_SHARDS)."""
    if not 1 <= shards <= MAX_SHARDS:
        raise ValueError(f"shards must be in 1..{MAX_SHARDS}, got {shards}")
    if not 0 <= shard < shards:
        raise ValueError(f"shard must be in 0..{shards - 1}, got {shard}")


def buckets_of_shard(shard: int, shards: int) -> list[int]:
    """The buckets of shard `shard` of `shards`, ascending."""
    check_shard(shard, shards)
    return list(range(shard, LADDER_BUCKETS, shards))


def shard_of_bucket(bucket: int, shards: int) -> int:
    return bucket % shards


INDEX_PARTITIONS = 64


def partition_key(bucket: int) -> str:
    """The ladder index's partition key (`ladder_part`) of a bucket: 2 digits."""
    return f"{bucket % INDEX_PARTITIONS:02d}"


def partitions_of_shard(shard: int, shards: int) -> list[int]:
    """The index partitions holding the shard's buckets, ascending."""
    return sorted({bucket % INDEX_PARTITIONS for bucket in buckets_of_shard(shard, shards)})


def in_shard(ladder_bucket: object, shard: int, shards: int) -> bool:
    """Whether an index item (its `ladder_bucket`) belongs to the shard."""
    return int(str(ladder_bucket)) % shards == shard
