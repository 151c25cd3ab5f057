"""Word lists and constants of the rules: VADER's own, plus the few spacy-senti adds.

VADER's lists (negations, boosters/dampeners, special-case idioms) and its empirically derived
constants are imported from the installed ``vaderSentiment`` module, not copied.
"""

from __future__ import annotations

from vaderSentiment import vaderSentiment as _vader

B_INCR: float = _vader.B_INCR  # booster increment
B_DECR: float = _vader.B_DECR  # dampener decrement
C_INCR: float = _vader.C_INCR  # ALL-CAPS emphasis
N_SCALAR: float = _vader.N_SCALAR  # negation factor
EXCLAMATION_INCR = 0.292  # per "!", up to 4
QUESTION_INCR = 0.18  # per "?", when 2 or 3
QUESTION_MAX = 0.96  # 4 or more "?"
NORMALIZE_ALPHA = 15.0  # compound = x / sqrt(x^2 + alpha)

NEGATIONS: frozenset[str] = frozenset(_vader.NEGATE)
BOOSTERS: dict[str, float] = dict(_vader.BOOSTER_DICT)
SPECIAL_CASES: dict[str, float] = dict(_vader.SPECIAL_CASES)

# "X but Y": X x0.5, Y x1.5 (VADER uses "but" only)
CONTRAST_WORDS: tuple[str, ...] = ("but", "however")
# "although X, Y" / "Y, although X": the concessive clause X x0.5, the rest x1.5
CONCESSIVE_WORDS: tuple[str, ...] = ("although", "though")
CONTRAST_BEFORE = 0.5
CONTRAST_AFTER = 1.5

# punctuation that ends a clause (the scope of a concessive word)
CLAUSE_PUNCT: frozenset[str] = frozenset({",", ";", ":", "--", "—", "–", "(", ")"})
# dependency relations that stop the upward search for a ``neg`` dependent: other clauses,
# and subjects ("Good people don't lie": "good" is not negated)
NEG_SCOPE_BARRIERS: frozenset[str] = frozenset(
    {"conj", "advcl", "relcl", "parataxis", "acl", "nsubj", "nsubjpass", "csubj"}
)
