"""``GroupedHead``: per group (e.g. aspect category) a softmax over ``absent`` + polarities."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigError
from . import metrics
from .base import ABSENT, SEP, SoftmaxHead


class GroupedHead(SoftmaxHead):
    """Groups x (``absent`` + polarities): ``doc._.<name>s`` ({group: polarity} of the groups
    predicted present) and ``doc._.<name>_scores`` ({group: {polarity: prob}})."""

    kind: ClassVar[str] = "grouped"
    has_groups: ClassVar[bool] = True
    n_null_classes: ClassVar[int] = 1
    extension_fields: ClassVar[tuple[str, str]] = ("aspects", "scores")
    value_types: ClassVar[tuple[str, str]] = ("mapping", "mapping")
    item_name: ClassVar[str] = "group"

    def __init__(self, name: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(name, *args, **kwargs)
        self.labels = [lab for lab in self.labels if lab != ABSENT]

    # --- layout -------------------------------------------------------------------
    @property
    def polarities(self) -> list[str]:
        """The classes of each group's softmax, ``absent`` first."""
        return [ABSENT, *self.labels]

    @property
    def classes(self) -> list[str]:
        return self.polarities

    @property
    def n_blocks(self) -> int:
        return len(self.groups)

    @property
    def block_names(self) -> list[str]:
        return list(self.groups)

    @property
    def n_outputs(self) -> int:
        return len(self.groups) * len(self.polarities)

    def keys(self) -> list[str]:
        return [f"{self.name}{SEP}{g}{SEP}{p}" for g in self.groups for p in self.polarities]

    @property
    def label_names(self) -> list[str]:
        return [f"{g}{SEP}{p}" for g in self.groups for p in self.labels]

    # --- doc.cats -----------------------------------------------------------------
    def gold_row(self, cats: Mapping[str, float]) -> list[float]:
        """Gold values in output order; a group with no polarity is ``absent``."""
        row: list[float] = []
        for g in self.groups:
            values = [float(cats.get(f"{self.name}{SEP}{g}{SEP}{p}", 0.0))
                      for p in self.polarities]
            if sum(values[1:]) == 0.0:
                values[0] = 1.0
            row.extend(values)
        return row

    def gold_cats(self, labels: Iterable[str]) -> dict[str, float]:
        """Every key with 1.0 for the ``group/polarity`` pairs in ``labels`` (else the
        group is ``absent``)."""
        polarity = dict(lab.split(SEP, 1) for lab in labels)
        return {
            f"{self.name}{SEP}{g}{SEP}{p}": float(polarity.get(g, ABSENT) == p)
            for g in self.groups for p in self.polarities
        }

    def split_key(self, key: str) -> tuple[str, str]:
        rest = key[len(self.name) + 1 :]
        if SEP not in rest:
            raise ConfigError(
                f"Label {key!r} of grouped head '{self.name}' has no group: grouped labels "
                f"look like '{self.name}{SEP}<group>{SEP}<polarity>', e.g. "
                f"'{self.name}{SEP}food{SEP}negative'."
            )
        group, polarity = rest.split(SEP, 1)
        return group, polarity

    def add_key(self, key: str, labels_fixed: bool = False, groups_fixed: bool = False) -> bool:
        group, polarity = self.split_key(key)
        added = self._add_value(key, group, self.groups, groups_fixed)
        if polarity != ABSENT:
            added = self._add_value(key, polarity, self.labels, labels_fixed) or added
        return added

    def check_ready(self) -> None:
        super().check_ready()
        if not self.groups:
            raise ConfigError(f"Grouped head '{self.name}' has no groups; set "
                              f"[components.senti_textcat.heads.{self.name}] groups.")

    def _configured(self) -> list[str]:
        return list(self.groups)

    # --- typed views -------------------------------------------------------------------
    @property
    def extension_names(self) -> tuple[str, str]:
        return f"{self.name}s", f"{self.name}_scores"

    def decode(self, probs: Iterable[float]) -> dict[str, Any]:
        """``{"aspects": {group: polarity} of present groups, "scores": {group: {pol: p}}}``."""
        values = [float(p) for p in probs]
        n_pol = len(self.polarities)
        group_scores: dict[str, dict[str, float]] = {}
        present: dict[str, str] = {}
        for i, g in enumerate(self.groups):
            chunk = dict(zip(self.polarities, values[i * n_pol : (i + 1) * n_pol]))
            group_scores[g] = chunk
            best = max(chunk, key=chunk.get)  # type: ignore[arg-type]
            if best != ABSENT:
                present[g] = best
        return {"aspects": present, "scores": group_scores}

    def predicted_labels(self, probs: Iterable[float]) -> list[str]:
        return [f"{g}{SEP}{p}" for g, p in self.decode(probs)["aspects"].items()]

    # --- scores ------------------------------------------------------------------------
    def score(self, gold: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
        """P/R/F over the ``group/polarity`` pairs predicted present, aspect category
        detection (``detect_*``, SemEval-2014 subtask 3) and the polarity accuracy on the
        gold-present groups (``acc``, subtask 4)."""
        n, n_groups, n_pol = len(gold), len(self.groups), len(self.polarities)
        true_cls, pred_cls = self.winners(gold), self.winners(pred)
        y_true, y_pred = self.truth(gold), self.decide(pred)
        names = self.label_names
        scores = metrics.summary(y_true, y_pred, range(len(names)), names)
        det_true, det_pred = (true_cls > 0).astype("i"), (pred_cls > 0).astype("i")
        for avg in ("micro", "macro"):
            p, r, f, _ = metrics.prf(det_true, det_pred, range(n_groups), avg)
            scores[f"detect_{avg}_p"] = float(p)
            scores[f"detect_{avg}_r"] = float(r)
            scores[f"detect_{avg}_f"] = float(f)
        # Polarity of the gold-present groups, absent excluded from the prediction.
        pol_pred = pred.reshape(n, n_groups, n_pol)[:, :, 1:].argmax(axis=2) + 1
        present = true_cls > 0
        scores["acc"] = (
            float((pol_pred[present] == true_cls[present]).mean()) if present.any() else 0.0
        )
        return scores
