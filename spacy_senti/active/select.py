"""Uncertainty and diversity sampling of unlabelled texts for annotation.

Strategies (a higher score = more worth labelling):

* ``entropy``: normalised entropy of the head's distribution (multilabel: mean binary
  entropy over labels; grouped: mean over groups);
* ``margin``: ``1 - (p_top1 - p_top2)`` (multilabel: ``1 - |2p - 1|``, averaged);
* ``least-confidence``: ``1 - p_top1`` (averaged the same way);
* ``diverse``: the top ``candidate_factor * n`` texts by entropy, then k-center greedy on
  the pooled encoder embeddings so the batch does not hold near-duplicates.

With several heads (no ``head`` chosen) the per-head scores are averaged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from spacy.language import Language
from spacy.tokens import Doc

from ..errors import InputError
from ..heads import Head
from ..models.classifier import POOLING_LAYER

STRATEGIES = ("entropy", "margin", "least-confidence", "diverse", "random")
EPS = 1e-12


def uncertainty(head: Head, probs: np.ndarray, strategy: str) -> np.ndarray:
    """Per-doc uncertainty of one head's probabilities (n, head.n_outputs), in [0, 1], over
    its distributions (exclusive: one; multilabel: one binary per label; grouped: per group)."""
    dist = np.clip(head.distributions(np.asarray(probs, dtype=float)), 0.0, 1.0)
    dist = dist / np.maximum(dist.sum(axis=-1, keepdims=True), EPS)
    k = dist.shape[-1]
    if strategy in ("entropy", "diverse"):
        ent = -(dist * np.log(np.maximum(dist, EPS))).sum(axis=-1) / np.log(max(k, 2))
        return ent.mean(axis=1)
    top = np.sort(dist, axis=-1)[..., ::-1]
    if strategy == "margin":
        return (1.0 - (top[..., 0] - top[..., 1])).mean(axis=1)
    if strategy == "least-confidence":
        return ((1.0 - top[..., 0]) * k / (k - 1)).mean(axis=1)
    raise InputError(f"Unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}.")


def combined_uncertainty(heads: Sequence[Head], probs: dict[str, np.ndarray],
                         strategy: str) -> np.ndarray:
    """Mean uncertainty over ``heads``."""
    return np.mean([uncertainty(h, probs[h.name], strategy) for h in heads], axis=0)


def pooled_embeddings(pipe, docs: Sequence[Doc], batch_size: int = 128) -> np.ndarray:
    """Pooled encoder vectors of docs already processed by the pipeline (so a transformer
    listener finds its upstream output): the model's layers up to the pooling layer."""
    model = pipe.model
    pool = model.get_ref(POOLING_LAYER)
    layers = model.layers[: model.layers.index(pool) + 1]
    out = []
    for start in range(0, len(docs), batch_size):
        X = list(docs[start : start + batch_size])
        for layer in layers:
            X = layer.predict(X)
        out.append(model.ops.to_numpy(X))
    return np.concatenate(out, axis=0) if out else np.zeros((0, 0), dtype="f")


def k_center_greedy(vectors: np.ndarray, n: int, first: int = 0) -> list[int]:
    """Indices of ``n`` rows chosen greedily to cover ``vectors`` (each new row is the one
    farthest from those already chosen), starting from row ``first``."""
    vectors = np.asarray(vectors, dtype=float)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors / np.maximum(norms, EPS)
    chosen = [first]
    dist = np.linalg.norm(vectors - vectors[first], axis=1)
    while len(chosen) < min(n, len(vectors)):
        nxt = int(dist.argmax())
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(vectors - vectors[nxt], axis=1))
    return chosen


@dataclass
class Selection:
    """One selected text: its index in the pool, score and the model's probabilities."""

    index: int
    text: str
    score: float
    probs: dict[str, np.ndarray]


def select(
    heads: Sequence[Head],
    probs: dict[str, np.ndarray],
    n: int,
    strategy: str = "entropy",
    *,
    embeddings: np.ndarray | None = None,
    candidate_factor: int = 5,
    seed: int = 0,
) -> tuple[list[int], np.ndarray]:
    """Indices of the ``n`` docs to label (best first) and every doc's score."""
    if strategy not in STRATEGIES:
        raise InputError(f"Unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}.")
    total = len(next(iter(probs.values())))
    if n > total:
        raise InputError(f"--n {n} is larger than the pool ({total} texts).")
    if strategy == "random":
        rng = np.random.RandomState(seed)
        return rng.choice(total, size=n, replace=False).tolist(), np.zeros(total)
    scores = combined_uncertainty(heads, probs, strategy)
    order = np.argsort(-scores, kind="stable")
    if strategy != "diverse":
        return order[:n].tolist(), scores
    if embeddings is None:
        raise ValueError("The 'diverse' strategy needs pooled embeddings.")
    candidates = order[: min(total, max(n, candidate_factor * n))]
    picked = k_center_greedy(embeddings[candidates], n)
    return [int(candidates[i]) for i in picked], scores


def select_texts(nlp: Language, texts: Sequence[str], n: int, strategy: str = "entropy", *,
                 head: str | None = None, component: str = "senti_textcat",
                 candidate_factor: int = 5, batch_size: int = 64, seed: int = 0,
                 progress: bool = True) -> tuple[list[Selection], list[Head]]:
    """Run the pipeline over ``texts`` and pick ``n`` of them for annotation."""
    from ..monitor.inputs import check_head, predict
    from ..util import find_textcat

    if strategy not in STRATEGIES:
        raise InputError(
            f"Unknown --strategy {strategy!r}; use one of {', '.join(STRATEGIES)}."
        )
    pipe = find_textcat(nlp, component)
    heads = check_head(pipe.heads, head)
    if n < 1 or n > len(texts):
        raise InputError(f"--n {n} must be between 1 and the pool size ({len(texts)} texts).")
    preds = predict(nlp, texts, component=component, batch_size=batch_size, desc="score pool",
                    progress=progress)
    emb = pooled_embeddings(pipe, preds.docs) if strategy == "diverse" else None
    idx, scores = select(heads, preds.probs, n, strategy, embeddings=emb,
                         candidate_factor=candidate_factor, seed=seed)
    chosen = [
        Selection(i, texts[i], float(scores[i]), {h.name: preds.probs[h.name][i] for h in heads})
        for i in idx
    ]
    return chosen, heads
