"""Showing attributions: displaCy-style HTML (``render_explanation``) and rich terminal text.

Tokens are tinted green when they push the probability of the explained label up and red when
they push it down (attention scores, which have no sign, are green); the intensity is the
score relative to the doc's largest absolute score, and the tooltip holds the number. When
``senti_lexicon`` ran, a second line shows the lexicon valences (``token._.valence``) of the
same tokens, as ``spacy_senti.lexicon.render`` draws them.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from typing import Any

from rich.text import Text
from spacy.tokens import Doc, Token
from spacy.util import is_in_jupyter

from ..errors import InputError
from ..lexicon.render import NEGATIVE_RGB, POSITIVE_RGB
from ..lexicon.render import render_doc as render_lexicon_doc

WRAPPER = (
    '<div class="senti-explain" style="line-height: 2.2; font-family: -apple-system, '
    "BlinkMacSystemFont, 'Segoe UI', Helvetica, Arial, sans-serif; font-size: 16px; "
    'padding: 0.5em 0; direction: ltr">{}</div>'
)
CAPTION = (
    '<div class="senti-explain-target" style="font-size: 0.8em; color: #555">'
    "<strong>{key}</strong> p = {prob:.3f} · {method} · {legend}</div>"
)
ROW_LABEL = ('<span class="senti-explain-source" style="font-size: 0.7em; color: #777; '
             'margin-right: 0.6em">{}</span>')
MARK = (
    '<mark class="senti-attribution" data-attribution="{v:.6g}" title="attribution {v:+.3g}" '
    'style="background: rgba({rgb}, {a:.2f}); padding: 0.2em 0.25em; border-radius: 0.3em">'
    "{t}</mark>"
)


def _entry(doc: Doc, key: str | None) -> tuple[str, dict[str, Any]]:
    found = doc._.attributions if Doc.has_extension("attributions") else None
    if not found:
        raise InputError(
            "This doc has no attributions: run spacy_senti.explain.explain_docs(nlp, [doc]) "
            "first."
        )
    if key is None:
        key = next(reversed(found))  # the last computed target
    if key not in found:
        raise InputError(f"No attributions for {key!r} in this doc; computed: {list(found)}.")
    return key, found[key]


def _alpha(score: float, scale: float) -> float:
    return 0.12 + 0.78 * min(abs(score) / scale, 1.0) if scale else 0.0


def _scale(scores: list[float]) -> float:
    return max((abs(s) for s in scores), default=0.0)


def _has_valences(doc: Doc) -> bool:
    return Token.has_extension("valence") and any(t._.valence is not None for t in doc)


def render_doc(doc: Doc, key: str | None = None) -> str:
    """HTML for one explained doc: caption, attributions, and lexicon valences if any."""
    from .attribute import METHOD_NAMES

    key, entry = _entry(doc, key)
    scores = entry["scores"]
    scale = _scale(scores)
    parts = []
    for token, score in zip(doc, scores):
        text = escape(token.text)
        if score and scale and not token.is_space:
            rgb = POSITIVE_RGB if score > 0 else NEGATIVE_RGB
            text = MARK.format(v=score, rgb=rgb, a=_alpha(score, scale), t=text)
        parts.append(text + escape(token.whitespace_))
    method = entry["method"]
    legend = ("darker = more attention" if method == "attention"
              else "green raises, red lowers its probability")
    caption = CAPTION.format(key=escape(key), prob=entry["target_prob"],
                             method=escape(METHOD_NAMES.get(method, method)), legend=legend)
    rows = [caption, "<div>" + ROW_LABEL.format("model") + "".join(parts) + "</div>"]
    if _has_valences(doc):
        lexicon = render_lexicon_doc(doc)
        rows.append("<div>" + ROW_LABEL.format("lexicon") + lexicon + "</div>")
    return WRAPPER.format("".join(rows))


def render_explanation(doc: Doc | Iterable[Doc], *, key: str | None = None,
                       jupyter: bool | None = None) -> str:
    """displaCy-style HTML of ``doc._.attributions`` (set by ``explain_docs``).

    key: the ``"<head>/<label>"`` to show (default: the last one computed).
    jupyter: display the HTML in a notebook (``None``: when running in one) and return ``""``
        there, as ``displacy.render`` does; otherwise return the HTML.
    """
    docs = [doc] if isinstance(doc, Doc) else list(doc)
    html = "".join(render_doc(d, key) for d in docs)
    if jupyter or (jupyter is None and is_in_jupyter()):
        from IPython.display import HTML, display

        display(HTML(html))
        return ""
    return html


def rich_text(doc: Doc, key: str | None = None) -> Text:
    """The doc's tokens tinted like the HTML, each followed by its score, for a terminal."""
    key, entry = _entry(doc, key)
    scores = entry["scores"]
    scale = _scale(scores)
    text = Text()
    for token, score in zip(doc, scores):
        if token.is_space:
            text.append(token.text_with_ws)
            continue
        style = ""
        if score and scale:
            rgb = POSITIVE_RGB if score > 0 else NEGATIVE_RGB
            level = _alpha(score, scale)
            r, g, b = (int(255 - (255 - int(c)) * level) for c in rgb.split(","))
            style = f"black on rgb({r},{g},{b})"
        text.append(token.text, style=style)
        text.append(f"({score:+.3g})", style="dim")
        text.append(token.whitespace_)
    return text
