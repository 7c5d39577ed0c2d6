"""Wording shared by every message: a count with its noun and verb in the right number ("1 video has",
"2 videos have")."""

from __future__ import annotations

_IRREGULAR = {"copy": "copies", "entry": "entries", "epoch": "epochs"}


def plural(noun: str) -> str:
    """The plural of the nouns our messages count: video -> videos, class -> classes, patch -> patches, epoch ->
    epochs; a noun phrase takes its last word's plural."""
    head, _, last = noun.rpartition(" ")
    if last in _IRREGULAR:
        return f"{head} {_IRREGULAR[last]}".lstrip()
    if noun.endswith(("s", "sh", "ch", "x")):
        return noun + "es"
    return noun + "s"


def counted(n: int, noun: str, many: str | None = None) -> str:
    """`n` and the noun in the number `n` takes: counted(1, "video") is "1 video", counted(3, "class") "3 classes".

    `many` gives the plural where `plural` would get it wrong; a noun phrase takes its last word's plural
    ("unreadable video" -> "unreadable videos").
    """
    return f"{n} {noun if n == 1 else many or plural(noun)}"


def verb(n: int, singular: str, plural_form: str) -> str:
    """The verb that agrees with a count: verb(1, "has", "have") is "has", verb(2, "has", "have") "have"."""
    return singular if n == 1 else plural_form
