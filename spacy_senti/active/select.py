"""Uncertainty and diversity sampling of unlabelled texts for annotation.

Strategies (a higher score = more worth labelling):

* ``entropy``: normalised entropy of the head's distribution (multilabel: mean binary
  entropy over labels; grouped: mean over groups);
* ``margin``: ``1 - (p_top1 - p_top2)`` (multilabel: ``1 - |2p - 1|``, averaged);
* ``least-confidence``: ``1 - p_top1`` (averaged the same way);
* ``diverse``: the top ``candidate_factor * n`` texts by entropy, then k-center greedy on
  the pooled encoder embeddings so the batch does not hold near-duplicates.

With several heads (no ``head`` chosen) the per-head scores are averaged.

Aspect terms (a pipeline with ``senti_aspects``) are one more target, named
``aspect_terms`` (``--head aspect_terms``): a doc's term uncertainty is the larger of the
tagger's uncertainty, the most uncertain of its tokens' ``O``/``B``/``I`` distributions (so a
doc counts when the tagger is unsure whether a word is a term, even if it found none), and
the polarity uncertainty of its most uncertain predicted term; both with the strategy's
measure. With no ``head`` chosen it is averaged with the ``senti_textcat`` heads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from spacy.language import Language
from spacy.tokens import Doc
from tqdm import tqdm

from ..errors import InputError
from ..heads import Head
from ..models.classifier import POOLING_LAYER
from ..util import find_aspects

if TYPE_CHECKING:
    from ..components.aspects import SentiAspects

STRATEGIES = ("entropy", "margin", "least-confidence", "diverse", "random")
ASPECT_TERMS = "aspect_terms"  # the --head name of senti_aspects' terms
EPS = 1e-12


def distribution_uncertainty(dist: np.ndarray, strategy: str) -> np.ndarray:
    """Uncertainty in [0, 1] of each distribution along the last axis (renormalised):
    normalised entropy, ``1 - margin`` or normalised ``1 - p_top1``."""
    dist = np.clip(np.asarray(dist, dtype=float), 0.0, 1.0)
    dist = dist / np.maximum(dist.sum(axis=-1, keepdims=True), EPS)
    k = dist.shape[-1]
    if strategy not in STRATEGIES or strategy == "random":
        raise InputError(f"Unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}.")
    if k < 2:
        return np.zeros(dist.shape[:-1])
    if strategy in ("entropy", "diverse"):
        return -(dist * np.log(np.maximum(dist, EPS))).sum(axis=-1) / np.log(k)
    top = np.sort(dist, axis=-1)[..., ::-1]
    if strategy == "margin":
        return 1.0 - (top[..., 0] - top[..., 1])
    return (1.0 - top[..., 0]) * k / (k - 1)


def uncertainty(head: Head, probs: np.ndarray, strategy: str) -> np.ndarray:
    """Per-doc uncertainty of one head's probabilities (n, head.n_outputs), in [0, 1], over
    its distributions (exclusive: one; multilabel: one binary per label; grouped: per group)."""
    dist = head.distributions(np.asarray(probs, dtype=float))
    return distribution_uncertainty(dist, strategy).mean(axis=1)


def term_uncertainty(tag_probs: Sequence[np.ndarray], polarity_probs: Sequence[np.ndarray],
                     strategy: str) -> np.ndarray:
    """Per-doc aspect term uncertainty in [0, 1]: the larger of the most uncertain token's
    BIO distribution (``tag_probs``: per doc ``(n_tokens, 3)``) and the most uncertain
    term's polarity distribution (``polarity_probs``: per doc ``(n_terms, n_labels)``);
    0 for a doc without tokens."""
    scores = np.zeros(len(tag_probs))
    for i, (tags, polarities) in enumerate(zip(tag_probs, polarity_probs, strict=True)):
        for dist in (tags, polarities):
            if len(dist):
                scores[i] = max(scores[i], float(distribution_uncertainty(dist, strategy).max()))
    return scores


def combined_uncertainty(heads: Sequence[Head], probs: dict[str, np.ndarray],
                         strategy: str, term_scores: np.ndarray | None = None) -> np.ndarray:
    """Mean uncertainty over ``heads`` and, when given, the aspect ``term_scores``."""
    parts = [uncertainty(h, probs[h.name], strategy) for h in heads]
    if term_scores is not None:
        parts.append(np.asarray(term_scores, dtype=float))
    return np.mean(parts, axis=0)


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
    """One selected text: its index in the pool, score and the model's probabilities; with
    aspect terms as a target, also the predicted ``terms`` (Prodigy span dicts: ``start``,
    ``end``, ``token_start``, ``token_end`` (inclusive), ``label`` = polarity, ``text``,
    ``score``) and the doc's ``tokens`` (Prodigy token dicts)."""

    index: int
    text: str
    score: float
    probs: dict[str, np.ndarray]
    terms: list[dict[str, Any]] | None = None
    tokens: list[dict[str, Any]] | None = None


def select(
    heads: Sequence[Head],
    probs: dict[str, np.ndarray],
    n: int,
    strategy: str = "entropy",
    *,
    embeddings: np.ndarray | None = None,
    candidate_factor: int = 5,
    seed: int = 0,
    term_scores: np.ndarray | None = None,
) -> tuple[list[int], np.ndarray]:
    """Indices of the ``n`` docs to label (best first) and every doc's score.

    term_scores: per-doc aspect term uncertainty (:func:`term_uncertainty`), averaged with
        the heads' scores as one more target (alone when ``heads`` is empty).
    """
    if strategy not in STRATEGIES:
        raise InputError(f"Unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}.")
    if not heads and term_scores is None:
        raise InputError("Nothing to select on: no head and no aspect term scores.")
    total = len(term_scores) if term_scores is not None else len(next(iter(probs.values())))
    if n > total:
        raise InputError(f"--n {n} is larger than the pool ({total} texts).")
    if strategy == "random":
        rng = np.random.RandomState(seed)
        return rng.choice(total, size=n, replace=False).tolist(), np.zeros(total)
    scores = combined_uncertainty(heads, probs, strategy, term_scores)
    order = np.argsort(-scores, kind="stable")
    if strategy != "diverse":
        return order[:n].tolist(), scores
    if embeddings is None:
        raise ValueError("The 'diverse' strategy needs pooled embeddings.")
    candidates = order[: min(total, max(n, candidate_factor * n))]
    picked = k_center_greedy(embeddings[candidates], n)
    return [int(candidates[i]) for i in picked], scores


# --- aspect terms (senti_aspects) ---------------------------------------------------------
def aspect_probabilities(aspects: SentiAspects, docs: Sequence[Doc], batch_size: int = 128
                         ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per doc the BIO probabilities ``(n_tokens, 3)`` and the polarity probabilities of the
    predicted terms ``(n_terms, n_labels)``, for docs the pipeline already processed (the
    listener reads their ``doc._.trf_data``: no second encoder pass)."""
    n_labels = len(aspects.labels)
    tag_probs = [np.zeros((len(doc), 3), dtype="f") for doc in docs]
    polarity_probs = [np.zeros((0, n_labels), dtype="f") for _ in docs]
    filled = [i for i, doc in enumerate(docs) if len(doc)]
    for start in range(0, len(filled), batch_size):
        batch = filled[start : start + batch_size]
        pred = aspects.predict([docs[i] for i in batch])
        for i, tags, polarities in zip(batch, pred.tag_probs, pred.polarity_probs):
            tag_probs[i], polarity_probs[i] = tags, polarities
    return tag_probs, polarity_probs


def term_embeddings(aspects: SentiAspects, docs: Sequence[Doc], batch_size: int = 128
                    ) -> np.ndarray:
    """Mean token row of each processed doc (zeros for an empty doc), for ``diverse``."""
    tok2vec = aspects.model.get_ref("tok2vec")
    means: dict[int, np.ndarray] = {}
    filled = [i for i, doc in enumerate(docs) if len(doc)]
    for start in range(0, len(filled), batch_size):
        batch = filled[start : start + batch_size]
        for i, rows in zip(batch, tok2vec.predict([docs[i] for i in batch])):
            means[i] = aspects.model.ops.to_numpy(rows).mean(axis=0)
    width = len(next(iter(means.values()))) if means else 1
    out = np.zeros((len(docs), width), dtype="f")
    for i, row in means.items():
        out[i] = row
    return out


def doc_terms(doc: Doc, spans_key: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The predicted terms of a doc and its tokens, as Prodigy span and token dicts."""
    terms = [
        {"start": span.start_char, "end": span.end_char, "token_start": span.start,
         "token_end": span.end - 1, "label": span.label_, "text": span.text,
         "score": round(float((span._.polarity_scores or {}).get(span.label_, 0.0)), 4)}
        for span in doc.spans.get(spans_key, [])
    ]
    tokens = [{"text": t.text, "start": t.idx, "end": t.idx + len(t.text), "id": t.i,
               "ws": bool(t.whitespace_)} for t in doc]
    return terms, tokens


def _targets(textcat: Any, aspects: SentiAspects | None, head: str | None
             ) -> tuple[list[Head], bool]:
    """The textcat heads to score and whether to score the aspect terms."""
    heads = list(textcat.heads) if textcat is not None else []
    if head is None:
        return heads, aspects is not None
    if any(h.name == head for h in heads):
        return [h for h in heads if h.name == head], False
    if head == ASPECT_TERMS and aspects is not None:
        return [], True
    names = [h.name for h in heads] + ([ASPECT_TERMS] if aspects is not None else [])
    hint = (" (aspect terms need a senti_aspects component in the pipeline)"
            if head == ASPECT_TERMS else "")
    raise InputError(f"Unknown head {head!r}; the pipeline's heads: {names}{hint}.")


def select_texts(nlp: Language, texts: Sequence[str], n: int, strategy: str = "entropy", *,
                 head: str | None = None, component: str = "senti_textcat",
                 candidate_factor: int = 5, batch_size: int = 64, seed: int = 0,
                 progress: bool = True) -> tuple[list[Selection], list[Head]]:
    """Run the pipeline over ``texts`` and pick ``n`` of them for annotation.

    head: one ``senti_textcat`` head, or ``aspect_terms`` (needs ``senti_aspects``); by
        default the mean over the heads and, when the pipeline has ``senti_aspects``, its
        terms. Returns the selections and the textcat heads scored (empty when only terms).
    """
    from ..monitor.inputs import predict
    from ..util import find_textcat

    if strategy not in STRATEGIES:
        raise InputError(
            f"Unknown --strategy {strategy!r}; use one of {', '.join(STRATEGIES)}."
        )
    aspects = find_aspects(nlp)
    if aspects is None:
        textcat = find_textcat(nlp, component)
    else:
        try:
            textcat = find_textcat(nlp, component)
        except InputError:
            textcat = None
    heads, use_terms = _targets(textcat, aspects, head)
    if n < 1 or n > len(texts):
        raise InputError(f"--n {n} must be between 1 and the pool size ({len(texts)} texts).")
    if textcat is not None:
        preds = predict(nlp, texts, component=component, batch_size=batch_size,
                        desc="score pool", progress=progress)
        docs, probs = preds.docs, preds.probs
    else:
        docs = list(tqdm(nlp.pipe(texts, batch_size=batch_size), total=len(texts),
                         desc="score pool", disable=not progress, leave=False))
        probs = {}
    term_scores = None
    if use_terms:
        if strategy == "random":
            term_scores = np.zeros(len(docs))
        else:
            term_scores = term_uncertainty(*aspect_probabilities(aspects, docs), strategy)
    emb = None
    if strategy == "diverse":
        emb = pooled_embeddings(textcat, docs) if heads else term_embeddings(aspects, docs)
    idx, scores = select(heads, probs, n, strategy, embeddings=emb,
                         candidate_factor=candidate_factor, seed=seed, term_scores=term_scores)
    chosen = []
    for i in idx:
        sel = Selection(i, texts[i], float(scores[i]), {h.name: probs[h.name][i] for h in heads})
        if use_terms:
            sel.terms, sel.tokens = doc_terms(docs[i], aspects.spans_key)
        chosen.append(sel)
    return chosen, heads
