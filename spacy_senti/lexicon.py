"""Public lexicon API: ``render`` (HTML of token valences) and the ``senti_lexicon`` component."""

from __future__ import annotations

from .components.lexicon import LexiconScorer, make_senti_lexicon
from .lexicons.render import render

__all__ = ["LexiconScorer", "make_senti_lexicon", "render"]
