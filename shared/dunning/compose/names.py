"""Which borrower names may be printed into an SMS: upstream text is data, never message content.

An official SMS must never carry a link, a number or words the lender did not write (docs/contract.md#loanstable-item),
so a name is printed only when it looks like a person's name; anything else is withheld and the
SMS greets without it. Allow-listed, not block-listed: letters of any script, spaces and a few
name marks, nothing else.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

# Longer upstream text is not a name but a message (a phishing line, a pasted note).
MAX_NAME_LENGTH: Final = 40
# "María de los Ángeles García López" has 6; more words read as a sentence, not a name.
MAX_NAME_WORDS: Final = 6
# Marks inside names: hyphen, apostrophe, full stop (initials, titles) and the middle dots of
# transliterated names (李·明, ジョン・スミス).
NAME_MARKS: Final = frozenset("-'.·・")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u02bc": "'"})  # O’Brien is O'Brien (and stays GSM-7)
_LETTER = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo"})
_COMBINING = frozenset({"Mn", "Mc"})  # accents and vowel signs that are part of a letter
# Letters to Unicode that print as nothing (Hangul fillers): an invisible name is no name.
_INVISIBLE_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")
# Chinese numerals are letters to Unicode; a run of them spells a number (一三八零零…), not a name.
_CHINESE_NUMERALS = re.compile(r"[零〇一二三四五六七八九十百千万壹贰叁肆伍陆柒捌玖拾]{4,}")


def _unprintable(char: str) -> bool:
    """Control, format (U+200B, U+202E …), unassigned or private-use, line breaks, invisible letters."""
    category = unicodedata.category(char)
    return category[0] == "C" or category in ("Zl", "Zp") or char in _INVISIBLE_LETTERS


def _word_problem(word: str) -> str | None:
    """Why one space-separated word is not part of a name, or None."""
    previous = ""
    for char in word:
        category = unicodedata.category(char)
        if category in _LETTER:
            kind = "letter"
        elif category in _COMBINING:
            if previous not in ("letter", "combining"):
                return "stray_mark"
            kind = "combining"
        elif char in NAME_MARKS:
            if previous not in ("letter", "combining"):
                return "stray_mark"  # a word starts with a letter; no two marks in a row
            kind = "mark"
        elif category.startswith("N"):
            return "digits"
        else:
            return "not_a_name_character"
        previous = kind
    if previous == "mark" and not word.endswith("."):
        return "stray_mark"  # "Smith-" or "O'" — only an initial or a title ends with a mark
    pieces = word.rstrip(".").split(".")
    if len(pieces) > 1 and any(len(piece) != 1 for piece in pieces):
        return "looks_like_a_link"  # initials (J.R.R.) have one letter between dots; www.x.cn does not
    return None


def name_problem(raw: str) -> str | None:
    """Why `raw` must not be printed as a borrower's name (a short reason, safe to log), or None."""
    text = unicodedata.normalize("NFKC", raw).translate(_APOSTROPHES)
    if any(_unprintable(c) for c in text):
        return "control_or_invisible_characters"
    words = text.split()
    if not words:
        return "empty"
    if len(" ".join(words)) > MAX_NAME_LENGTH:
        return "too_long"
    if len(words) > MAX_NAME_WORDS:
        return "too_many_words"
    for word in words:
        problem = _word_problem(word)
        if problem is not None:
            return problem
    if _CHINESE_NUMERALS.search(text):
        return "digits"
    return None


def printable_name(raw: str) -> str | None:
    """The name as it may be printed (NFKC, single spaces, ASCII apostrophe), or None to withhold it.

    `张三`, `Zhang San`, `O'Brien`, `Jean-Luc Picard`, `María José`, `李·明`, `Dr. Smith` print;
    a link, an e-mail, a phone number, digits, markup, control or invisible characters, or more
    than MAX_NAME_LENGTH characters do not.
    """
    if name_problem(raw) is not None:
        return None
    return " ".join(unicodedata.normalize("NFKC", raw).translate(_APOSTROPHES).split())
