"""Which shard a borrower's loans belong to (DESIGN 4.1): a stable hash of `borrower_id`.

The ladder is cut into LADDER_BUCKETS buckets by a hash of the borrower; shard i of n is the
buckets b with b % n == i. All loans of a borrower fall in one bucket, hence one shard, and
shards are near-equal whatever the due dates.
"""

from __future__ import annotations

import hashlib

LADDER_BUCKETS = 1024


def bucket_of(borrower_id: str) -> int:
    """The borrower's bucket: sha256 of the id, mod LADDER_BUCKETS (stable across runs and machines)."""
    return int.from_bytes(hashlib.sha256(borrower_id.encode("utf-8")).digest(), "big") % LADDER_BUCKETS


def buckets_of_shard(shard: int, shards: int) -> list[int]:
    """The buckets of shard `shard` of `shards`."""
    if not 0 <= shard < shards <= LADDER_BUCKETS:
        raise ValueError(f"shard must be in 0..{shards - 1} with 1 <= shards <= {LADDER_BUCKETS}, got {shard}/{shards}")
    return [bucket for bucket in range(LADDER_BUCKETS) if bucket % shards == shard]


def in_shard(borrower_id: str, shard: int | None, shards: int) -> bool:
    """Whether the borrower's loans belong to this shard (no shard: every shard)."""
    return shard is None or bucket_of(borrower_id) % shards == shard
