"""Opt-out matching (docs/contract.md#inbound-sms): real-world replies, Chinese and English, bundled keywords."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dunning.models.policy import DEFAULT_POLICY_PATH, PolicyError, load_policy_file, parse_policy
from dunning.replies import is_opt_out, opt_out_keyword, reply_words

KEYWORDS = load_policy_file().opt_out_keywords

# (reply, the keyword that opts it out): what borrowers write, as it reaches InboundSmsFunction.
OPT_OUTS = [
    ("STOP", "STOP"),
    ("stop", "STOP"),
    (" Stop \n", "STOP"),
    ("STOP.", "STOP"),
    ("STOP!!!", "STOP"),
    ("Stop please", "STOP"),
    ("please stop", "STOP"),
    ("stop it", "STOP"),
    ("Stop sending me messages", "STOP"),
    ("I already paid so stop texting me", "STOP"),  # a longer message: the keyword still counts
    ("“Stop”", "STOP"),  # curly quotes
    ("Stop\u3000please～", "STOP"),  # ideographic space, full-width tilde
    ("\u200bSTOP", "STOP"),  # zero-width space
    ("STOP\ufeff", "STOP"),  # byte-order mark
    ("\u202eSTOP\u200e", "STOP"),  # right-to-left override, left-to-right mark
    ("ＳＴＯＰ！", "STOP"),  # full-width letters and exclamation mark
    ("𝐒𝐓𝐎𝐏 🛑", "STOP"),  # mathematical bold letters, an emoji
    ("st\u00adop", "STOP"),  # a soft hyphen inside the word
    ("unsubscribe me", "UNSUBSCRIBE"),
    ("Opt-out", "OPT OUT"),
    ("I want to opt out of these texts", "OPT OUT"),
    ("STOPALL", "STOPALL"),
    ("Cancel", "CANCEL"),
    ("QUIT", "QUIT"),
    ("Please end this", "END"),
    ("Make this end", "END"),  # after a pronoun `end` is still the verb
    ("Revoke consent", "REVOKE"),
    ("T", "T"),
    ("t.", "T"),
    ("TD", "TD"),
    ("td！", "TD"),
    ("退订", "退订"),
    ("退订。", "退订"),
    ("我要退订", "退订"),
    ("请退订谢谢", "退订"),
    ("退 订", "退订"),
    ("退\u200b订！", "退订"),
    ("退订了吗", "退订"),  # asking whether it worked is asking for it
    ("回T", "T"),  # the instruction our zh-CN SMS ends with, copied back
    ("退定", "退定"),  # the common misspelling
    ("退訂", "退訂"),  # traditional characters
    ("取消", "取消"),
    ("停止发送", "停止"),
    ("拒收", "拒收"),
    ("不要再发了", "不要再发"),
    ("别再发短信了！", "别再发"),
    ("请勿打扰", "勿打扰"),
    ("勿扰", "勿扰"),
]

# Replies that plainly ask for something else: answered or counted, never an opt-out.
NOT_OPT_OUTS = [
    "I will pay tomorrow",  # `t` inside a word is not T
    "Who is this?",
    "HELP",
    "help me",
    "paid",
    "ok",
    "Thanks, payment sent",
    "stopover in Paris",  # `stop` inside a word
    "Ted here",
    "TDS",
    "STOPP",  # not listed: typos count only when the policy lists them
    "TT",
    "I'll pay at the end of the month",  # `end` as a noun, after an article
    "Will pay by end of week",  # after a preposition of time, and before `of`
    "End of month",
    "Can't pay now, sorry",  # the apostrophe keeps `cant` one word: no stray `t`
    "Don’t worry I will pay",  # a curly apostrophe too
    "I’m on AT&T",  # `t` after `at`
    "VERIFY K7P2AB",
    "What is my balance?",
    "",
    "  \u200b ",
    "帮助",
    "已还款",
    "谢谢",
    "我明天还款，谢谢",
    "好的，收到",
    "你是谁？",
    "核实 K7P2AB",
    "为什么有滞纳金",
    "已经还了，请查收",
    "打扰一下，怎么还款？",  # "excuse me": 打扰 alone is politeness
]


@pytest.mark.parametrize(("reply", "keyword"), OPT_OUTS)
def test_replies_asking_to_opt_out_opt_out(reply: str, keyword: str) -> None:
    assert opt_out_keyword(reply, KEYWORDS) == keyword


@pytest.mark.parametrize("reply", NOT_OPT_OUTS)
def test_replies_asking_for_something_else_do_not_opt_out(reply: str) -> None:
    assert opt_out_keyword(reply, KEYWORDS) is None


def test_the_table_is_large_enough_both_ways() -> None:
    assert len(OPT_OUTS) >= 30 and len(NOT_OPT_OUTS) >= 30
    chinese = [r for r, _ in OPT_OUTS if not r.isascii()] + [r for r in NOT_OPT_OUTS if not r.isascii()]
    assert len(chinese) >= 20


def test_words_are_cut_at_punctuation_spaces_and_between_scripts() -> None:
    assert reply_words("Stop\u3000please！") == ("stop", "please")
    assert reply_words("回TD退订。") == ("回", "td", "退", "订")
    assert reply_words("don't") == ("dont",)
    assert reply_words("S.T.O.P") == ("s", "t", "o", "p")
    assert reply_words("!!! ~ 。") == ()


def test_short_keywords_are_whole_words_only() -> None:
    assert is_opt_out("T", ["T"]) and is_opt_out("ok T", ["T"])
    for reply in ("tomorrow", "Ted", "TDS", "at", "it"):
        assert not is_opt_out(reply, ["T", "TD"]), reply


def test_a_keyword_of_several_words_matches_them_in_order() -> None:
    assert is_opt_out("please STOP-ALL now", ["stop all"])
    assert not is_opt_out("all stop", ["stop all"])


def test_a_keyword_that_is_only_punctuation_is_refused_by_the_policy() -> None:
    text = DEFAULT_POLICY_PATH.read_text(encoding="utf-8")
    document = text.replace("opt_out_keywords: [STOP,", 'opt_out_keywords: ["。!", STOP,', 1)
    assert document != text
    with pytest.raises(PolicyError, match=r"opt_out_keywords: .*'。!' has no letter or digit"):
        parse_policy(document)


INVISIBLE = st.sampled_from(["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u200e", "\u200f", "\u202e", "\u00ad"])
EVERY_REPLY = [r for r, _ in OPT_OUTS] + NOT_OPT_OUTS


@given(reply=st.sampled_from(EVERY_REPLY), data=st.data())
def test_invisible_characters_anywhere_change_nothing(reply: str, data: st.DataObject) -> None:
    positions = data.draw(st.lists(st.integers(0, len(reply)), max_size=4))
    hidden = reply
    for position in sorted(positions, reverse=True):
        hidden = hidden[:position] + data.draw(INVISIBLE) + hidden[position:]
    assert opt_out_keyword(hidden, KEYWORDS) == opt_out_keyword(reply, KEYWORDS)


@given(reply=st.sampled_from(EVERY_REPLY), around=st.sampled_from(["", " ", "。", "！！", "...", "\n", "\u3000", "~"]))
def test_case_and_surrounding_punctuation_change_nothing(reply: str, around: str) -> None:
    expected = opt_out_keyword(reply, KEYWORDS)
    assert opt_out_keyword(around + reply.upper() + around, KEYWORDS) == expected
    assert opt_out_keyword(around + reply.lower() + around, KEYWORDS) == expected
