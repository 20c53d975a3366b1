"""Reading borrowers' SMS replies (docs/contract.md#inbound-sms): opt-out, HELP, a reference code, anything else.

Pure functions of (reply, the policy's keywords); no AWS, no logging. `classify_reply` is the
whole reading, in this order: an opt-out (below) wins over everything; then HELP; then a
reference code to verify; anything else is `Other` (published for the lender's CRM).

How a reply is read
- Normalised: NFKC (full-width and styled letters become plain ones, the ideographic space a
  space), casefolded, invisible characters dropped (format characters, Unicode category Cf:
  U+200B, U+FEFF, U+200E, U+202E…, and combining marks left over after NFKC, such as the variation
  selector after an emoji), apostrophes dropped so a contraction stays one word (`don't` is
  `dont`, never `don` + `t`).
- Cut into words: punctuation of any script (`.` `!` `。` `~`, the full-width `!` and `,`), symbols and emoji,
  whitespace of any width and control characters separate words; a letter of a script written
  without spaces (Han, kana, Hangul) is a word of its own, so `回T退订` reads `回` `t` `退` `订`.
- A keyword is read the same way (`STOP ALL` is the words `stop` `all`, `opt-out` is `opt` `out`).

When a reply opts out (when in doubt, opt out)
- A keyword written in Chinese (or another script without spaces) opts out wherever it appears
  in the reply, separators between its characters ignored: `我要退订`, `请退订谢谢`, `退 订`,
  `退订了吗` (asking whether the opt-out worked is asking for it).
- Any other keyword opts out when its words stand in the reply as whole words, one after the
  other: `STOP!!!`, `Stop please`, `please stop`, `stop it`, `unsubscribe me`, `Stop sending me
  messages`. Never inside another word: `T` and `TD` do not match `tomorrow`, `TDS`, `Ted`;
  `stop` does not match `stopover`.
- Longer messages are read the same way: a keyword among many words still opts out
  ("I already paid so stop texting me"). A borrower who writes STOP in a sentence means it as
  much as one who writes it alone (the US FCC 24-24 order names stop, quit, end, revoke, opt out,
  cancel and unsubscribe as words that revoke consent); a wrong opt-out costs a reminder channel
  (the case goes to human collectors), a missed one an SMS sent against the borrower's wish.
- One exception, for English keywords that are also everyday nouns: a one-word keyword right
  after an article, a possessive or a preposition of time (`the end`, `by end of week`, `at the
  end`), or right before `of` (`end of month`), is a noun in a sentence about something else and
  does not opt out. "I'll pay at the end of the month" is a common reply to a dunning SMS;
  "please end this" and "make it end" still opt out.
- A reply without any keyword does not opt out, however it reads (`Who is this?`, `HELP`,
  `帮助`, `已还款`, `paid`, `ok`, `谢谢`): typos and paraphrases count only when the policy lists
  them (as it lists the misspelling `退定`).

HELP (`Help`): the reply, read as above, is one of the policy's `replies.help_keywords` and nothing
else (`HELP`, `help!`, `帮助。`), as carriers match keywords; `I need help paying` is `Other`.

A reference code to verify (`Verify`): the 6 symbols our SMS print after `ref` / `参考码`, read in
any case or width. Either the reply is the code alone (`7kx3pq`, `7KX3PQ.`), or it holds one of
`replies.verify_keywords` (`VERIFY`, `核实`, `验证`, matched like opt-out keywords) and a code
among its other words (`核实 7KX3PQ`, `Please verify 7KX3PQ`): the one code with a digit, else
the first code-shaped word after the keyword (`VERIFY WXYZAB please`: `please` is code-shaped
too). With a keyword but no code (`verify my loan`, `核实7KX3P0`: 0 is not in the alphabet), or
two codes with digits, it is a `Verify` with no code: the answer explains how to write one.
A bare code is `Verify(prefixed=False)`: a six-letter word like `THANKS` is also code-shaped, so
the caller treats a bare code that no record holds as `Other`.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

# Dropped before reading: they join what is around them (`don't` stays one word). Removed before
# NFKC too, which would turn the acute accent into a space and a combining mark.
APOSTROPHES = frozenset("'\uff07\u2018\u2019\u02bc\u02bb\u0060\u00b4")
_NO_APOSTROPHES = str.maketrans(dict.fromkeys(APOSTROPHES, None))
# A one-word keyword right after one of these, or right before `of`, is a noun (`the end of`).
NOUN_AFTER = frozenset(
    {"the", "a", "an", "my", "your", "his", "its", "our", "their"}  # not `this` or `her`: "make this end"
    | {"at", "by", "before", "until", "till", "after", "per"}
)
NOUN_BEFORE = frozenset({"of"})
# Scripts written without spaces: each of their letters is a word, and their keywords match anywhere.
_UNSPACED_SCRIPTS = ("CJK ", "HIRAGANA", "KATAKANA", "HANGUL", "BOPOMOFO")


def _is_unspaced(char: str) -> bool:
    return unicodedata.name(char, "").startswith(_UNSPACED_SCRIPTS)


def reply_words(text: str) -> tuple[str, ...]:
    """The words of a reply (or of a keyword) once normalised; () when nothing readable is left."""
    normal = unicodedata.normalize("NFKC", text.translate(_NO_APOSTROPHES)).casefold()
    words: list[str] = []
    word: list[str] = []
    for char in normal:
        category = unicodedata.category(char)
        if category in ("Cf", "Mn", "Me") or char in APOSTROPHES:
            continue  # invisible: it separates nothing
        if category[0] in "LN" and not _is_unspaced(char):
            word.append(char)
            continue
        if word:
            words.append("".join(word))
            word = []
        if category[0] == "L":  # a letter of a script without spaces: a word by itself
            words.append(char)
    if word:
        words.append("".join(word))
    return tuple(words)


@dataclass(frozen=True)
class OptOutKeyword:
    """One policy keyword as the matcher reads it."""

    keyword: str  # as the policy writes it (for the log: which keyword matched)
    words: tuple[str, ...]

    @property
    def unspaced(self) -> bool:
        """Written in a script without spaces: matched as a substring of the reply's words run together."""
        return any(_is_unspaced(char) for word in self.words for char in word)

    def found_in(self, words: tuple[str, ...]) -> bool:
        if self.unspaced:
            return "".join(self.words) in "".join(words)
        size = len(self.words)
        for start in range(len(words) - size + 1):
            if words[start : start + size] != self.words:
                continue
            if size == 1 and _used_as_noun(words, start):
                continue
            return True
        return False


def _used_as_noun(words: tuple[str, ...], at: int) -> bool:
    before = words[at - 1] if at > 0 else None
    after = words[at + 1] if at + 1 < len(words) else None
    return before in NOUN_AFTER or after in NOUN_BEFORE


def opt_out_keywords(keywords: Iterable[str]) -> tuple[OptOutKeyword, ...]:
    """The policy's keywords, read; ValueError names a keyword that has no readable word."""
    read = []
    for keyword in keywords:
        words = reply_words(keyword)
        if not words:
            raise ValueError(f"opt-out keyword {keyword!r} has no letter or digit left once normalised")
        read.append(OptOutKeyword(keyword, words))
    return tuple(read)


def opt_out_keyword(body: str, keywords: Iterable[str]) -> str | None:
    """The policy keyword that makes this reply an opt-out (as the policy writes it); None if none does."""
    words = reply_words(body)
    if not words:
        return None
    for keyword in opt_out_keywords(keywords):
        if keyword.found_in(words):
            return keyword.keyword
    return None


def is_opt_out(body: str, keywords: Iterable[str]) -> bool:
    """True when the reply asks to opt out (see the module docstring for the rules)."""
    return opt_out_keyword(body, keywords) is not None


# ---------------------------------------------------------------- HELP, verification and the rest


@dataclass(frozen=True)
class OptOut:
    keyword: str  # the policy keyword that matched


@dataclass(frozen=True)
class Help:
    keyword: str


@dataclass(frozen=True)
class Verify:
    """A request to verify a reference code; `code` is None when the reply holds no single code."""

    code: str | None
    prefixed: bool  # a verify keyword was given (else the reply is the code alone)


@dataclass(frozen=True)
class Other:
    """Any other reply: counted and published as BorrowerReplied, never answered by SMS."""


Reply = OptOut | Help | Verify | Other


def _is_code(word: str) -> bool:
    # compose imports the policy model, which imports this module: import the predicate when used.
    from dunning.compose.reference import is_reference_code

    return is_reference_code(word)


def _keyword_end(words: tuple[str, ...], keywords: tuple[OptOutKeyword, ...]) -> int | None:
    """Where the reply's words go on after its first verify keyword; None when it has none."""
    ends = [
        start + len(k.words)
        for k in keywords
        for start in range(len(words) - len(k.words) + 1)
        if words[start : start + len(k.words)] == k.words
    ]
    return min(ends, default=None)


def _code_in(words: tuple[str, ...], after: int) -> str | None:
    """The one code a reply with a verify keyword holds (`after`: where the keyword ends), else None.

    A code with a digit is unmistakable (two of them: ambiguous, None); a code of letters only
    could be a word (`please`), so the first one right after the keyword is taken, else the only one.
    """
    candidates = [(i, w.upper()) for i, w in enumerate(words) if _is_code(w)]
    with_digit = list(dict.fromkeys(c for _, c in candidates if any(ch.isdigit() for ch in c)))
    if with_digit:
        return with_digit[0] if len(with_digit) == 1 else None
    following = [c for i, c in candidates if i >= after]
    if following:
        return following[0]
    distinct = list(dict.fromkeys(c for _, c in candidates))
    return distinct[0] if len(distinct) == 1 else None


def classify_reply(body: str, opt_out: Iterable[str], help_words: Iterable[str], verify_words: Iterable[str]) -> Reply:
    """What a reply asks for (see the module docstring); keywords as the policy writes them."""
    keyword = opt_out_keyword(body, opt_out)
    if keyword is not None:
        return OptOut(keyword)
    words = reply_words(body)
    for help_keyword in opt_out_keywords(help_words):
        if help_keyword.words == words:  # the keyword and nothing else
            return Help(help_keyword.keyword)
    verify = opt_out_keywords(verify_words)
    after = _keyword_end(words, verify)
    if after is not None:
        return Verify(_code_in(words, after), prefixed=True)
    if len(words) == 1 and _is_code(words[0]):
        return Verify(words[0].upper(), prefixed=False)
    return Other()
