"""Sharding by borrower (docs/contract.md#shard-contract): one shard per loan, borrowers together, shards even."""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dunning.sharding import LADDER_BUCKETS, bucket_key, bucket_of, buckets_of_shard, check_shard


@given(shards=st.integers(min_value=1, max_value=LADDER_BUCKETS))
def test_every_bucket_is_in_exactly_one_shard_for_any_shard_count(shards: int) -> None:
    owners = Counter(b for shard in range(shards) for b in buckets_of_shard(shard, shards))
    assert set(owners) == set(range(LADDER_BUCKETS))
    assert set(owners.values()) == {1}


@given(borrower_id=st.text(min_size=1, max_size=128), shards=st.integers(min_value=1, max_value=LADDER_BUCKETS))
def test_a_borrower_is_in_one_bucket_hence_one_shard(borrower_id: str, shards: int) -> None:
    bucket = bucket_of(borrower_id)
    assert bucket == bucket_of(borrower_id)  # stable
    assert [s for s in range(shards) if bucket in buckets_of_shard(s, shards)] == [bucket % shards]


def test_the_hash_is_sha256_mod_1024_and_never_changes() -> None:
    # Pinned: a change would move every loan to another bucket (a full re-index).
    assert [bucket_of(b) for b in ("B-0001", "borrower-42", "王小明")] == [404, 556, 249]
    assert bucket_of("B-0001") == int.from_bytes(hashlib.sha256(b"B-0001").digest()[:8], "big") % 1024
    assert bucket_key(7) == "0007" and bucket_key(1023) == "1023"


def test_shards_are_even_on_a_book_skewed_on_due_dates() -> None:
    """60 % of the due dates on 4 days: shards by borrower stay within 1.2 of the mean (issue 11)."""
    rng = random.Random(11)
    start = dt.date(2026, 11, 1)
    hot = [start + dt.timedelta(days=d) for d in (3, 10, 17, 24)]
    book = []
    for n in range(60_000):
        due = rng.choice(hot) if rng.random() < 0.6 else start + dt.timedelta(days=rng.randrange(60))
        book.append((f"B-{n // 2 if n % 5 == 0 else n}", due))  # some borrowers with two loans
    for shards in (8, 16, 64):
        sizes = Counter(bucket_of(borrower) % shards for borrower, _ in book)
        mean = len(book) / shards
        assert max(sizes.values()) / mean <= 1.2, (shards, max(sizes.values()) / mean)
        # What sharding by due date would give on the same book, for contrast.
        by_date = Counter(due.toordinal() % shards for _, due in book)
        assert max(by_date.values()) / mean > 1.2


@pytest.mark.parametrize(("shard", "shards"), [(0, 0), (1, 1), (-1, 4), (0, 1025)])
def test_a_shard_outside_the_contract_is_refused_by_name(shard: int, shards: int) -> None:
    with pytest.raises(ValueError, match="shard"):
        check_shard(shard, shards)
