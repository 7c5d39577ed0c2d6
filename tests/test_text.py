"""Counts in messages agree with their nouns and verbs: "1 video", "2 videos", "1 class has", "3 classes have"."""

from __future__ import annotations

import pytest

from vjepa_tune.text import counted, verb


@pytest.mark.parametrize(
    ("n", "noun", "text"),
    [(1, "video", "1 video"), (0, "video", "0 videos"), (2, "video", "2 videos"), (1, "class", "1 class"),
     (4, "class", "4 classes"), (2, "epoch", "2 epochs"), (3, "patch", "3 patches"), (2, "entry", "2 entries"),
     (2, "process", "2 processes"), (1, "unreadable video", "1 unreadable video"),
     (5, "unreadable video", "5 unreadable videos"), (2, "listed entry", "2 listed entries")],
)
def test_a_count_takes_the_noun_in_its_number(n: int, noun: str, text: str) -> None:
    assert counted(n, noun) == text


def test_a_plural_the_rule_would_get_wrong_is_given() -> None:
    assert counted(2, "child", "children") == "2 children" and counted(1, "child", "children") == "1 child"


def test_the_verb_agrees_with_the_count() -> None:
    assert [verb(n, "has", "have") for n in (0, 1, 2)] == ["have", "has", "have"]
