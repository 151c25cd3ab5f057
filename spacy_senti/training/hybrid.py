"""Fitting ``senti_hybrid`` on dev data: features, the stacker, lexicon cut-offs, blend weight.

Used by ``spacy-senti fit-hybrid`` and ``bench/bench_lowdata.py``. scikit-learn is imported
here only, so inference never needs it.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from spacy.language import Language
from spacy.tokens import Doc

from ..components.hybrid import (
    DEFAULT_LABELS,
    LEXICON_FEATURES,
    SentiHybrid,
    Stacker,
    feature_vector,
    lexicon_features,
    lexicon_label,
    lexicon_probs,
    model_feature_names,
    polar_labels,
)
from ..components.lexicon import SentiLexicon
from ..components.textcat import SentiTextCategorizer
from ..errors import ConfigError
from ..heads import SEP, ExclusiveHead
from ..util import find_textcat

C_GRID = (0.01, 0.1, 1.0, 10.0)
CUTOFF_GRID = tuple(round(x, 2) for x in np.arange(-0.95, 0.951, 0.05))
WEIGHT_GRID = tuple(round(x, 2) for x in np.arange(0.0, 1.001, 0.05))
VADER_CUTOFFS = (-0.05, 0.05)


@dataclass
class HybridData:
    """What the hybrid sees on a set of docs, with the gold labels."""

    labels: list[str]
    gold: list[str]
    model: list[dict[str, float]] | None
    lexicon: list[dict[str, float]]

    def matrix(self) -> np.ndarray:
        """Stacker features, one row per doc."""
        assert self.model is not None
        return np.asarray(
            [feature_vector(self.labels, m, lx) for m, lx in zip(self.model, self.lexicon)]
        )

    @property
    def compounds(self) -> list[float]:
        return [lx["compound"] for lx in self.lexicon]


@dataclass
class HybridFit:
    """Fitted values and dev scores (``hybrid`` is in-sample for the stacker)."""

    mode: str
    labels: list[str]
    n_docs: int
    cutoffs: tuple[float, float] | None
    blend_weight: float | None
    stacker: Stacker | None
    scores: dict[str, dict[str, float]] = field(default_factory=dict)


# --- gold and pipeline checks ---------------------------------------------------------------------
def gold_label(cats: dict[str, float], head: str = "sentiment") -> str | None:
    """The gold label of an exclusive head in ``doc.cats`` (argmax), or None if absent."""
    prefix = head + SEP
    values = {k[len(prefix):]: v for k, v in cats.items() if k.startswith(prefix)}
    if not values or max(values.values()) <= 0:
        return None
    return max(values, key=values.__getitem__)


def gold_labels(docs: Sequence[Doc], head: str = "sentiment") -> list[str | None]:
    """Gold labels per doc; raises when no doc has ``<head>/...`` keys."""
    labels = [gold_label(doc.cats, head) for doc in docs]
    if not any(label is not None for label in labels):
        raise ConfigError(
            f"The dev data has no gold '{head}{SEP}<label>' keys in doc.cats (found e.g. "
            f"{sorted({k for d in docs[:50] for k in d.cats})[:5]}). Convert it with "
            "`spacy-senti convert` (head name --head)."
        )
    return labels


def hybrid_textcat(nlp: Language, head: str = "sentiment") -> SentiTextCategorizer | None:
    """The ``senti_textcat`` with an exclusive head ``head``; None if no senti_textcat.

    Raises if a senti_textcat exists but has no such exclusive head.
    """
    if not any(isinstance(pipe, SentiTextCategorizer) for _, pipe in nlp.pipeline):
        return None
    try:
        pipe = find_textcat(nlp, head=head)
    except ConfigError as err:
        raise ConfigError(f"{err} Pass --head, or use --mode lexicon.") from None
    spec = pipe.get_head(head)
    if not isinstance(spec, ExclusiveHead):
        raise ConfigError(
            f"Head '{head}' of {pipe.name} is {spec.kind}; senti_hybrid needs an "
            "exclusive (softmax) head."
        )
    return pipe


def ensure_lexicon(nlp: Language, config: dict[str, Any] | None = None) -> str:
    """Name of the pipeline's senti_lexicon; adds one (before any hybrid) if missing."""
    for name, pipe in nlp.pipeline:
        if isinstance(pipe, SentiLexicon):
            return name
    hybrids = [name for name, pipe in nlp.pipeline if isinstance(pipe, SentiHybrid)]
    kwargs = {"before": hybrids[0]} if hybrids else {}
    nlp.add_pipe("senti_lexicon", config=config or {}, **kwargs)
    return "senti_lexicon"


# --- features ---------------------------------------------------------------------------------
def collect(
    nlp: Language,
    docs: Sequence[Doc],
    head: str = "sentiment",
    batch_size: int = 64,
    progress: Iterable | None = None,
) -> HybridData:
    """Run the pipeline (hybrids disabled) on the texts of gold ``docs``; keep gold-labelled."""
    gold = gold_labels(docs, head)
    keep = [i for i, g in enumerate(gold) if g is not None and docs[i].text.strip()]
    texts = [docs[i].text for i in keep]
    textcat = hybrid_textcat(nlp, head)
    hybrids = [name for name, pipe in nlp.pipeline if isinstance(pipe, SentiHybrid)]
    model: list[dict[str, float]] | None = [] if textcat is not None else None
    lexicon: list[dict[str, float]] = []
    prefix = head + SEP
    with nlp.select_pipes(disable=hybrids):
        stream = nlp.pipe(texts, batch_size=batch_size)
        if progress is not None:
            stream = progress(stream, total=len(texts))
        for doc in stream:
            lexicon.append(lexicon_features(doc))
            if model is not None:
                model.append({k[len(prefix):]: v for k, v in doc.cats.items()
                              if k.startswith(prefix)})
    gold_kept = [str(gold[i]) for i in keep]
    if textcat is not None:
        labels = list(textcat.get_head(head).labels)
    else:
        present = set(gold_kept)
        labels = [lab for lab in DEFAULT_LABELS if lab in present] + sorted(
            present - set(DEFAULT_LABELS)
        )
    unknown = set(gold_kept) - set(labels)
    if unknown:
        raise ConfigError(
            f"Dev labels {sorted(unknown)} are not among the model's labels {labels}."
        )
    return HybridData(labels, gold_kept, model, lexicon)


# --- metrics ---------------------------------------------------------------------------------
def accuracy_macro_f1(gold: Sequence[str], pred: Sequence[str],
                      labels: Sequence[str]) -> dict[str, float]:
    """Accuracy and macro-F1 over ``labels`` (a label never gold nor predicted: F1 0)."""
    g = np.asarray(list(gold), dtype=object)
    p = np.asarray(list(pred), dtype=object)
    if not len(g):
        return {"acc": 0.0, "macro_f1": 0.0}
    f1s = []
    for label in labels:
        tp = float(np.sum((g == label) & (p == label)))
        denom = float(np.sum(g == label) + np.sum(p == label))
        f1s.append(2 * tp / denom if denom else 0.0)
    return {"acc": float(np.mean(g == p)), "macro_f1": float(np.mean(f1s))}


def argmax_labels(scores: Sequence[dict[str, float]]) -> list[str]:
    return [max(s, key=s.__getitem__) for s in scores]


# --- fitting ---------------------------------------------------------------------------------
def tune_cutoffs(compounds: Sequence[float], gold: Sequence[str],
                 labels: Sequence[str]) -> tuple[float, float]:
    """Cut-offs maximising dev macro-F1 (then accuracy, then closeness to VADER's ±0.05).

    Binary label sets tune one cut (returned as ``(cut, cut)``).
    """
    polar = polar_labels(labels)
    if polar is None:
        raise ConfigError(f"Cannot tune lexicon cut-offs for labels {list(labels)}.")
    if "neutral" in polar:
        pairs = [(n, p) for n in CUTOFF_GRID for p in CUTOFF_GRID if n <= p]
    else:
        pairs = [(c, c) for c in CUTOFF_GRID] + [(0.0, 0.0)]
    best_key, best = None, VADER_CUTOFFS
    for neg, pos in pairs:
        pred = [lexicon_label(c, labels, neg, pos) for c in compounds]
        m = accuracy_macro_f1(gold, pred, labels)
        distance = abs(neg - VADER_CUTOFFS[0]) + abs(pos - VADER_CUTOFFS[1])
        key = (round(m["macro_f1"], 6), round(m["acc"], 6), -distance)
        if best_key is None or key > best_key:
            best_key, best = key, (float(neg), float(pos))
    return best


def fit_stacker(X: np.ndarray, y: Sequence[str], labels: Sequence[str],
                seed: int = 0) -> Stacker:
    """Multinomial logistic regression on standardised features; C by CV log-loss."""
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV

    X = np.asarray(X, dtype="float64")
    y = np.asarray(list(y))
    classes = sorted(set(y.tolist()))
    if len(classes) < 2:
        raise ConfigError(f"The dev data has a single label {classes}: nothing to fit.")
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale < 1e-8] = 1.0
    Z = (X - mean) / scale
    min_count = min(int((y == c).sum()) for c in classes)
    folds = min(5, min_count)
    if folds >= 2:
        model = LogisticRegressionCV(Cs=list(C_GRID), cv=folds, scoring="neg_log_loss",
                                     max_iter=2000, random_state=seed)
        with warnings.catch_warnings():  # scikit-learn 1.9's notices about 1.10 defaults
            warnings.simplefilter("ignore", FutureWarning)
            model.fit(Z, y)
        C = float(np.atleast_1d(model.C_)[0])
    else:
        C = 1.0
        model = LogisticRegression(C=C, max_iter=2000, random_state=seed).fit(Z, y)
    names = model_feature_names(labels) + list(LEXICON_FEATURES)
    return Stacker(
        classes=[str(c) for c in model.classes_],
        feature_names=names,
        mean=mean.tolist(),
        scale=scale.tolist(),
        coef=model.coef_.tolist(),
        intercept=model.intercept_.tolist(),
        C=C,
    )


def tune_blend_weight(data: HybridData, cutoffs: tuple[float, float],
                      sharpness: float) -> float:
    """Blend weight maximising dev macro-F1 (ties: the larger model weight)."""
    assert data.model is not None
    lex = [lexicon_probs(c, data.labels, *cutoffs, sharpness) for c in data.compounds]
    best_key, best_w = None, 1.0
    for w in WEIGHT_GRID:
        pred = [max(m, key=lambda lab, m=m, lx=lx: w * m[lab] + (1 - w) * lx[lab])
                for m, lx in zip(data.model, lex)]
        f1 = accuracy_macro_f1(data.gold, pred, data.labels)
        key = (round(f1["macro_f1"], 6), round(f1["acc"], 6), w)
        if best_key is None or key > best_key:
            best_key, best_w = key, float(w)
    return best_w


def fit_on_data(
    data: HybridData,
    mode: str = "stacker",
    blend_weight: float | None = None,
    sharpness: float = 5.0,
    seed: int = 0,
) -> HybridFit:
    """Fit cut-offs (always, when the labels are polar), stacker or blend weight."""
    if mode not in ("stacker", "blend", "lexicon"):
        raise ConfigError(f"Unknown mode {mode!r}.")
    if mode != "lexicon" and data.model is None:
        raise ConfigError(
            f"Mode {mode!r} needs a senti_textcat in the pipeline; use --mode lexicon."
        )
    polar = polar_labels(data.labels) is not None
    cutoffs = tune_cutoffs(data.compounds, data.gold, data.labels) if polar else None
    if mode in ("lexicon", "blend") and not polar:
        raise ConfigError(
            f"Mode {mode!r} needs negative/positive(/neutral) labels, not {data.labels}."
        )
    stacker = fit_stacker(data.matrix(), data.gold, data.labels, seed) \
        if mode == "stacker" else None
    weight = blend_weight
    if mode == "blend" and weight is None:
        weight = tune_blend_weight(data, cutoffs or VADER_CUTOFFS, sharpness)
    result = HybridFit(mode, list(data.labels), len(data.gold), cutoffs, weight, stacker)
    result.scores = score_sources(data, result, sharpness)
    return result


def hybrid_predictions(data: HybridData, result: HybridFit,
                       sharpness: float = 5.0) -> list[str]:
    """Labels the fitted hybrid gives on ``data`` (same maths as the component)."""
    cutoffs = result.cutoffs or VADER_CUTOFFS
    if result.mode == "lexicon":
        return [lexicon_label(c, data.labels, *cutoffs) for c in data.compounds]
    assert data.model is not None
    if result.mode == "stacker":
        assert result.stacker is not None
        probs = result.stacker.predict_proba(data.matrix())
        return [result.stacker.classes[i] for i in probs.argmax(axis=1)]
    w = float(result.blend_weight if result.blend_weight is not None else 0.7)
    out = []
    for m, c in zip(data.model, data.compounds):
        lx = lexicon_probs(c, data.labels, *cutoffs, sharpness)
        out.append(max(data.labels, key=lambda lab, m=m, lx=lx: w * m[lab] + (1 - w) * lx[lab]))
    return out


def score_sources(data: HybridData, result: HybridFit,
                  sharpness: float = 5.0) -> dict[str, dict[str, float]]:
    """Accuracy and macro-F1 of model-only, lexicon-only and the hybrid on ``data``."""
    scores: dict[str, dict[str, float]] = {}
    if data.model is not None:
        scores["model"] = accuracy_macro_f1(data.gold, argmax_labels(data.model), data.labels)
    if result.cutoffs is not None:
        pred = [lexicon_label(c, data.labels, *result.cutoffs) for c in data.compounds]
        scores["lexicon"] = accuracy_macro_f1(data.gold, pred, data.labels)
    scores["hybrid"] = accuracy_macro_f1(
        data.gold, hybrid_predictions(data, result, sharpness), data.labels
    )
    return scores


def install_hybrid(nlp: Language, result: HybridFit, head: str = "sentiment",
                   sharpness: float = 5.0, name: str = "senti_hybrid") -> SentiHybrid:
    """Replace any senti_hybrid by one configured and fitted from ``result`` (added last)."""
    for old, pipe in list(nlp.pipeline):
        if isinstance(pipe, SentiHybrid):
            nlp.remove_pipe(old)
    cutoffs = result.cutoffs or VADER_CUTOFFS
    config: dict[str, Any] = {
        "mode": result.mode,
        "head": head,
        "labels": list(result.labels),
        "neg_cutoff": cutoffs[0],
        "pos_cutoff": cutoffs[1],
        "sharpness": sharpness,
    }
    if result.blend_weight is not None:
        config["blend_weight"] = result.blend_weight
    hybrid = nlp.add_pipe("senti_hybrid", name=name, config=config, last=True)
    hybrid.set_fitted(stacker=result.stacker, cutoffs=cutoffs,
                      blend_weight=result.blend_weight)
    return hybrid


def fit_hybrid(
    nlp: Language,
    docs: Sequence[Doc],
    mode: str = "stacker",
    head: str = "sentiment",
    blend_weight: float | None = None,
    lexicon_config: dict[str, Any] | None = None,
    sharpness: float = 5.0,
    batch_size: int = 64,
    progress: Iterable | None = None,
) -> HybridFit:
    """Add senti_lexicon if missing, fit on gold ``docs`` and install a fitted senti_hybrid."""
    textcat = hybrid_textcat(nlp, head)
    if textcat is None and mode != "lexicon":
        raise ConfigError(
            f"Mode {mode!r} needs a senti_textcat with an exclusive head '{head}'; the pipeline "
            f"has {nlp.pipe_names}. Use --mode lexicon for the zero-shot lexicon."
        )
    gold_labels(docs, head)  # fail before running the pipeline
    ensure_lexicon(nlp, lexicon_config)
    data = collect(nlp, docs, head, batch_size=batch_size, progress=progress)
    result = fit_on_data(data, mode, blend_weight, sharpness)
    install_hybrid(nlp, result, head, sharpness)
    return result


__all__ = [
    "HybridFit",
    "HybridData",
    "accuracy_macro_f1",
    "collect",
    "ensure_lexicon",
    "hybrid_textcat",
    "fit_hybrid",
    "fit_on_data",
    "fit_stacker",
    "gold_labels",
    "install_hybrid",
    "score_sources",
    "tune_blend_weight",
    "tune_cutoffs",
]
