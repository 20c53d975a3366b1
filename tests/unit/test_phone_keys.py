"""The keyed hash that stands for a phone number in StateTable keys."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from dunning.dal.phone_keys import PhoneHasher
from dunning.models.events import BorrowerErasureRequested, LoanEventEnvelope

KEY = bytes(range(32))
NUMBERS = st.from_regex(r"\+[1-9][0-9]{7,14}", fullmatch=True)


def test_the_hash_is_hmac_sha256_of_the_number_spelled_in_letters() -> None:
    expected = hmac.new(KEY, b"+8613800138000", hashlib.sha256).hexdigest()
    assert PhoneHasher(KEY)("+8613800138000") == expected.translate(
        str.maketrans("0123456789abcdef", "abcdefghijklmnop")
    )


@given(NUMBERS)
def test_a_hash_is_stable_and_holds_no_digit_of_the_number(phone: str) -> None:
    hashed = PhoneHasher(KEY)(phone)
    assert hashed == PhoneHasher(KEY)(phone)
    assert len(hashed) == 64 and hashed.isalpha() and hashed.islower()
    assert not any(ch.isdigit() for ch in hashed)


@given(NUMBERS, NUMBERS)
def test_two_numbers_never_share_a_hash(first: str, second: str) -> None:
    assert (PhoneHasher(KEY)(first) == PhoneHasher(KEY)(second)) == (first == second)


def test_another_key_gives_another_hash_so_the_numbers_cannot_be_enumerated_without_it() -> None:
    other = bytes(reversed(range(32)))
    assert PhoneHasher(KEY)("+8613800138000") != PhoneHasher(other)("+8613800138000")


def test_a_short_key_is_refused_and_the_key_never_shows_in_repr() -> None:
    with pytest.raises(ValueError, match="256 bits"):
        PhoneHasher(b"short")
    assert KEY.hex() not in repr(PhoneHasher(KEY)) and "hidden" in repr(PhoneHasher(KEY))


def _erasure(detail: dict[str, str]) -> dict[str, object]:
    return {
        "version": "0",
        "id": "e-1",
        "detail-type": "BorrowerErasureRequested",
        "source": "com.example.privacy",
        "account": "123456789012",
        "time": "2026-11-20T02:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
    }


def test_an_erasure_event_is_parsed_with_its_number_normalised_to_e164() -> None:
    parsed = LoanEventEnvelope.model_validate(_erasure({"borrower_id": "B-1", "phone": "+86 138 0013 8000"})).root
    assert isinstance(parsed.detail, BorrowerErasureRequested)
    assert (parsed.detail.borrower_id, parsed.detail.phone) == ("B-1", "+8613800138000")


@pytest.mark.parametrize(
    "detail", [{"borrower_id": "B-1"}, {"phone": "+8613800138000"}, {"borrower_id": "", "phone": "+8613800138000"}]
)
def test_an_erasure_event_without_a_borrower_or_a_number_is_rejected(detail: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        LoanEventEnvelope.model_validate(_erasure(detail))
