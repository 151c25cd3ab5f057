"""Scorer ``spacy_senti.scorer.v1``: per-head metrics for ``spacy train`` / ``spacy evaluate``.

Keys (``H`` = head name; prefix ``senti_``):

* ``senti_H_acc``: exclusive: accuracy; multilabel: exact-match (subset) accuracy; grouped:
  polarity accuracy on the groups present in the gold data (SemEval-2014 subtask 4 style).
* ``senti_H_macro_p/r/f``, ``senti_H_micro_p/r/f``: over labels (grouped: over
  ``group/polarity`` pairs predicted present); labels absent from both the gold data and
  the predictions are left out of the averages, as scikit-learn does by default.
* ``senti_H_f_per_type``: {label: {"p", "r", "f"}}.
* grouped only: ``senti_H_detect_micro_f`` / ``senti_H_detect_macro_f`` (aspect category
  detection, SemEval-2014 subtask 3 style).
* ``senti_macro_f``, ``senti_micro_f``, ``senti_acc``: means over the heads that have gold
  annotations in the examples; ``senti_macro_f`` is what the default score weights optimise.

Only examples whose reference annotates a head count for that head. The maths is
scikit-learn's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, precision_recall_fscore_support
from spacy.training import Example
from spacy.util import registry

from ..schema import HeadSpec

PREFIX = "senti_"


def head_arrays(examples: Iterable[Example], head: HeadSpec) -> tuple[np.ndarray, np.ndarray]:
    """Gold and predicted values, shape (n, head.n_outputs), for examples annotating ``head``.

    Predictions missing from ``doc.cats`` (e.g. empty docs) count as 0.0.
    """
    gold_rows, pred_rows = [], []
    for eg in examples:
        if not head.is_annotated(eg.reference.cats):
            continue
        gold_rows.append(head.gold_row(eg.reference.cats))
        pred_rows.append([float(eg.predicted.cats.get(k, 0.0)) for k in head.keys()])
    width = head.n_outputs
    gold = np.asarray(gold_rows, dtype="f").reshape(-1, width)
    pred = np.asarray(pred_rows, dtype="f").reshape(-1, width)
    return gold, pred


def _prf(y_true, y_pred, labels: Sequence[Any], average: str | None):
    return precision_recall_fscore_support(
        y_true, y_pred, labels=list(labels), average=average, zero_division=0
    )


def _per_type(names: Sequence[str], p, r, f) -> dict[str, dict[str, float]]:
    return {
        name: {"p": float(p[i]), "r": float(r[i]), "f": float(f[i])} for i, name in enumerate(names)
    }


def _active_labels(y_true, y_pred, labels) -> list[int]:
    """Labels that occur in the gold data or the predictions (macro averages use these)."""
    if np.ndim(y_true) == 1:
        seen = set(np.unique(y_true)) | set(np.unique(y_pred))
        active = [lab for lab in labels if lab in seen]
    else:
        present = (np.asarray(y_true).sum(axis=0) + np.asarray(y_pred).sum(axis=0)) > 0
        active = [lab for lab in labels if present[lab]]
    return active or list(labels)


def _summary(prefix: str, y_true, y_pred, labels, names) -> dict[str, Any]:
    scores: dict[str, Any] = {}
    active = _active_labels(y_true, y_pred, labels)
    for avg in ("macro", "micro"):
        p, r, f, _ = _prf(y_true, y_pred, active, avg)
        scores[f"{prefix}_{avg}_p"] = float(p)
        scores[f"{prefix}_{avg}_r"] = float(r)
        scores[f"{prefix}_{avg}_f"] = float(f)
    p, r, f, _ = _prf(y_true, y_pred, labels, None)
    scores[f"{prefix}_f_per_type"] = _per_type(names, p, r, f)
    return scores


def score_exclusive(head: HeadSpec, gold: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    prefix = PREFIX + head.name
    y_true, y_pred = gold.argmax(axis=1), pred.argmax(axis=1)
    labels = range(len(head.labels))
    scores = {f"{prefix}_acc": float(accuracy_score(y_true, y_pred))}
    scores.update(_summary(prefix, y_true, y_pred, labels, head.labels))
    return scores


def multilabel_predictions(head: HeadSpec, pred: np.ndarray) -> np.ndarray:
    """Binary decisions of a multilabel head with its per-label thresholds."""
    thresholds = np.asarray([head.label_threshold(lab) for lab in head.labels], dtype="f")
    return (pred >= thresholds[None, :]).astype("i")


def score_multilabel(head: HeadSpec, gold: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    prefix = PREFIX + head.name
    y_true = (gold >= 0.5).astype("i")
    y_pred = multilabel_predictions(head, pred)
    labels = range(len(head.labels))
    scores = {f"{prefix}_acc": float(accuracy_score(y_true, y_pred))}
    scores.update(_summary(prefix, y_true, y_pred, labels, head.labels))
    return scores


def grouped_decisions(head: HeadSpec, values: np.ndarray) -> np.ndarray:
    """Index of the winning class (0 = absent) per group: shape (n, n_groups)."""
    n_pol = len(head.polarities)
    return values.reshape(len(values), len(head.groups), n_pol).argmax(axis=2)


def score_grouped(head: HeadSpec, gold: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    prefix = PREFIX + head.name
    n, n_groups, n_pol = len(gold), len(head.groups), len(head.polarities)
    true_cls, pred_cls = grouped_decisions(head, gold), grouped_decisions(head, pred)
    # Joint (group, polarity) indicators, absent excluded.
    pair_names = [f"{g}/{p}" for g in head.groups for p in head.labels]
    eye = np.eye(n_pol, dtype="i")[:, 1:]
    y_true = eye[true_cls].reshape(n, -1)
    y_pred = eye[pred_cls].reshape(n, -1)
    scores = _summary(prefix, y_true, y_pred, range(len(pair_names)), pair_names)
    # Category detection.
    det_true, det_pred = (true_cls > 0).astype("i"), (pred_cls > 0).astype("i")
    for avg in ("micro", "macro"):
        p, r, f, _ = _prf(det_true, det_pred, range(n_groups), avg)
        scores[f"{prefix}_detect_{avg}_p"] = float(p)
        scores[f"{prefix}_detect_{avg}_r"] = float(r)
        scores[f"{prefix}_detect_{avg}_f"] = float(f)
    # Polarity of the gold-present groups, absent excluded from the prediction.
    pol_pred = pred.reshape(n, n_groups, n_pol)[:, :, 1:].argmax(axis=2) + 1
    present = true_cls > 0
    scores[f"{prefix}_acc"] = (
        float((pol_pred[present] == true_cls[present]).mean()) if present.any() else 0.0
    )
    return scores


SCORERS = {"exclusive": score_exclusive, "multilabel": score_multilabel, "grouped": score_grouped}


def score_heads(examples: Iterable[Example], heads: Sequence[HeadSpec]) -> dict[str, Any]:
    """All metrics of all heads, plus the means used as training objective."""
    examples = list(examples)
    scores: dict[str, Any] = {}
    summary: dict[str, list[float]] = {"macro_f": [], "micro_f": [], "acc": []}
    for head in heads:
        gold, pred = head_arrays(examples, head)
        prefix = PREFIX + head.name
        if len(gold) == 0:
            for key in ("acc", "macro_f", "micro_f"):
                scores[f"{prefix}_{key}"] = None
            continue
        scores.update(SCORERS[head.kind](head, gold, pred))
        for key in summary:
            summary[key].append(scores[f"{prefix}_{key}"])
    for key, values in summary.items():
        scores[PREFIX + key] = float(np.mean(values)) if values else None
    return scores


@registry.scorers("spacy_senti.scorer.v1")
def make_senti_scorer():
    """Registered scorer factory; the component passes its heads."""
    return score_heads
