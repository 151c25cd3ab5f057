"""Token attributions for one ``senti_textcat`` head and label: ``explain_docs``.

Methods (``method=``):

* ``"grad"``: gradient x input (Captum ``InputXGradient``) over the word embeddings, summed
  over the embedding dimension: one forward and one backward pass.
* ``"ig"``: integrated gradients (Captum ``IntegratedGradients``, ``n_steps`` points of the
  Gauss-Legendre rule, 50 by default) from a baseline where every wordpiece of a spaCy token
  is the padding token (``[CLS]``/``[SEP]`` kept). Completeness: the token scores sum to
  ``target_prob - baseline_prob`` (up to the integration error).
* ``"attention"``: attention received by each wordpiece in the encoder's last layer
  (averaged over heads and the positions the pooling reads). Unsigned and not tied to the
  label; kept for comparison (bench/bench_explain.py).

The explained quantity is the head's probability of the label (after softmax / sigmoid /
per-group softmax), i.e. the ``doc.cats`` value. Wordpiece scores are summed onto spaCy
tokens through the transformer's alignment (``doc._.trf_data.align``); special tokens are
dropped. Docs longer than one transformer window are explained over all their strided
windows at once (a token in two overlapping windows gets the sum of both).

Nothing that the pipeline predicted changes: ``doc.cats`` and the heads' ``doc._`` values
stay as they are; results go to ``doc._.attributions`` (``{"<head>/<label>": {"method",
"scores", "target_prob"}}``, plus ``baseline_prob`` for ``ig``) and ``token._.attribution``
(the last computed target's score).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from spacy.language import Language
from spacy.tokens import Doc

from ..errors import ConfigError, InputError
from ..extensions import register_explain_extensions
from .model import DocInputs, ExplainModel

METHODS = ("grad", "ig", "attention")
METHOD_NAMES = {"grad": "gradient × input", "ig": "integrated gradients",
                "attention": "last-layer attention"}
#: the method that won the faithfulness bench (bench/results/explain.md)
DEFAULT_METHOD = "grad"
IG_STEPS = 50  # Captum's default
#: wordpiece rows per forward pass of integrated gradients (steps are split to fit)
IG_ROWS_PER_BATCH = 4096


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ConfigError(
            f"Unknown explanation method {method!r}: use one of {', '.join(METHODS)} "
            "(grad = gradient x input, ig = integrated gradients)."
        )
    return method


def _captum():
    try:
        from captum import attr
    except ImportError:
        raise InputError(
            "Methods 'grad' and 'ig' need Captum: pip install 'spacy-senti[explain]' "
            "(or pip install captum)."
        ) from None
    return attr


class Explainer:
    """Attributions of one pipeline's ``senti_textcat``; build once, explain many docs.

    nlp: the pipeline (transformer + senti_textcat with the wordpiece listener).
    component: the senti_textcat component's name (default: the first).
    n_steps: integrated-gradients steps.
    """

    def __init__(self, nlp: Language, component: str | None = None,
                 n_steps: int = IG_STEPS) -> None:
        register_explain_extensions()
        self.model = ExplainModel(nlp, component)
        if n_steps < 1:
            raise ConfigError(f"n_steps must be at least 1, not {n_steps}.")
        self.n_steps = n_steps

    def explain(self, doc: Doc, *, head: str | None = None, label: str | None = None,
                method: str = DEFAULT_METHOD) -> dict[str, Any] | None:
        """Attribute one doc; store and return its entry (None for an empty doc)."""
        check_method(method)
        target_head = self.model.head(head)
        if label is not None:
            self.model.target_key(target_head, label, None)  # fail before any work
        if not len(doc):
            if doc._.attributions is None:
                doc._.attributions = {}
            return None
        inputs = self.model.inputs(doc)
        with self.model.eval_mode():
            embeds = self.model.embed(inputs)
            if method == "ig":
                entry = self._integrated_gradients(inputs, embeds, target_head, label)
            else:
                with torch.no_grad():
                    probs = self.model.probs(inputs, embeds)[0].cpu().numpy()
                key = self.model.target_key(target_head, label, probs)
                index = self.model.keys.index(key)
                if method == "grad":
                    wordpieces = self._grad_x_input(inputs, embeds, index)
                else:
                    wordpieces = self.model.last_attention(inputs)
                entry = {"key": key, "method": method,
                         "scores": inputs.token_scores(_numpy(wordpieces)),
                         "target_prob": float(probs[index])}
        key = entry.pop("key")
        stored = dict(doc._.attributions or {})
        stored[key] = entry
        doc._.attributions = stored
        for token, score in zip(doc, entry["scores"]):
            token._.attribution = score
        return entry

    def _grad_x_input(self, inputs: DocInputs, embeds: torch.Tensor,
                      index: int) -> torch.Tensor:
        embeds = embeds.clone().requires_grad_(True)
        result = _captum().InputXGradient(self._forward(inputs)).attribute(embeds, target=index)
        return result[0].sum(dim=-1)

    def _integrated_gradients(self, inputs: DocInputs, embeds: torch.Tensor, head,
                              label: str | None) -> dict[str, Any]:
        baseline = self.model.baseline(inputs)
        with torch.no_grad():
            both = self.model.probs(inputs, torch.cat([embeds, baseline])).cpu().numpy()
        key = self.model.target_key(head, label, both[0])
        index = self.model.keys.index(key)
        rows = inputs.n_windows * int(inputs.input_ids.shape[1])
        batch = max(1, min(self.n_steps, IG_ROWS_PER_BATCH // max(rows, 1)))
        ig = _captum().IntegratedGradients(self._forward(inputs))
        result = ig.attribute(embeds, baselines=baseline, target=index, n_steps=self.n_steps,
                              internal_batch_size=batch)
        return {"key": key, "method": "ig",
                "scores": inputs.token_scores(_numpy(result[0].sum(dim=-1))),
                "target_prob": float(both[0, index]), "baseline_prob": float(both[1, index])}

    def _forward(self, inputs: DocInputs):
        def forward(embeds: torch.Tensor) -> torch.Tensor:
            return self.model.probs(inputs, embeds)

        return forward


def _numpy(values: torch.Tensor) -> np.ndarray:
    return values.detach().cpu().double().numpy()


def explain_docs(nlp: Language, docs: Iterable[Doc], *, head: str | None = None,
                 label: str | None = None, method: str = DEFAULT_METHOD,
                 component: str | None = None, n_steps: int = IG_STEPS) -> list[Doc]:
    """Token attributions for docs already processed by ``nlp``; returns the docs.

    head: a head of senti_textcat (default: its first head).
    label: the label to explain (``"positive"``, ``"food/negative"`` or the full ``doc.cats``
        key; default: the head's most probable label, ``absent`` left out).
    method: ``"grad"`` (gradient x input), ``"ig"`` (integrated gradients) or
        ``"attention"``.
    component: the senti_textcat component (default: the first).
    n_steps: integrated-gradients steps.

    Sets ``doc._.attributions["<head>/<label>"] = {"method", "scores", "target_prob"}``
    (one score per spaCy token; ``ig`` adds ``baseline_prob``) and ``token._.attribution``.
    ``doc.cats`` is left unchanged.
    """
    check_method(method)
    docs = list(docs)
    explainer = Explainer(nlp, component, n_steps=n_steps)
    for doc in docs:
        explainer.explain(doc, head=head, label=label, method=method)
    return docs
