"""Precision / recall / F-score helpers shared by the heads' ``score`` methods.

scikit-learn is imported inside the functions, so importing the heads (e.g. by the ONNX
runner) stays light.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def prf(y_true, y_pred, labels: Sequence[Any], average: str | None):
    """scikit-learn's ``precision_recall_fscore_support`` with ``zero_division=0``."""
    from sklearn.metrics import precision_recall_fscore_support

    return precision_recall_fscore_support(
        y_true, y_pred, labels=list(labels), average=average, zero_division=0
    )


def accuracy(y_true, y_pred) -> float:
    """Accuracy (exact-match accuracy for indicator matrices)."""
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(y_true, y_pred))


def active_labels(y_true, y_pred, labels: Sequence[int]) -> list[int]:
    """Labels that occur in the gold data or the predictions (macro averages use these)."""
    if np.ndim(y_true) == 1:
        seen = set(np.unique(y_true)) | set(np.unique(y_pred))
        active = [lab for lab in labels if lab in seen]
    else:
        present = (np.asarray(y_true).sum(axis=0) + np.asarray(y_pred).sum(axis=0)) > 0
        active = [lab for lab in labels if present[lab]]
    return active or list(labels)


def summary(y_true, y_pred, labels: Sequence[int], names: Sequence[str]) -> dict[str, Any]:
    """``macro_p/r/f``, ``micro_p/r/f`` (over the active labels) and ``f_per_type``."""
    scores: dict[str, Any] = {}
    active = active_labels(y_true, y_pred, labels)
    for avg in ("macro", "micro"):
        p, r, f, _ = prf(y_true, y_pred, active, avg)
        scores[f"{avg}_p"], scores[f"{avg}_r"], scores[f"{avg}_f"] = float(p), float(r), float(f)
    p, r, f, _ = prf(y_true, y_pred, labels, None)
    scores["f_per_type"] = {
        name: {"p": float(p[i]), "r": float(r[i]), "f": float(f[i])}
        for i, name in enumerate(names)
    }
    return scores
