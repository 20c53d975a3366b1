"""SMS encoding and segment counts at every boundary (GSM 03.38 septets, UCS-2 code units)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dunning.compose.segments import GSM7_BASIC, GSM7_EXTENSION, is_gsm7, sms_encoding

EXTENSION_CHARS = "^{}\\[~]|€"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("", ("GSM-7", 1)),
        ("a" * 160, ("GSM-7", 1)),
        ("a" * 161, ("GSM-7", 2)),
        ("a" * 153 * 2, ("GSM-7", 2)),
        ("a" * (153 * 2 + 1), ("GSM-7", 3)),
        ("a" * 153 * 3, ("GSM-7", 3)),
        ("你" * 70, ("UCS-2", 1)),
        ("你" * 71, ("UCS-2", 2)),
        ("你" * 67 * 2, ("UCS-2", 2)),
        ("你" * (67 * 2 + 1), ("UCS-2", 3)),
    ],
)
def test_single_and_multipart_limits(body: str, expected: tuple[str, int]) -> None:
    assert sms_encoding(body) == expected


@pytest.mark.parametrize("char", list(EXTENSION_CHARS))
def test_extension_characters_count_two_septets(char: str) -> None:
    assert sms_encoding(char * 80) == ("GSM-7", 1)  # 160 septets
    assert sms_encoding(char * 81) == ("GSM-7", 2)  # 162 septets
    assert sms_encoding("a" * 159 + char) == ("GSM-7", 2)  # 161 septets, though 160 characters
    assert sms_encoding("a" * 158 + char) == ("GSM-7", 1)


def test_escape_sequence_is_never_split_across_parts() -> None:
    # 306 septets would fit two parts of 153, but the euro cannot straddle parts 1 and 2.
    body = "a" * 152 + "€" + "a" * 152
    assert sms_encoding(body) == ("GSM-7", 3)
    assert sms_encoding("a" * 151 + "€" + "a" * 153) == ("GSM-7", 2)


def test_emoji_counts_two_code_units() -> None:
    assert sms_encoding("😀" * 35) == ("UCS-2", 1)  # 70 code units
    assert sms_encoding("😀" * 35 + "a") == ("UCS-2", 2)
    assert sms_encoding("a" * 69 + "😀") == ("UCS-2", 2)  # 70 characters, 71 code units
    assert sms_encoding("😀" * 66) == ("UCS-2", 2)  # 33 emoji (66 code units) a part
    assert sms_encoding("😀" * 66 + "a") == ("UCS-2", 2)
    assert sms_encoding("😀" * 66 + "ab") == ("UCS-2", 3)
    # 134 code units, yet three parts: a pair cannot fill a part's 67th code unit.
    assert sms_encoding("😀" * 67) == ("UCS-2", 3)


def test_surrogate_pair_is_never_split_across_parts() -> None:
    assert sms_encoding("你" * 66 + "😀" + "你" * 66) == ("UCS-2", 3)
    assert sms_encoding("你" * 65 + "😀" + "你" * 67) == ("UCS-2", 2)


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Pay CN¥1,234.50 by Dec 1, 2026", "GSM-7"),  # ¥ (U+00A5) is in the basic table
        ("Pay ￥1,234.50", "UCS-2"),  # fullwidth yen is not
        ("It’s due", "UCS-2"),  # curly apostrophe
        ("“quoted”", "UCS-2"),
        ("Ça va, José, Müller, Øresund", "GSM-7"),
        ("ça va", "UCS-2"),  # only the capital C cedilla is in GSM 03.38
        ("Reply STOP to opt out", "GSM-7"),
        ("【信飞】回T退订", "UCS-2"),
        ("\x1b", "UCS-2"),  # the escape code itself is not a character one can send
    ],
)
def test_encoding_choice(text: str, encoding: str) -> None:
    assert sms_encoding(text)[0] == encoding
    assert is_gsm7(text) is (encoding == "GSM-7")


@given(st.text(alphabet=sorted(GSM7_BASIC), max_size=700))
def test_basic_gsm_text_matches_the_closed_form(body: str) -> None:
    n = len(body)
    assert sms_encoding(body) == ("GSM-7", 1 if n <= 160 else math.ceil(n / 153))


@given(st.text(alphabet=[*sorted(GSM7_BASIC | GSM7_EXTENSION), "你", "😀"], max_size=400), st.characters())
def test_appending_never_lowers_the_segment_count(body: str, extra: str) -> None:
    assert sms_encoding(body + extra)[1] >= sms_encoding(body)[1]
