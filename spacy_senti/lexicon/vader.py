"""The VADER valence and emoji lexicons, read from the installed ``vaderSentiment`` package.

The data files are not copied into this repository (MIT, (c) C.J. Hutto): they are read from
the package directory at run time and parsed exactly as ``SentimentIntensityAnalyzer`` does.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

PACKAGE = "vaderSentiment"
LEXICON_FILE = "vader_lexicon.txt"
EMOJI_FILE = "emoji_utf8_lexicon.txt"


def _read(name: str) -> str:
    return resources.files(PACKAGE).joinpath(name).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def vader_lexicon() -> dict[str, float]:
    """``{term: valence}`` on VADER's -4..+4 scale (shared; copy before changing it)."""
    lexicon: dict[str, float] = {}
    for line in _read(LEXICON_FILE).rstrip("\n").split("\n"):
        if line:
            word, measure = line.strip().split("\t")[0:2]
            lexicon[word] = float(measure)
    return lexicon


@lru_cache(maxsize=1)
def emoji_lexicon() -> dict[str, str]:
    """``{emoji: description}``; VADER replaces each emoji character by its description."""
    emojis: dict[str, str] = {}
    for line in _read(EMOJI_FILE).rstrip("\n").split("\n"):
        emoji, description = line.strip().split("\t")[0:2]
        emojis[emoji] = description
    return emojis

