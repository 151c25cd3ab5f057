"""Doc and Token extensions set by spacy-senti components, registered once.

Names follow the head names of ``senti_textcat`` (each kind's ``Head.extension_names``):

* exclusive head ``H``: ``doc._.H`` (label) and ``doc._.H_scores`` ({label: prob})
* multilabel head ``H``: ``doc._.Hs`` ({label: prob}) and ``doc._.H_labels`` (labels over
  their thresholds)
* grouped head ``H``: ``doc._.Hs`` ({group: polarity} for groups predicted present) and
  ``doc._.H_scores`` ({group: {polarity: prob}})

So the default heads ``sentiment``, ``emotion`` and ``aspect`` give ``doc._.sentiment``,
``doc._.sentiment_scores``, ``doc._.emotions``, ``doc._.emotion_labels``, ``doc._.aspects``
and ``doc._.aspect_scores``.
"""

from __future__ import annotations

from spacy.tokens import Doc, Span, Token

from .heads import Head

LEXICON_DOC_EXTENSIONS = ("lexicon_score", "lexicon_polarity")
LEXICON_TOKEN_EXTENSIONS = ("valence",)
HYBRID_DOC_EXTENSIONS = ("sentiment_sources",)
EXPLAIN_DOC_EXTENSIONS = ("attributions",)
EXPLAIN_TOKEN_EXTENSIONS = ("attribution",)
ASPECTS_SPANS_KEY = "aspects"  # default doc.spans key of senti_aspects and the converter
ASPECT_TERMS_DOC_EXTENSIONS = ("aspect_terms",)
ASPECT_TERMS_SPAN_EXTENSIONS = ("polarity_scores",)


def _ensure_doc(name: str) -> None:
    if not Doc.has_extension(name):
        Doc.set_extension(name, default=None)


def register_head_extensions(head: Head) -> None:
    """Register the Doc extensions of one head (``head.extension_names``; idempotent)."""
    for name in head.extension_names:
        _ensure_doc(name)


def register_lexicon_extensions() -> None:
    """Register ``doc._.lexicon_score``, ``doc._.lexicon_polarity`` and ``token._.valence``."""
    for name in LEXICON_DOC_EXTENSIONS:
        _ensure_doc(name)
    for name in LEXICON_TOKEN_EXTENSIONS:
        if not Token.has_extension(name):
            Token.set_extension(name, default=None)


def register_hybrid_extensions() -> None:
    """Register ``doc._.sentiment_sources`` (model-only and lexicon-only scores)."""
    for name in HYBRID_DOC_EXTENSIONS:
        _ensure_doc(name)


def register_explain_extensions() -> None:
    """Register ``doc._.attributions`` ({"<head>/<label>": {"method", "scores",
    "target_prob"}}) and ``token._.attribution`` (spacy_senti.explain)."""
    for name in EXPLAIN_DOC_EXTENSIONS:
        _ensure_doc(name)
    for name in EXPLAIN_TOKEN_EXTENSIONS:
        if not Token.has_extension(name):
            Token.set_extension(name, default=None)


def register_aspect_term_extensions() -> None:
    """Register ``doc._.aspect_terms`` ([{"text", "start", "end", "polarity", "score"}],
    character offsets) and ``span._.polarity_scores`` ({polarity: prob}) of senti_aspects."""
    for name in ASPECT_TERMS_DOC_EXTENSIONS:
        _ensure_doc(name)
    for name in ASPECT_TERMS_SPAN_EXTENSIONS:
        if not Span.has_extension(name):
            Span.set_extension(name, default=None)
