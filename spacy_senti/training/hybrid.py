"""Fitting ``senti_hybrid`` on dev data: features, the stacker, lexicon cut-offs, blend weight,
and the cross-validated choice among model-only, blend and stacker (``mode="auto"``).

The stacker is a multinomial logistic regression whose logits are the model's log-probabilities
(a fixed offset) plus a linear function of the standardised features; the L2 penalty covers
every learnt weight, so it shrinks the stacker toward the model itself (at ``C -> 0`` the
stacker returns the model's probabilities). scikit-learn's ``LogisticRegression`` has no offset
term and never penalises the intercept, so the fit is a small L-BFGS problem solved with
``scipy.optimize`` (analytic gradient, float64, deterministic).

Robustness to the dev set's label mix (on by default): a dev set's label frequencies are an
accident of how it was sampled and rarely those of the data the pipeline will meet. With
``balanced=True`` every fitted value treats dev as if each label were equally frequent: each
doc weighs ``1 / (its label's frequency)`` in the stacker's loss, its standardisation and its
choice of C, in the macro-F1 that tunes the lexicon cut-offs and the blend weight, and in the
cross-validated choice of mode. With ``intercept=False`` the stacker has no per-class bias: its
deviation from the model depends only on the features (centred on the balanced dev mean), so it
cannot learn dev's prior as a constant shift.

Used by ``spacy-senti fit-hybrid`` and the benches (``bench_lowdata``, ``bench_checklist``).
scikit-learn and SciPy are imported here only, so inference never needs them.
"""

from __future__ import annotations

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
from ..errors import ConfigError, InputError
from ..heads import SEP, ExclusiveHead
from ..util import find_textcat

# Inverse regularisation strengths tried for the stacker (scikit-learn's convention: the
# penalty is ||w||^2 / 2 against C x the summed log-loss); the smallest is close to model-only.
C_GRID = (1e-5, 1e-4, 1e-3, 0.01, 0.1, 1.0, 10.0)
FIT_MODES = ("auto", "model", "stacker", "blend", "lexicon")
# What ``auto`` chooses among, simplest first (the order ties are broken in).
CANDIDATES = ("model", "blend", "stacker")
DEFAULT_FOLDS = 5
CUTOFF_GRID = tuple(round(x, 2) for x in np.arange(-0.95, 0.951, 0.05))
WEIGHT_GRID = tuple(round(x, 2) for x in np.arange(0.0, 1.001, 0.05))
VADER_CUTOFFS = (-0.05, 0.05)
# Defaults of the label-mix options (see the module doc); the CLI flags follow them.
BALANCED = True
INTERCEPT = False


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

    def subset(self, index: Sequence[int]) -> HybridData:
        """The docs at ``index`` (same labels)."""
        idx = [int(i) for i in index]
        return HybridData(
            list(self.labels),
            [self.gold[i] for i in idx],
            None if self.model is None else [self.model[i] for i in idx],
            [self.lexicon[i] for i in idx],
        )


@dataclass
class HybridFit:
    """Fitted values and dev scores (``hybrid`` is in-sample for the stacker and blend).

    ``mode`` is the mode installed (for ``auto``: the one chosen); ``selection`` holds the
    cross-validation behind an ``auto`` choice (``Selection.to_dict()``), else None;
    ``options``: the label-mix options it was fitted with (``fit_options``).
    """

    mode: str
    labels: list[str]
    n_docs: int
    cutoffs: tuple[float, float] | None
    blend_weight: float | None
    stacker: Stacker | None
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    selection: dict[str, Any] | None = None
    options: dict[str, Any] = field(default_factory=dict)


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


def _scores_codes(gold: np.ndarray, pred: np.ndarray, n_labels: int,
                  weights: np.ndarray | None = None) -> tuple[float, float]:
    """(macro-F1, accuracy) of integer-coded labels, each doc counted ``weights`` times
    (None: once; then the same numbers as accuracy_macro_f1)."""
    w = np.ones(len(gold)) if weights is None else np.asarray(weights, dtype="float64")
    f1s = []
    for label in range(n_labels):
        tp = float(w[(gold == label) & (pred == label)].sum())
        denom = float(w[gold == label].sum() + w[pred == label].sum())
        f1s.append(2 * tp / denom if denom else 0.0)
    total = float(w.sum())
    return float(np.mean(f1s)), float(w[gold == pred].sum() / total) if total else 0.0


def balanced_weights(codes: np.ndarray) -> np.ndarray:
    """Per-doc weights ``n / (n_present_labels * count(label))``: every label present weighs the
    same in total, and the weights average 1 (scikit-learn's ``class_weight="balanced"``)."""
    codes = np.asarray(codes, dtype=int)
    if not len(codes):
        return np.ones(0)
    present, counts = np.unique(codes, return_counts=True)
    per_label = dict(zip(present.tolist(), (len(codes) / (len(present) * counts)).tolist()))
    return np.asarray([per_label[c] for c in codes.tolist()], dtype="float64")


def _weights(codes: np.ndarray, balanced: bool) -> np.ndarray | None:
    return balanced_weights(codes) if balanced else None


def argmax_labels(scores: Sequence[dict[str, float]]) -> list[str]:
    return [max(s, key=s.__getitem__) for s in scores]


def _codes(labels: Sequence[str], values: Sequence[str]) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    return np.asarray([index[v] for v in values], dtype=int)


# --- lexicon cut-offs and blend weight ---------------------------------------------------------
def tune_cutoffs(compounds: Sequence[float], gold: Sequence[str], labels: Sequence[str],
                 balanced: bool = BALANCED) -> tuple[float, float]:
    """Cut-offs maximising dev macro-F1 (then accuracy, then closeness to VADER's ±0.05).

    Binary label sets tune one cut (returned as ``(cut, cut)``). balanced: score as if every
    dev label were equally frequent (``balanced_weights``).
    """
    polar = polar_labels(labels)
    if polar is None:
        raise ConfigError(f"Cannot tune lexicon cut-offs for labels {list(labels)}.")
    labels = list(labels)
    c = np.asarray(list(compounds), dtype="float64")
    g = _codes(labels, gold)
    weights = _weights(g, balanced)
    code = {kind: labels.index(label) for kind, label in polar.items()}
    if "neutral" in polar:
        pairs = [(n, p) for n in CUTOFF_GRID for p in CUTOFF_GRID if n <= p]
    else:
        pairs = [(x, x) for x in CUTOFF_GRID] + [(0.0, 0.0)]
    best_key, best = None, VADER_CUTOFFS
    for neg, pos in pairs:
        if "neutral" in polar:  # lexicon_label: positive first, then negative, else neutral
            pred = np.where(c >= pos, code["positive"],
                            np.where(c <= neg, code["negative"], code["neutral"]))
        else:
            cut = (neg + pos) / 2
            pred = np.where(c >= cut, code["positive"], code["negative"])
        f1, acc = _scores_codes(g, pred, len(labels), weights) if len(g) else (0.0, 0.0)
        distance = abs(neg - VADER_CUTOFFS[0]) + abs(pos - VADER_CUTOFFS[1])
        key = (round(f1, 6), round(acc, 6), -distance)
        if best_key is None or key > best_key:
            best_key, best = key, (float(neg), float(pos))
    return best


def _model_matrix(data: HybridData) -> np.ndarray:
    assert data.model is not None
    return np.asarray([[m[lab] for lab in data.labels] for m in data.model], dtype="float64")


def _lexicon_matrix(data: HybridData, cutoffs: tuple[float, float],
                    sharpness: float) -> np.ndarray:
    rows = [lexicon_probs(c, data.labels, *cutoffs, sharpness) for c in data.compounds]
    return np.asarray([[r[lab] for lab in data.labels] for r in rows], dtype="float64")


def tune_blend_weight(data: HybridData, cutoffs: tuple[float, float], sharpness: float,
                      balanced: bool = BALANCED) -> float:
    """Blend weight maximising dev macro-F1 (ties: the larger model weight); balanced: as in
    ``tune_cutoffs``."""
    M = _model_matrix(data)
    L = _lexicon_matrix(data, cutoffs, sharpness)
    g = _codes(data.labels, data.gold)
    weights = _weights(g, balanced)
    best_key, best_w = None, 1.0
    for w in WEIGHT_GRID:
        pred = np.argmax(w * M + (1 - w) * L, axis=1)
        f1, acc = _scores_codes(g, pred, len(data.labels), weights)
        key = (round(f1, 6), round(acc, 6), w)
        if best_key is None or key > best_key:
            best_key, best_w = key, float(w)
    return best_w


# --- the stacker, regularised toward the model ---------------------------------------------------
def _fit_offset_logreg(Z: np.ndarray, offset: np.ndarray, Y: np.ndarray, C: float,
                       start: np.ndarray | None = None, weights: np.ndarray | None = None,
                       intercept: bool = True) -> np.ndarray:
    """Minimise ``sum_i w_i log-loss_i + ||(W, b)||^2 / (2 C)`` for logits
    ``offset + Z W^T + b`` (``b`` fixed at 0 without ``intercept``; ``w_i`` = 1 without
    ``weights``).

    Scaled by ``1 / (C n)`` for the optimiser (same minimiser). Starts at ``start`` (a
    neighbouring C's solution) or ``W = b = 0``, the model itself. Returns ``theta`` =
    ``[W.ravel(), b]`` (``b`` = 0 without intercept).
    """
    from scipy.optimize import minimize

    n, n_feat = Z.shape
    k = Y.shape[1]
    reg = 1.0 / (C * n)
    w = np.ones((n, 1)) if weights is None else np.asarray(weights, "float64").reshape(n, 1)
    size = k * n_feat

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        W = theta[:size].reshape(k, n_feat)
        logits = offset + Z @ W.T
        if intercept:
            logits = logits + theta[size:]
        logits = logits - logits.max(axis=1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        loss = -float((w * Y * log_p).sum()) / n + 0.5 * reg * float(theta @ theta)
        G = w * (np.exp(log_p) - Y) / n
        grads = [(G.T @ Z + reg * W).ravel()]
        if intercept:
            grads.append(G.sum(axis=0) + reg * theta[size:])
        return loss, np.concatenate(grads)

    theta0 = np.zeros(size + (k if intercept else 0)) if start is None else start
    result = minimize(objective, theta0, jac=True, method="L-BFGS-B",
                      options={"maxiter": 5000, "gtol": 1e-9, "ftol": 1e-14})
    return result.x if intercept else np.concatenate([result.x, np.zeros(k)])


def _one_blas_thread():
    """Small dense problems: one BLAS thread (numpy's and SciPy's OpenBLAS pools otherwise
    contend; measured 13x slower on 2 busy cores)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def _log_loss(probs: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
    losses = -np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None))
    return float(losses.sum() if weights is None else (weights * losses).sum())


def choose_C(X: np.ndarray, y: Sequence[str], labels: Sequence[str], folds: int = DEFAULT_FOLDS,
             seed: int = 0, balanced: bool = BALANCED, intercept: bool = INTERCEPT) -> float:
    """The C of ``C_GRID`` with the lowest K-fold (stratified) held-out log-loss (balanced:
    each held-out doc weighted by ``balanced_weights`` of its fold); ties: the smaller C
    (closer to the model). 1.0 when a label has too few docs for two folds."""
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(list(y))
    counts = [int((y == c).sum()) for c in set(y.tolist())]
    k = min(folds, min(counts))
    if k < 2 or len(counts) < 2:
        return 1.0
    codes = _codes(labels, y)
    losses = np.zeros(len(C_GRID))
    for train, test in StratifiedKFold(k, shuffle=True, random_state=seed).split(X, y):
        theta = None
        held = _weights(codes[test], balanced)
        for j, C in enumerate(C_GRID):  # ascending: warm-start from the stronger penalty
            stacker, theta = _fit_stacker_at(X[train], y[train], labels, C, theta, balanced,
                                             intercept)
            losses[j] += _log_loss(stacker.predict_proba(X[test]), codes[test], held)
    best = 0
    for j in range(1, len(C_GRID)):
        if losses[j] < losses[best] - 1e-9:
            best = j
    return float(C_GRID[best])


def _fit_stacker_at(X: np.ndarray, y: np.ndarray, labels: Sequence[str], C: float,
                    start: np.ndarray | None = None, balanced: bool = BALANCED,
                    intercept: bool = INTERCEPT) -> tuple[Stacker, np.ndarray]:
    labels = list(labels)
    k = len(labels)
    codes = _codes(labels, y)
    weights = _weights(codes, balanced)
    mean = np.average(X, axis=0, weights=weights)
    scale = np.sqrt(np.average((X - mean) ** 2, axis=0, weights=weights))
    scale[scale < 1e-8] = 1.0
    Z = (X - mean) / scale
    Y = np.eye(k)[codes]
    if start is not None and not intercept:
        start = start[: k * Z.shape[1]]
    theta = _fit_offset_logreg(Z, X[:, :k], Y, C, start, weights, intercept)
    W, b = theta[: k * Z.shape[1]].reshape(k, Z.shape[1]), theta[k * Z.shape[1]:]
    stacker = Stacker(
        classes=labels,
        feature_names=model_feature_names(labels) + list(LEXICON_FEATURES),
        mean=mean.tolist(),
        scale=scale.tolist(),
        coef=W.tolist(),
        intercept=b.tolist(),
        C=float(C),
        offset=list(range(k)),
        fit_intercept=bool(intercept),
        class_weight="balanced" if balanced else None,
    )
    return stacker, theta


def fit_stacker(X: np.ndarray, y: Sequence[str], labels: Sequence[str], seed: int = 0,
                C: float | None = None, folds: int = DEFAULT_FOLDS, balanced: bool = BALANCED,
                intercept: bool = INTERCEPT) -> Stacker:
    """The stacker regularised toward the model (see the module doc); C by CV log-loss.

    X: ``feature_vector`` rows (the first ``len(labels)`` columns are the model's
    log-probabilities in ``labels`` order). C: fixed strength (None: ``choose_C``). Classes are
    all of ``labels``, also those absent from ``y`` (their deviation stays penalised).
    balanced: weigh each doc by ``balanced_weights`` (loss, standardisation, choice of C);
    intercept: learn a per-class bias (off: the deviation depends on the features only).
    """
    X = np.asarray(X, dtype="float64")
    y = np.asarray([str(v) for v in y])
    labels = list(labels)
    present = sorted(set(y.tolist()))
    if len(present) < 2:
        raise InputError(f"The dev data has a single label {present}: nothing to fit.")
    unknown = set(present) - set(labels)
    if unknown:
        raise InputError(f"Dev labels {sorted(unknown)} are not among the labels {labels}.")
    if X.ndim != 2 or X.shape[0] != len(y) or X.shape[1] != len(labels) + len(LEXICON_FEATURES):
        raise InputError(
            f"Stacker features must be (docs, {len(labels) + len(LEXICON_FEATURES)}), got "
            f"{X.shape} for {len(y)} labels."
        )
    if C is not None and not C > 0:
        raise ConfigError(f"The stacker's C must be positive, got {C}.")
    with _one_blas_thread():
        if C is None:
            C = choose_C(X, y, labels, folds, seed, balanced, intercept)
        return _fit_stacker_at(X, y, labels, float(C), None, balanced, intercept)[0]


# --- cross-validated choice of mode ------------------------------------------------------------
@dataclass
class Selection:
    """K-fold cross-validation on dev of each candidate mode (same folds for all).

    ``fold_scores[mode]``: macro-F1 on each held-out fold (``metric`` ``balanced_macro_f1``:
    each doc weighted by ``balanced_weights`` of its fold), every fitted value (cut-offs, blend
    weight, stacker and its C) refitted on the other folds. ``chosen``: the simplest candidate
    (model < blend < stacker) whose mean is within ``tie_se`` standard errors of the best mean,
    the standard error being that of the paired per-fold differences to the best.
    """

    chosen: str
    folds: int
    seed: int
    tie_se: float
    fold_scores: dict[str, list[float]]
    stacker_C: list[float] = field(default_factory=list)
    metric: str = "macro_f1"
    options: dict[str, Any] = field(default_factory=dict)

    def mean(self, mode: str) -> float:
        return float(np.mean(self.fold_scores[mode]))

    def paired_se(self, mode: str, other: str) -> float:
        """Standard error of the mean per-fold difference ``mode - other``."""
        diff = np.asarray(self.fold_scores[mode]) - np.asarray(self.fold_scores[other])
        return float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0

    @property
    def best(self) -> str:
        """The candidate with the best mean (ties: the simpler)."""
        return max(self.fold_scores, key=lambda m: (round(self.mean(m), 12),
                                                    -CANDIDATES.index(m)))

    def to_dict(self) -> dict[str, Any]:
        best = self.best
        return {
            "requested": "auto",
            "chosen": self.chosen,
            "metric": self.metric,
            "folds": self.folds,
            "seed": self.seed,
            "rule": f"simplest mode within {self.tie_se:g} paired SE of the best mean",
            "tie_se": self.tie_se,
            "candidates": {
                mode: {"mean": self.mean(mode),
                       "se_vs_best": self.paired_se(best, mode),
                       "folds": [float(v) for v in scores]}
                for mode, scores in self.fold_scores.items()
            },
            "stacker_C": [float(c) for c in self.stacker_C],
            **({"options": dict(self.options)} if self.options else {}),
        }


def check_folds(gold: Sequence[str], folds: int) -> None:
    """Raise InputError unless ``gold`` has two labels or more and ``folds`` docs of each."""
    if folds < 2:
        raise InputError(f"Cross-validation needs at least 2 folds, got {folds}.")
    counts = {label: 0 for label in gold}
    for label in gold:
        counts[label] += 1
    if len(counts) < 2:
        raise InputError(
            f"The dev data has a single label {sorted(counts)}: a hybrid cannot be fitted or "
            "chosen on it. Use a dev set with every label."
        )
    few = {label: n for label, n in counts.items() if n < folds}
    if few:
        raise InputError(
            f"Mode 'auto' runs {folds}-fold cross-validation on dev and needs at least {folds} "
            f"docs of every label; dev has {few} ({len(gold)} docs). Use a larger dev set, "
            "fewer --folds, or an explicit --mode."
        )


def _score_fold(data: HybridData, X: np.ndarray, gold: np.ndarray, train: np.ndarray,
                test: np.ndarray, candidates: Sequence[str], scores: dict[str, list[float]],
                stacker_C: list[float], seed: int, folds: int, sharpness: float,
                balanced: bool, intercept: bool) -> None:
    """Fit every candidate on ``train``, append its macro-F1 on ``test`` to ``scores``."""
    fit_part, held = data.subset(train), data.subset(test)
    g = _codes(data.labels, held.gold)
    for mode in candidates:
        if mode == "model":
            pred = np.argmax(_model_matrix(held), axis=1)
        elif mode == "blend":
            cutoffs = tune_cutoffs(fit_part.compounds, fit_part.gold, data.labels, balanced)
            w = tune_blend_weight(fit_part, cutoffs, sharpness, balanced)
            mixed = w * _model_matrix(held) + (1 - w) * _lexicon_matrix(held, cutoffs,
                                                                        sharpness)
            pred = np.argmax(mixed, axis=1)
        else:
            stacker = fit_stacker(X[train], gold[train], data.labels, seed, folds=folds,
                                  balanced=balanced, intercept=intercept)
            stacker_C.append(stacker.C)
            pred = np.argmax(stacker.predict_proba(X[test]), axis=1)
        scores[mode].append(_scores_codes(g, pred, len(data.labels), _weights(g, balanced))[0])


def select_mode(data: HybridData, folds: int = DEFAULT_FOLDS, seed: int = 0,
                sharpness: float = 5.0, tie_se: float = 1.0, balanced: bool = BALANCED,
                intercept: bool = INTERCEPT) -> Selection:
    """Cross-validate model-only, blend (polar labels only) and the stacker on ``data``.

    The metric is macro-F1, what the reports rank by and what the hybrid is meant to improve;
    log-loss would also reward re-calibration that changes no decision and would judge the
    blend by the made-up sharpness of its lexicon probabilities. balanced (default): macro-F1
    with each held-out doc weighted by ``balanced_weights``, i.e. the macro-F1 on a fold whose
    labels were equally frequent, so dev's label mix does not decide the choice (the candidates
    are fitted with the same ``balanced`` and ``intercept``). Ties are settled by the
    one-standard-error rule on paired fold differences (``Selection``).
    """
    from sklearn.model_selection import StratifiedKFold

    if data.model is None:
        raise ConfigError("Mode 'auto' needs a senti_textcat in the pipeline.")
    if tie_se < 0:
        raise ConfigError(f"tie_se must be >= 0, got {tie_se}.")
    check_folds(data.gold, folds)
    candidates = [m for m in CANDIDATES
                  if m != "blend" or polar_labels(data.labels) is not None]
    gold = np.asarray(data.gold)
    X = data.matrix()
    scores: dict[str, list[float]] = {m: [] for m in candidates}
    stacker_C: list[float] = []
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    with _one_blas_thread():
        for train, test in splitter.split(X, gold):
            _score_fold(data, X, gold, train, test, candidates, scores, stacker_C, seed, folds,
                        sharpness, balanced, intercept)
    selection = Selection("model", folds, seed, float(tie_se), scores, stacker_C,
                          metric="balanced_macro_f1" if balanced else "macro_f1",
                          options=fit_options(balanced, intercept))
    best = selection.best
    for mode in candidates:  # simplest first
        gap = selection.mean(best) - selection.mean(mode)
        if gap <= tie_se * selection.paired_se(best, mode) + 1e-12:
            selection.chosen = mode
            break
    return selection


# --- fitting ---------------------------------------------------------------------------------
def fit_options(balanced: bool = BALANCED, intercept: bool = INTERCEPT) -> dict[str, Any]:
    """The label-mix options as saved with a fitted senti_hybrid."""
    return {"balanced": bool(balanced), "intercept": bool(intercept)}


def fit_on_data(
    data: HybridData,
    mode: str = "auto",
    blend_weight: float | None = None,
    sharpness: float = 5.0,
    seed: int = 0,
    folds: int = DEFAULT_FOLDS,
    tie_se: float = 1.0,
    balanced: bool = BALANCED,
    intercept: bool = INTERCEPT,
) -> HybridFit:
    """Fit cut-offs (always, when the labels are polar), then the mode's values.

    mode: ``auto`` (choose model / blend / stacker by ``folds``-fold CV on ``data``, see
    ``select_mode``), ``model``, ``stacker``, ``blend`` or ``lexicon``. balanced / intercept:
    robustness to dev's label mix (module doc).
    """
    if mode not in FIT_MODES:
        raise ConfigError(f"Unknown mode {mode!r}: use one of {', '.join(FIT_MODES)}.")
    if mode != "lexicon" and data.model is None:
        raise ConfigError(
            f"Mode {mode!r} needs a senti_textcat in the pipeline; use --mode lexicon."
        )
    if not data.gold:
        raise InputError("The dev data has no gold-labelled docs with text.")
    if mode != "lexicon" and len(set(data.gold)) < 2:
        raise InputError(
            f"The dev data has a single label {sorted(set(data.gold))}: a hybrid cannot be "
            "fitted on it. Use a dev set with every label."
        )
    polar = polar_labels(data.labels) is not None
    if mode in ("lexicon", "blend") and not polar:
        raise ConfigError(
            f"Mode {mode!r} needs negative/positive(/neutral) labels, not {data.labels}."
        )
    selection = None
    if mode == "auto":
        found = select_mode(data, folds, seed, sharpness, tie_se, balanced, intercept)
        mode, selection = found.chosen, found.to_dict()
    cutoffs = tune_cutoffs(data.compounds, data.gold, data.labels, balanced) if polar else None
    stacker = None
    if mode == "stacker":
        stacker = fit_stacker(data.matrix(), data.gold, data.labels, seed, folds=folds,
                              balanced=balanced, intercept=intercept)
    weight = blend_weight
    if mode == "blend" and weight is None:
        weight = tune_blend_weight(data, cutoffs or VADER_CUTOFFS, sharpness, balanced)
    result = HybridFit(mode, list(data.labels), len(data.gold), cutoffs, weight, stacker,
                       selection=selection, options=fit_options(balanced, intercept))
    result.scores = score_sources(data, result, sharpness)
    return result


def hybrid_predictions(data: HybridData, result: HybridFit,
                       sharpness: float = 5.0) -> list[str]:
    """Labels the fitted hybrid gives on ``data`` (same maths as the component)."""
    cutoffs = result.cutoffs or VADER_CUTOFFS
    if result.mode == "lexicon":
        return [lexicon_label(c, data.labels, *cutoffs) for c in data.compounds]
    assert data.model is not None
    if result.mode == "model":
        return argmax_labels(data.model)
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
                      blend_weight=result.blend_weight, selection=result.selection,
                      fit_options=result.options or None)
    return hybrid


def fit_hybrid(
    nlp: Language,
    docs: Sequence[Doc],
    mode: str = "auto",
    head: str = "sentiment",
    blend_weight: float | None = None,
    lexicon_config: dict[str, Any] | None = None,
    sharpness: float = 5.0,
    batch_size: int = 64,
    progress: Iterable | None = None,
    folds: int = DEFAULT_FOLDS,
    tie_se: float = 1.0,
    seed: int = 0,
    balanced: bool = BALANCED,
    intercept: bool = INTERCEPT,
) -> HybridFit:
    """Add senti_lexicon if missing, fit on gold ``docs`` and install a fitted senti_hybrid.

    mode ``auto`` (default) installs whichever of model-only / blend / stacker scores best in
    ``folds``-fold cross-validation on ``docs`` (see ``select_mode``). balanced / intercept:
    robustness to dev's label mix (module doc).
    """
    if mode not in FIT_MODES:
        raise ConfigError(f"Unknown mode {mode!r}: use one of {', '.join(FIT_MODES)}.")
    textcat = hybrid_textcat(nlp, head)
    if textcat is None and mode != "lexicon":
        raise ConfigError(
            f"Mode {mode!r} needs a senti_textcat with an exclusive head '{head}'; the pipeline "
            f"has {nlp.pipe_names}. Use --mode lexicon for the zero-shot lexicon."
        )
    gold_labels(docs, head)  # fail before running the pipeline
    ensure_lexicon(nlp, lexicon_config)
    data = collect(nlp, docs, head, batch_size=batch_size, progress=progress)
    result = fit_on_data(data, mode, blend_weight, sharpness, seed=seed, folds=folds,
                         tie_se=tie_se, balanced=balanced, intercept=intercept)
    install_hybrid(nlp, result, head, sharpness)
    return result


__all__ = [
    "CANDIDATES",
    "FIT_MODES",
    "HybridFit",
    "HybridData",
    "Selection",
    "accuracy_macro_f1",
    "balanced_weights",
    "check_folds",
    "choose_C",
    "collect",
    "ensure_lexicon",
    "hybrid_textcat",
    "fit_hybrid",
    "fit_on_data",
    "fit_options",
    "fit_stacker",
    "gold_labels",
    "install_hybrid",
    "score_sources",
    "select_mode",
    "tune_blend_weight",
    "tune_cutoffs",
]
