"""``MultilabelHead``: any number of labels per doc, a sigmoid per label with thresholds."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigError
from ..models.losses import sigmoid, sigmoid_loss
from . import metrics
from .base import THRESHOLD_DIGITS, Head

MAX_POS_WEIGHT = 50.0


class MultilabelHead(Head):
    """Sigmoid per label: ``doc._.<name>s`` ({label: prob}) and ``doc._.<name>_labels``
    (the labels at or over their thresholds)."""

    kind: ClassVar[str] = "multilabel"
    has_thresholds: ClassVar[bool] = True
    extension_fields: ClassVar[tuple[str, str]] = ("scores", "labels")
    value_types: ClassVar[tuple[str, str]] = ("mapping", "labels")
    item_name: ClassVar[str] = "label"
    calibration_outcome: ClassVar[str] = "positive rate"

    def set_thresholds(self, thresholds: Mapping[str, float]) -> None:
        unknown = set(thresholds) - set(self.labels)
        if unknown:
            raise ConfigError(f"Unknown labels {sorted(unknown)} for head '{self.name}'.")
        self.thresholds.update({k: round(float(v), THRESHOLD_DIGITS)
                                for k, v in thresholds.items()})

    def activate(self, xp: Any, logits):
        return sigmoid(xp, logits)

    def _loss(self, xp: Any, logits, targets, weights, gamma: float, smoothing: float):
        return sigmoid_loss(xp, logits, targets, pos_weights=weights, gamma=gamma,
                            label_smoothing=smoothing)

    def compute_class_weights(self, gold: Sequence[Sequence[float]]) -> list[float]:
        """Positive-class weights: explicit, or ``negatives / positives`` clipped to
        [1, MAX_POS_WEIGHT]."""
        if isinstance(self.class_weights, dict):
            return self._explicit_weights(self.labels)
        matrix = np.asarray(gold, dtype="f").reshape(-1, len(self.labels))
        counts = matrix.sum(axis=0)
        pos = np.maximum(counts, 1.0)
        return np.clip((len(matrix) - counts) / pos, 1.0, MAX_POS_WEIGHT).tolist()

    def prior_logits(self, gold: Sequence[Sequence[float]]) -> np.ndarray:
        matrix = np.asarray(gold, dtype="f8").reshape(-1, len(self.labels))
        n = max(len(matrix), 1)
        prior = np.clip((matrix.sum(axis=0) + 0.5) / (n + 1.0), 1e-3, 1 - 1e-3)
        return np.log(prior / (1.0 - prior))

    @property
    def extension_names(self) -> tuple[str, str]:
        return f"{self.name}s", f"{self.name}_labels"

    def decode(self, probs: Iterable[float]) -> dict[str, Any]:
        """``{"labels": labels at or over their thresholds, "scores": {label: prob}}``."""
        scores = dict(zip(self.labels, (float(p) for p in probs)))
        # float32 like the scorer, so a probability equal to its threshold agrees
        chosen = [
            lab for lab, p in scores.items()
            if np.float32(p) >= np.float32(self.label_threshold(lab))
        ]
        return {"labels": chosen, "scores": scores}

    def predicted_labels(self, probs: Iterable[float]) -> list[str]:
        return list(self.decode(probs)["labels"])

    def distributions(self, probs: np.ndarray) -> np.ndarray:
        """Per label the binary distribution (p, 1 - p): shape (n, labels, 2)."""
        probs = np.asarray(probs)
        return np.stack([probs, 1.0 - probs], axis=-1)

    def decide(self, pred: np.ndarray) -> np.ndarray:
        """Decisions at the per-label thresholds (compared in float32)."""
        thresholds = np.asarray([self.label_threshold(lab) for lab in self.labels], dtype="f")
        return (pred >= thresholds[None, :]).astype("i")

    def truth(self, gold: np.ndarray) -> np.ndarray:
        return (gold >= 0.5).astype("i")

    def score(self, gold: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
        """Exact-match (subset) accuracy and P/R/F over the labels at their thresholds."""
        y_true, y_pred = self.truth(gold), self.decide(pred)
        labels = range(len(self.labels))
        return {"acc": metrics.accuracy(y_true, y_pred),
                **metrics.summary(y_true, y_pred, labels, self.labels)}

    def calibration_pairs(self, gold: np.ndarray, pred: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray]:
        """Per (doc, label): the label's probability and whether the label is gold."""
        return pred.ravel(), self.truth(gold).astype("f8").ravel()

    def confusion(self, gold: np.ndarray, pred: np.ndarray) -> tuple[list[str], np.ndarray]:
        """Per label the counts TP, FN, FP, TN (at the thresholds)."""
        from sklearn.metrics import multilabel_confusion_matrix

        mcm = multilabel_confusion_matrix(self.truth(gold), self.decide(pred),
                                          labels=list(range(len(self.labels))))
        # sklearn: [[TN, FP], [FN, TP]] per label
        counts = np.stack([mcm[:, 1, 1], mcm[:, 1, 0], mcm[:, 0, 1], mcm[:, 0, 0]], axis=1)
        return list(self.labels), counts

    def errors(self, gold: np.ndarray, pred: np.ndarray
               ) -> list[tuple[int, str, str, str, float]]:
        """Wrong (doc, label) decisions; confidence = p (false positive) or 1 - p."""
        decided, truth = self.decide(pred), self.truth(gold)
        rows = []
        for i, j in zip(*np.nonzero(decided != truth), strict=True):
            p = float(pred[i, j])
            rows.append((int(i), self.labels[j], str(truth[i, j]), str(decided[i, j]),
                         p if decided[i, j] else 1.0 - p))
        return rows
