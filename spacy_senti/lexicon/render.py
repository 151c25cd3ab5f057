"""displaCy-style HTML of ``token._.valence``: green/red by sign, intensity by size."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from spacy.tokens import Doc
from spacy.util import is_in_jupyter

POSITIVE_RGB = "22, 163, 74"
NEGATIVE_RGB = "220, 38, 38"
FULL_VALENCE = 4.0  # |valence| shown at full intensity (VADER's scale ends at 4)
WRAPPER = (
    '<div class="senti-lexicon" style="line-height: 2.2; font-family: -apple-system, '
    "BlinkMacSystemFont, 'Segoe UI', Helvetica, Arial, sans-serif; font-size: 16px; "
    'padding: 0.5em 0; direction: ltr">{}</div>'
)
MARK = (
    '<mark class="senti-token" data-valence="{v:.3f}" title="valence {v:+.3f}" style="'
    'background: rgba({rgb}, {a:.2f}); padding: 0.2em 0.25em; border-radius: 0.3em">{t}</mark>'
)
SCORE = (
    '<span class="senti-score" style="font-size: 0.75em; font-weight: bold; margin-left: '
    '0.6em; color: #555">compound {score:+.3f}</span>'
)


def _token_html(text: str, valence: float | None) -> str:
    if not valence:
        return escape(text)
    alpha = 0.15 + 0.75 * min(abs(valence) / FULL_VALENCE, 1.0)
    rgb = POSITIVE_RGB if valence > 0 else NEGATIVE_RGB
    return MARK.format(v=valence, rgb=rgb, a=alpha, t=escape(text))


def render_doc(doc: Doc) -> str:
    """HTML for one Doc scored by ``senti_lexicon``."""
    parts = [_token_html(t.text, t._.valence) + escape(t.whitespace_) for t in doc]
    score = doc._.lexicon_score
    if score is not None:
        parts.append(SCORE.format(score=score))
    return WRAPPER.format("".join(parts))


def render(docs: Doc | Iterable[Doc], jupyter: bool | None = None) -> str:
    """HTML highlighting each token's contribution (tooltip: the number), like displaCy.

    ``jupyter``: display the HTML in a notebook (``None``: when running in one) and return
    ``""`` there, as ``displacy.render`` does; otherwise return the HTML.
    """
    docs = [docs] if isinstance(docs, Doc) else list(docs)
    html = "".join(render_doc(doc) for doc in docs)
    if jupyter or (jupyter is None and is_in_jupyter()):
        from IPython.display import HTML, display

        display(HTML(html))
        return ""
    return html
