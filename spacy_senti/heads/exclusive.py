"""``ExclusiveHead``: one label per doc, a softmax over the labels."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigError
from . import metrics
from .base import SoftmaxHead


class ExclusiveHead(SoftmaxHead):
    """Softmax over ``labels``: ``doc._.<name>`` (label) and ``doc._.<name>_scores``."""

    kind: ClassVar[str] = "exclusive"
    single_label: ClassVar[bool] = True
    extension_fields: ClassVar[tuple[str, str]] = ("label", "scores")
    value_types: ClassVar[tuple[str, str]] = ("label", "mapping")

    def check_ready(self) -> None:
        super().check_ready()
        if len(self.labels) < 2:
            raise ConfigError(
                f"Exclusive head '{self.name}' needs at least two labels, found {self.labels}."
            )

    @property
    def extension_names(self) -> tuple[str, str]:
        return self.name, f"{self.name}_scores"

    def decode(self, probs: Iterable[float]) -> dict[str, Any]:
        """``{"label": best label, "scores": {label: prob}}``."""
        scores = dict(zip(self.labels, (float(p) for p in probs)))
        best = max(scores, key=scores.get) if scores else None  # type: ignore[arg-type]
        return {"label": best, "scores": scores}

    def predicted_labels(self, probs: Iterable[float]) -> list[str]:
        label = self.decode(probs)["label"]
        return [] if label is None else [label]

    def score(self, gold: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
        """Accuracy and P/R/F over the labels of the argmax decisions."""
        y_true, y_pred = gold.argmax(axis=1), pred.argmax(axis=1)
        labels = range(len(self.labels))
        return {"acc": metrics.accuracy(y_true, y_pred),
                **metrics.summary(y_true, y_pred, labels, self.labels)}
