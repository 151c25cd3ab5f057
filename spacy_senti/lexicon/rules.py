"""VADER's rules over items (see ``items.py``), following ``vaderSentiment.py`` 3.3.2.

Kept as in VADER, for parity: booster/dampener scalars over a window of three preceding items
(x1, x0.95, x0.9), negation over the same window (x-0.74), "no" handling, "least", "never
so/this" (x1.25; like VADER, "so"/"this" right before a word also gives x1.25 once three
items precede it), "without doubt", ALL-CAPS emphasis when the text mixes case, "!"/"?"
emphasis and the normalisation ``x / sqrt(x^2 + 15)``.

Changed on purpose: multi-word dampeners ("kind of", "sort of") in the window dampen towards
zero like one-word ones (VADER adds -0.293 only when three items precede the word, whatever
its sign); multi-word special-case idioms ("the bomb", "bad ass", ...) apply at any position
(the one-word entry "badass" stays unused, as in VADER); the contrast
re-weighting is per position (VADER's ``list.index`` mis-weights repeated values), per
sentence when the Doc has sentence boundaries, and also handles "however" and concessive
"although"/"though"; with a dependency parse, ``neg`` dependents negate the words whose head
chain they hang off instead of the three-word window.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .wordlists import (
    BOOSTERS,
    C_INCR,
    CONCESSIVE_WORDS,
    CONTRAST_AFTER,
    CONTRAST_BEFORE,
    CONTRAST_WORDS,
    EXCLAMATION_INCR,
    N_SCALAR,
    NEGATIONS,
    NORMALIZE_ALPHA,
    QUESTION_INCR,
    QUESTION_MAX,
    SPECIAL_CASES,
)

_SO_THIS = ("so", "this")


@dataclass
class RuleSet:
    """The lexicon and word lists the rules use."""

    lexicon: Mapping[str, float]
    boosters: Mapping[str, float] = field(default_factory=lambda: dict(BOOSTERS))
    negations: frozenset[str] = NEGATIONS
    special_cases: Mapping[str, float] = field(default_factory=lambda: dict(SPECIAL_CASES))
    contrast_words: frozenset[str] = frozenset(CONTRAST_WORDS)
    concessive_words: frozenset[str] = frozenset(CONCESSIVE_WORDS)
    booster_phrases: dict[str, float] = field(init=False)
    special_lengths: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.booster_phrases = {k: v for k, v in self.boosters.items() if " " in k}
        # multi-word idioms only: VADER never reaches its one-word entry ("badass")
        self.special_lengths = tuple(
            sorted({k.count(" ") + 1 for k in self.special_cases if " " in k})
        )


def normalize(score: float, alpha: float = NORMALIZE_ALPHA) -> float:
    """VADER's compound normalisation into [-1, 1]."""
    return max(-1.0, min(1.0, score / math.sqrt(score * score + alpha)))


def allcap_differential(texts: Sequence[str]) -> bool:
    """True when some, but not all, items are ALL CAPS."""
    upper = sum(1 for t in texts if t.isupper())
    return 0 < len(texts) - upper < len(texts)


def punctuation_emphasis(text: str) -> float:
    """Added intensity from "!" (up to 4) and "?" (2 or more)."""
    amplifier = min(text.count("!"), 4) * EXCLAMATION_INCR
    questions = text.count("?")
    if questions > 1:
        amplifier += questions * QUESTION_INCR if questions <= 3 else QUESTION_MAX
    return amplifier


class _Group:
    """The rules over the items of one sentence (or the whole text)."""

    def __init__(
        self,
        rules: RuleSet,
        keys: Sequence[str],
        texts: Sequence[str],
        cap_diff: bool,
        dep_neg: Sequence[bool] | None,
    ) -> None:
        self.r = rules
        self.keys = keys
        self.texts = texts
        self.cap_diff = cap_diff
        self.dep_neg = dep_neg

    def booster_phrase_end(self, j: int) -> str | None:
        """The multi-word booster ending at item ``j``, if any."""
        if j >= 1:
            pair = f"{self.keys[j - 1]} {self.keys[j]}"
            if pair in self.r.booster_phrases:
                return pair
        return None

    def starts_booster_phrase(self, i: int) -> bool:
        keys = self.keys
        return i + 1 < len(keys) and f"{keys[i]} {keys[i + 1]}" in self.r.booster_phrases

    def scalar(self, j: int, valence: float) -> float:
        """Booster/dampener effect of item ``j`` on a word with ``valence``."""
        key = self.keys[j]
        phrase = self.booster_phrase_end(j)
        if key in self.r.boosters:
            scalar = self.r.boosters[key]
        elif phrase is not None:
            scalar = self.r.booster_phrases[phrase]
        else:
            return 0.0
        if valence < 0:
            scalar = -scalar
        if self.texts[j].isupper() and self.cap_diff:
            scalar += C_INCR if valence > 0 else -C_INCR
        return scalar

    def negates(self, j: int) -> bool:
        key = self.keys[j]
        if key not in self.r.negations and "n't" not in key:
            return False
        return not (self.dep_neg is not None and self.dep_neg[j])

    def negation(self, valence: float, start_i: int, i: int) -> float:
        keys = self.keys
        if start_i == 0:
            if self.negates(i - 1):
                valence *= N_SCALAR
        elif start_i == 1:
            if keys[i - 2] == "never" and keys[i - 1] in _SO_THIS:
                valence *= 1.25
            elif keys[i - 2] == "without" and keys[i - 1] == "doubt":
                pass
            elif self.negates(i - 2):
                valence *= N_SCALAR
        else:
            if (keys[i - 3] == "never" and keys[i - 2] in _SO_THIS) or keys[i - 1] in _SO_THIS:
                valence *= 1.25
            elif keys[i - 3] == "without" and "doubt" in (keys[i - 2], keys[i - 1]):
                pass
            elif self.negates(i - 3):
                valence *= N_SCALAR
        return valence

    def special_case(self, i: int) -> float | None:
        """Valence of a special-case idiom covering item ``i``, if any."""
        keys = self.keys
        for length in self.r.special_lengths:
            for start in range(max(0, i - length + 1), min(i, len(keys) - length) + 1):
                phrase = " ".join(keys[start : start + length])
                if phrase in self.r.special_cases:
                    return self.r.special_cases[phrase]
        return None

    def least(self, valence: float, i: int) -> float:
        keys, lexicon = self.keys, self.r.lexicon
        if i > 0 and keys[i - 1] == "least" and "least" not in lexicon:
            if i == 1 or keys[i - 2] not in ("at", "very"):
                valence *= N_SCALAR
        return valence

    def valence(self, i: int) -> float:
        """Valence of item ``i`` after the rules (0.0 when it is not a sentiment word)."""
        keys, lexicon = self.keys, self.r.lexicon
        key = keys[i]
        if key in self.r.boosters or self.starts_booster_phrase(i):
            return 0.0
        base = lexicon.get(key)
        if base is None:
            return 0.0
        valence = base
        last = len(keys) - 1
        if key == "no" and i != last and keys[i + 1] in lexicon:
            valence = 0.0
        if (
            (i > 0 and keys[i - 1] == "no")
            or (i > 1 and keys[i - 2] == "no")
            or (i > 2 and keys[i - 3] == "no" and keys[i - 1] in ("or", "nor"))
        ):
            valence = base * N_SCALAR
        if self.cap_diff and self.texts[i].isupper():
            valence += C_INCR if valence > 0 else -C_INCR
        for start_i in range(3):
            j = i - (start_i + 1)
            if j >= 0 and keys[j] not in lexicon:
                s = self.scalar(j, valence)
                if start_i == 1:
                    s *= 0.95
                elif start_i == 2:
                    s *= 0.9
                valence = self.negation(valence + s, start_i, i)
        special = self.special_case(i)
        if special is not None:
            valence = special
        return self.least(valence, i)


def group_valences(
    rules: RuleSet,
    keys: Sequence[str],
    texts: Sequence[str],
    cap_diff: bool,
    dep_neg: Sequence[bool] | None = None,
    scope_negs: Sequence[int] | None = None,
) -> list[float]:
    """Valence per item of one sentence, before contrast re-weighting.

    ``dep_neg``/``scope_negs`` (dependency mode): items that are ``neg`` dependents (ignored
    by the window) and the number of ``neg`` dependents scoping over each item.
    """
    group = _Group(rules, keys, texts, cap_diff, dep_neg)
    out = [group.valence(i) for i in range(len(keys))]
    if scope_negs is not None:
        out = [v * N_SCALAR**n if v and n else v for v, n in zip(out, scope_negs, strict=True)]
    return out


def reweight_contrast(
    rules: RuleSet, keys: Sequence[str], clauses: Sequence[int], valences: list[float]
) -> None:
    """Down-weight the conceded part and up-weight the rest (in place), at the first marker."""
    for b, key in enumerate(keys):
        if key in rules.contrast_words:
            for k in range(len(valences)):
                if k != b:
                    valences[k] *= CONTRAST_BEFORE if k < b else CONTRAST_AFTER
            return
        if key in rules.concessive_words:
            for k in range(len(valences)):
                conceded = k >= b and clauses[k] == clauses[b]
                valences[k] *= CONTRAST_BEFORE if conceded else CONTRAST_AFTER
            return


def polarity(valences: Sequence[float], text: str) -> dict[str, float]:
    """VADER's ``{"neg", "neu", "pos", "compound"}`` from item valences and the raw text."""
    if not valences:
        return {"neg": 0.0, "neu": 0.0, "pos": 0.0, "compound": 0.0}
    total = float(sum(valences))
    emphasis = punctuation_emphasis(text)
    if total > 0:
        total += emphasis
    elif total < 0:
        total -= emphasis
    compound = normalize(total)
    pos_sum = sum(v + 1 for v in valences if v > 0)
    neg_sum = sum(v - 1 for v in valences if v < 0)
    neu_count = sum(1 for v in valences if v == 0)
    if pos_sum > abs(neg_sum):
        pos_sum += emphasis
    elif pos_sum < abs(neg_sum):
        neg_sum -= emphasis
    denominator = pos_sum + abs(neg_sum) + neu_count
    return {
        "neg": round(abs(neg_sum / denominator), 3),
        "neu": round(abs(neu_count / denominator), 3),
        "pos": round(abs(pos_sum / denominator), 3),
        "compound": round(compound, 4),
    }
