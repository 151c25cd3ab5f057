"""Token attributions for the heads of ``senti_textcat``: why did the model say that?

    from spacy_senti.explain import explain_docs, render_explanation
    docs = explain_docs(nlp, nlp.pipe(texts), head="sentiment")   # method="ig"
    docs[0]._.attributions["sentiment/positive"]["scores"]   # one float per spaCy token
    html = render_explanation(docs[0])                      # displaCy-style HTML

Gradient x input and integrated gradients (Captum) over the input embeddings of the
pipeline's own PyTorch transformer, plus last-layer attention for comparison; wordpiece
scores summed onto spaCy tokens. ``doc.cats`` is never changed. The faithfulness bench
(bench/bench_explain.py) picks ``DEFAULT_METHOD``: integrated gradients (gradient x input was
less faithful than deleting random tokens on an SST-2 fine-tuned MiniLM).
"""

from .attribute import (
    DEFAULT_METHOD,
    IG_STEPS,
    METHOD_NAMES,
    METHODS,
    Explainer,
    explain_docs,
)
from .model import ExplainModel
from .render import render_explanation, rich_text

__all__ = ["DEFAULT_METHOD", "IG_STEPS", "METHODS", "METHOD_NAMES", "ExplainModel",
           "Explainer", "explain_docs", "render_explanation", "rich_text"]
