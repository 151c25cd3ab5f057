"""VADER's rule engine over spaCy tokens: lexicons (VADER valence and emoji, user and domain
TSVs), the rules, and ``render`` (displaCy-style HTML of token valences).

The component ``senti_lexicon`` that applies them is ``spacy_senti.components.lexicon``.
"""

from .render import render

__all__ = ["render"]
