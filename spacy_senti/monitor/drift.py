"""Drift between a reference and a current sample of texts, seen through a pipeline.

Measures (PSI = Population Stability Index, ``sum((c - r) * ln(c / r))`` over bins):

* per head: PSI of the prediction confidence (binned on reference quantiles) and PSI of the
  predicted label distribution;
* text length (tokens): PSI and the two-sample Kolmogorov-Smirnov test (scipy);
* vocabulary: wordpieces per word with the pipeline's transformer tokenizer, or, for
  pipelines without one (tok2vec), the out-of-vocabulary rate against the reference: tokens
  of a current sample unseen in one half of the reference, compared with the same rate of the
  other reference half (equal sample sizes, so the rates are comparable). The pipeline's
  string store is not used: it holds whatever the pipeline processed before it was saved.

Rule of thumb: PSI < 0.1 stable, 0.1-0.2 moderate, > 0.2 drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import ks_2samp
from spacy.language import Language

from ..heads import Head
from .inputs import Predictions

EPS = 1e-4
DEFAULT_THRESHOLD = 0.2
DEFAULT_VOCAB_THRESHOLD = 0.25


# --- statistics ------------------------------------------------------------------------
def quantile_edges(reference: np.ndarray, n_bins: int = 10) -> np.ndarray:
    """Interior bin edges at reference quantiles (duplicates removed)."""
    qs = np.quantile(np.asarray(reference, dtype=float), np.linspace(0, 1, n_bins + 1)[1:-1])
    return np.unique(qs)


def psi_from_fractions(ref: np.ndarray, cur: np.ndarray, eps: float = EPS) -> float:
    """PSI of two distributions over the same bins (empty bins floored at ``eps``)."""
    ref = np.clip(np.asarray(ref, dtype=float), eps, None)
    cur = np.clip(np.asarray(cur, dtype=float), eps, None)
    ref, cur = ref / ref.sum(), cur / cur.sum()
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def psi(reference: Sequence[float], current: Sequence[float], n_bins: int = 10) -> float:
    """PSI of a continuous value, binned on the reference's quantiles."""
    reference, current = np.asarray(reference, float), np.asarray(current, float)
    if not len(reference) or not len(current):
        raise ValueError("PSI needs non-empty reference and current samples.")
    edges = quantile_edges(reference, n_bins)
    ref = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1)
    cur = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1)
    return psi_from_fractions(ref / len(reference), cur / len(current))


def categorical_psi(reference: Sequence[str], current: Sequence[str]) -> float:
    """PSI of two label samples over the union of their categories."""
    cats = sorted(set(reference) | set(current))
    ref = np.array([sum(1 for x in reference if x == c) for c in cats], dtype=float)
    cur = np.array([sum(1 for x in current if x == c) for c in cats], dtype=float)
    return psi_from_fractions(ref / max(ref.sum(), 1), cur / max(cur.sum(), 1))


# --- per-head views ----------------------------------------------------------------------
def confidence(head: Head, probs: np.ndarray) -> np.ndarray:
    """Per doc: the mean over the head's distributions of their top probability (exclusive:
    top probability; multilabel: mean max(p, 1-p); grouped: mean over groups)."""
    return head.distributions(probs).max(axis=2).mean(axis=1)


def predicted_labels(head: Head, probs: np.ndarray) -> list[str]:
    """Predicted labels, one entry per decision (multilabel: per label over threshold;
    grouped: ``group/polarity`` of present groups; ``(none)`` for docs without any)."""
    return [label for row in probs for label in head.predicted_labels(row) or ["(none)"]]


# --- vocabulary shift --------------------------------------------------------------------
def transformer_tokenizer(nlp: Language) -> Any | None:
    """The Hugging Face tokenizer of the pipeline's transformer component, if any."""
    for _, pipe in nlp.pipeline:
        model = getattr(pipe, "model", None)
        tokenizer = getattr(model, "attrs", {}).get("tokenizer") if model is not None else None
        if tokenizer is not None:
            return tokenizer
    return None


def wordpieces_per_word(tokenizer: Any, docs: Sequence) -> tuple[float, float]:
    """(wordpieces per word, fraction of words split into several pieces)."""
    words = [t.text for doc in docs for t in doc if not t.is_space]
    if not words:
        return 0.0, 0.0
    pieces = tokenizer(words, add_special_tokens=False)["input_ids"]
    counts = np.array([max(len(p), 1) for p in pieces], dtype=float)
    return float(counts.mean()), float((counts > 1).mean())


def _words(docs: Sequence) -> list[str]:
    return [t.lower_ for doc in docs for t in doc if not (t.is_space or t.is_punct)]


def reference_oov_rates(reference: Sequence, current: Sequence, seed: int = 0
                        ) -> tuple[float, float]:
    """(OOV rate of reference half B, OOV rate of a current sample of B's size) against the
    vocabulary of reference half A."""
    rng = np.random.RandomState(seed)
    order = rng.permutation(len(reference))
    half = len(order) // 2
    known = set(_words([reference[i] for i in order[:half]]))
    held_out = [reference[i] for i in order[half:]]
    size = min(len(held_out), len(current))
    sample = [current[i] for i in rng.choice(len(current), size=size, replace=False)]
    return oov_rate(known, held_out[:size]), oov_rate(known, sample)


def oov_rate(known: set[str], docs: Sequence) -> float:
    """Fraction of (non-space, non-punct) tokens whose lowercase form is not in ``known``."""
    tokens = _words(docs)
    if not tokens:
        return 0.0
    return float(np.mean([tok not in known for tok in tokens]))


# --- the report ----------------------------------------------------------------------------
@dataclass
class Metric:
    """One drift measure: reference / current summaries and whether it crosses its threshold."""

    name: str
    value: float
    threshold: float
    kind: str  # "psi" or "relative"
    reference: float | None = None
    current: float | None = None
    note: str = ""

    @property
    def drifted(self) -> bool:
        return self.value > self.threshold


@dataclass
class DriftResult:
    """All measures, plus the raw samples the figures are drawn from."""

    n_reference: int
    n_current: int
    metrics: list[Metric] = field(default_factory=list)
    ks_statistic: float = 0.0
    ks_pvalue: float = 1.0
    samples: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    @property
    def drifted(self) -> bool:
        return any(m.drifted for m in self.metrics)

    def to_dict(self) -> dict[str, Any]:
        return {
            "drift": self.drifted,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "length_ks": {"statistic": self.ks_statistic, "pvalue": self.ks_pvalue},
            "metrics": [
                {"name": m.name, "value": m.value, "threshold": m.threshold, "kind": m.kind,
                 "reference": m.reference, "current": m.current, "drift": m.drifted,
                 "note": m.note}
                for m in self.metrics
            ],
        }


def compute_drift(
    nlp: Language,
    heads: Sequence[Head],
    reference: Predictions,
    current: Predictions,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    vocab_threshold: float = DEFAULT_VOCAB_THRESHOLD,
    n_bins: int = 10,
) -> DriftResult:
    """Compare the predictions (and texts) of a reference and a current sample."""
    result = DriftResult(len(reference.docs), len(current.docs))
    for head in heads:
        ref_p, cur_p = reference.probs[head.name], current.probs[head.name]
        ref_c, cur_c = confidence(head, ref_p), confidence(head, cur_p)
        result.metrics.append(Metric(
            f"{head.name}: confidence PSI", psi(ref_c, cur_c, n_bins), threshold, "psi",
            float(ref_c.mean()), float(cur_c.mean()), "mean confidence"))
        ref_l, cur_l = predicted_labels(head, ref_p), predicted_labels(head, cur_p)
        result.metrics.append(Metric(
            f"{head.name}: predicted label PSI", categorical_psi(ref_l, cur_l), threshold, "psi",
            note=_label_note(ref_l, cur_l)))
        result.samples[f"{head.name} confidence"] = (ref_c, cur_c)
        result.samples[f"{head.name} labels"] = (ref_l, cur_l)
    ref_len = np.array([len(d) for d in reference.docs], dtype=float)
    cur_len = np.array([len(d) for d in current.docs], dtype=float)
    result.metrics.append(Metric("text length PSI", psi(ref_len, cur_len, n_bins), threshold,
                                 "psi", float(np.median(ref_len)), float(np.median(cur_len)),
                                 "median tokens"))
    ks = ks_2samp(ref_len, cur_len)
    result.ks_statistic, result.ks_pvalue = float(ks.statistic), float(ks.pvalue)
    result.samples["text length (tokens)"] = (ref_len, cur_len)
    result.metrics.append(_vocab_metric(nlp, reference, current, vocab_threshold))
    return result


def _vocab_metric(nlp: Language, reference: Predictions, current: Predictions,
                  threshold: float) -> Metric:
    tokenizer = transformer_tokenizer(nlp)
    if tokenizer is not None:
        ref, ref_frag = wordpieces_per_word(tokenizer, reference.docs)
        cur, cur_frag = wordpieces_per_word(tokenizer, current.docs)
        name = "wordpieces per word (relative change)"
        note = f"words split: {ref_frag:.1%} -> {cur_frag:.1%}"
    else:
        ref, cur = reference_oov_rates(reference.docs, current.docs)
        name = "OOV token rate (relative change)"
        note = "tokens unseen in half of the reference"
    change = abs(cur - ref) / max(ref, 1e-6)
    return Metric(name, change, threshold, "relative", ref, cur, note)


def _label_note(ref: list[str], cur: list[str], top: int = 4) -> str:
    cats = sorted(set(ref) | set(cur), key=lambda c: -ref.count(c))[:top]
    return ", ".join(
        f"{c} {ref.count(c) / max(len(ref), 1):.0%}->{cur.count(c) / max(len(cur), 1):.0%}"
        for c in cats
    )
