"""Token attributions for one ``senti_textcat`` head and label: ``explain_docs``.

Methods (``method=``):

* ``"ig"`` (``DEFAULT_METHOD``): integrated gradients (Captum ``IntegratedGradients``,
  ``n_steps`` points of the Gauss-Legendre rule, 50 by default) from a baseline where every
  wordpiece of a spaCy token is the padding token (``[CLS]``/``[SEP]`` kept). Completeness:
  the token scores sum to ``target_prob - baseline_prob`` (up to the integration error).
* ``"grad"``: gradient x input (Captum ``InputXGradient``) over the word embeddings, summed
  over the embedding dimension: one forward and one backward pass. Cheap, but on a
  fine-tuned (saturated) model its ranking was worse than random in bench/bench_explain.py.
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
#: the method that won the faithfulness bench (bench/results/explain.md): on an SST-2
#: fine-tuned MiniLM, deleting the top 20% tokens by integrated gradients drops the predicted
#: probability by 0.50, by gradient x input by 0.04 (random tokens: 0.07); the fine-tuned
#: model is saturated near its inputs, where the local gradient misleads
DEFAULT_METHOD = "ig"
IG_STEPS = 50  # Captum's default
#: steps of the explanations page of the evaluation report (as faithful as 50 in the bench)
REPORT_IG_STEPS = 16
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
                # doc.cats (equal to the rebuilt forward) picks the label without a forward pass
                probs = self._cats(doc)
                if probs is None:
                    with torch.no_grad():
                        probs = self.model.probs(inputs, embeds)[0].cpu().numpy()
                key = self.model.target_key(target_head, label, probs)
                index = self.model.keys.index(key)
                target_prob = float(probs[index])
                if method == "grad":
                    wordpieces, target_prob = self._grad_x_input(inputs, embeds, index)
                else:
                    wordpieces = self.model.last_attention(inputs)
                entry = {"key": key, "method": method,
                         "scores": inputs.token_scores(_numpy(wordpieces)),
                         "target_prob": target_prob}
        key = entry.pop("key")
        stored = dict(doc._.attributions or {})
        stored[key] = entry
        doc._.attributions = stored
        for token, score in zip(doc, entry["scores"]):
            token._.attribution = score
        return entry

    def _cats(self, doc: Doc) -> np.ndarray | None:
        """``doc.cats`` in output order, or None unless the doc holds every key."""
        if not all(key in doc.cats for key in self.model.keys):
            return None
        return np.asarray([doc.cats[key] for key in self.model.keys], dtype="float64")

    def _grad_x_input(self, inputs: DocInputs, embeds: torch.Tensor,
                      index: int) -> tuple[torch.Tensor, float]:
        """Wordpiece scores (windows, width) and the target's probability (the one forward
        pass that the gradient needs also gives it)."""
        seen: list[torch.Tensor] = []

        def forward(values: torch.Tensor) -> torch.Tensor:
            probs = self.model.probs(inputs, values)
            seen.append(probs.detach())
            return probs

        embeds = embeds.clone().requires_grad_(True)
        result = _captum().InputXGradient(forward).attribute(embeds, target=index)
        return result[0].sum(dim=-1), float(seen[0][0, index])

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
