"""Align spaCy tokens with the "words" VADER's rules count.

VADER splits on whitespace and strips punctuation off word edges. spaCy splits further
("don't" -> "do", "n't"; "good." -> "good", "."), so the rules run over *items*:

* a word token, with attached non-punctuation tokens merged into it (``do|n't`` -> "don't",
  ``gon|na``, ``it|'s``), so contractions negate and count as one word as in VADER; a
  hyphenated compound (``well|-|known``) is one item too, as in VADER;
* an HTML entity spaCy splits (``&|gt|;``), as one neutral item;
* a multi-token lexicon term matched by the PhraseMatcher (emoticons spaCy splits such as
  ``(-:``, user/domain phrases such as "profit warning");
* each word of an emoji's description (VADER replaces an emoji by its description);
* a punctuation token only when it is a lexicon emoticon (":)") or stands alone between
  spaces (VADER counts " - " as a neutral word); other punctuation is skipped.

Each item points at the token that receives its contribution (``token._.valence``).
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from spacy.tokens import Doc

from .wordlists import CLAUSE_PUNCT, NEG_SCOPE_BARRIERS

_PUNCT = frozenset(string.punctuation)


@dataclass
class Items:
    """Parallel lists, one entry per item, and the item ranges of each sentence."""

    keys: list[str] = field(default_factory=list)  # lower-case lookup key
    texts: list[str] = field(default_factory=list)  # surface text (ALL-CAPS check)
    tokens: list[int] = field(default_factory=list)  # token receiving the contribution
    ends: list[int] = field(default_factory=list)  # end token (exclusive) of the item
    clauses: list[int] = field(default_factory=list)  # clause number
    groups: list[tuple[int, int]] = field(default_factory=list)  # [start, end) per sentence

    def add(self, key: str, text: str, token: int, end: int, clause: int) -> None:
        self.keys.append(key)
        self.texts.append(text)
        self.tokens.append(token)
        self.ends.append(end)
        self.clauses.append(clause)

    def __len__(self) -> int:
        return len(self.keys)


def strip_punct_if_word(word: str) -> str:
    """VADER: strip edge punctuation unless that leaves two characters or fewer."""
    stripped = word.strip(string.punctuation)
    return word if len(stripped) <= 2 else stripped


def emoji_words(text: str, emojis: Mapping[str, str]) -> list[str]:
    """VADER's words for a token holding emoji: each emoji replaced by its description."""
    out: list[str] = []
    prev_space = True
    for char in text:
        description = emojis.get(char)
        if description is not None:
            if not prev_space:
                out.append(" ")
            out.append(description)
            prev_space = False
        else:
            out.append(char)
            prev_space = char == " "
    return [strip_punct_if_word(w) for w in "".join(out).split()]


def token_view(doc: Doc) -> list[tuple[str, str, bool]]:
    """``(text, whitespace, is_punct)`` per token: one pass over the Doc's tokens."""
    return [(t.text, t.whitespace_, t.is_punct) for t in doc]


def _is_entity(view: Sequence[tuple[str, str, bool]], i: int) -> bool:
    """``&`` ``gt`` ``;``: an HTML entity spaCy split in three (VADER: one neutral word)."""
    return (
        i + 2 < len(view)
        and view[i + 2][0] == ";"
        and view[i + 1][0].isalpha()
        and not view[i][1]
        and not view[i + 1][1]
    )


def _is_punct(text: str, is_punct: bool) -> bool:
    return is_punct or (not text[0].isalnum() and all(c in _PUNCT for c in text))


def _word_at(view: Sequence[tuple[str, str, bool]], i: int) -> bool:
    return i < len(view) and not _is_punct(view[i][0], view[i][2]) and not view[i][0].isspace()


def build_items(
    view: Sequence[tuple[str, str, bool]],
    lexicon: Mapping[str, float],
    emojis: Mapping[str, str] | None,
    phrases: Mapping[int, int],
) -> Items:
    """Items over a :func:`token_view`; ``phrases``: start token -> end of a lexicon term."""
    items = Items()
    add = items.add
    keys, texts, ends = items.keys, items.texts, items.ends
    n = len(view)
    clause = 0
    last_word = -2  # index of the last token of a word item that may take attachments
    i = 0
    while i < n:
        end = phrases.get(i)
        if end is not None:
            text = "".join(t + w for t, w, _ in view[i:end]).rstrip()
            add(" ".join(text.replace("\u2019", "'").lower().split()), text, i, end, clause)
            last_word = -2
            i = end
            continue
        text, space, is_punct = view[i]
        key = text.lower().replace("\u2019", "'")
        attached = last_word == i - 1 and not view[i - 1][1]
        if not is_punct and text[0].isalnum() and text.isascii():  # fast path: plain word
            if attached:
                keys[-1] += key
                texts[-1] += text
                ends[-1] = i + 1
            else:
                add(key, text, i, i + 1, clause)
            last_word = i
            i += 1
            continue
        if text.isspace():
            i += 1
            continue
        if emojis is not None and not text.isascii() and any(c in emojis for c in text):
            for word in emoji_words(text, emojis):
                add(word.lower(), word, i, i + 1, clause)
            last_word = -2
            i += 1
            continue
        if text == "&" and _is_entity(view, i):
            entity = "".join(t for t, _, _ in view[i : i + 3])
            add(entity.lower(), entity, i, i + 3, clause)
            last_word = -2
            i += 3
            continue
        if _is_punct(text, is_punct):
            if attached and text == "-" and not space and _word_at(view, i + 1):
                keys[-1] += key
                texts[-1] += text
                ends[-1] = i + 1
                last_word = i
                i += 1
                continue
            standalone = (i == 0 or view[i - 1][1]) and (i == n - 1 or space)
            if key in lexicon or standalone:
                add(key, text, i, i + 1, clause)
            if text in CLAUSE_PUNCT:
                clause += 1
            last_word = -2
        elif attached:
            keys[-1] += key
            texts[-1] += text
            ends[-1] = i + 1
            last_word = i
        else:
            add(key, text, i, i + 1, clause)
            last_word = i
        i += 1
    items.groups = [(0, len(items))]
    return items


def sentence_groups(doc: Doc, items: Items) -> list[tuple[int, int]]:
    """Item ranges of the sentences of ``doc``."""
    groups: list[tuple[int, int]] = []
    start = 0
    for sent in doc.sents:
        end = start
        while end < len(items) and items.tokens[end] < sent.end:
            end += 1
        if end > start:
            groups.append((start, end))
        start = end
    if start < len(items):
        groups.append((start, len(items)))
    return groups


def dependency_negations(doc: Doc, items: Items) -> tuple[list[bool], list[int]]:
    """Per item: is it a ``neg`` dependent, and how many ``neg`` dependents scope over it.

    A ``neg`` dependent scopes over a token when it hangs off the token or one of its heads,
    climbing no further than a clause barrier (``conj``, ``advcl``, ``relcl``, ...).
    """
    is_neg = [any(doc[t].dep_ == "neg" for t in range(s, e)) for s, e in _spans(items)]
    counts = []
    for start, end in _spans(items):
        node = doc[start]
        own = range(start, end)
        found: set[int] = set()
        while True:
            found.update(c.i for c in node.children if c.dep_ == "neg" and c.i not in own)
            if node.dep_ in NEG_SCOPE_BARRIERS or node.head.i == node.i:
                break
            node = node.head
        counts.append(len(found))
    return is_neg, counts


def _spans(items: Items) -> list[tuple[int, int]]:
    return list(zip(items.tokens, items.ends, strict=True))
