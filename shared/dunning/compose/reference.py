"""The reference code printed in every SMS, so a borrower can check it with the official hotline."""

from __future__ import annotations

import hashlib
import unicodedata

# 32 symbols: digits and capitals without 0/O and 1/I, which are misread when spoken or typed.
REFERENCE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
REFERENCE_LENGTH = 6


def reference_code(loan_id: str, cycle: str, stage: str) -> str:
    """Six characters, the same for every retry of one (loan, cycle, stage) message.

    A hash, not a secret: the hotline looks the code up (with the caller's phone number) in the
    delivery records; 30 bits are enough to make a collision between one borrower's messages
    negligible, not to make codes globally unique.
    """
    # The separator keeps ("ab", "c") and ("a", "bc") apart.
    digest = hashlib.sha256("\x1f".join((loan_id, cycle, stage)).encode("utf-8")).digest()
    value = int.from_bytes(digest[:8], "big")
    chars = []
    for _ in range(REFERENCE_LENGTH):
        value, index = divmod(value, len(REFERENCE_ALPHABET))
        chars.append(REFERENCE_ALPHABET[index])
    return "".join(chars)


def is_reference_code(text: str) -> bool:
    """True when `text` could be a reference code (after upper-casing and trimming)."""
    code = text.strip().upper()
    return len(code) == REFERENCE_LENGTH and all(c in REFERENCE_ALPHABET for c in code)


def parse_reference_code(text: str) -> str:
    """The code as printed (upper case) from what someone typed, in any case or width; ValueError says what is wrong."""
    code = unicodedata.normalize("NFKC", text).strip().upper()
    if len(code) != REFERENCE_LENGTH:
        raise ValueError(f"a reference code has {REFERENCE_LENGTH} characters, got {len(code)}")
    wrong = sorted({c for c in code if c not in REFERENCE_ALPHABET})
    if wrong:
        raise ValueError(
            f"a reference code uses only {REFERENCE_ALPHABET} (never 0, O, 1 or I);"
            f" not {', '.join(repr(c) for c in wrong)}"
        )
    return code
