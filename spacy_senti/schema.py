"""Head specifications and the `doc.cats` key scheme shared by every part of spacy-senti.

Gold and predicted labels live in ``doc.cats`` under namespaced keys:

* exclusive head ``sentiment``: ``"sentiment/positive"``
* multilabel head ``emotion``: ``"emotion/joy"``
* grouped head ``aspect``: ``"aspect/food/negative"``; each group also has the pseudo
  polarity ``"absent"`` (``"aspect/food/absent"``).

A head counts as *annotated* on a doc when at least one key with its prefix is present;
missing keys of an annotated head are read as 0.0. Heads that a doc does not annotate are
masked out of the loss and of the scores.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

HEAD_KINDS = ("exclusive", "multilabel", "grouped")
LOSSES = ("cross_entropy", "focal")
ABSENT = "absent"
SEP = "/"


class SentiConfigError(ValueError):
    """A head configuration or a label that does not fit the configuration."""


@dataclass
class HeadSpec:
    """One output head of ``senti_textcat``.

    name: the head's name, also the prefix of its ``doc.cats`` keys.
    kind: ``exclusive`` (softmax), ``multilabel`` (sigmoid per label) or ``grouped``
        (per group a softmax over ``absent`` + polarities).
    labels: exclusive/multilabel: the labels; grouped: the polarities (without ``absent``).
    groups: grouped heads only: the groups (e.g. aspect categories).
    loss: ``cross_entropy`` or ``focal``; focal_gamma: focal loss gamma.
    class_weights: ``none``, ``balanced`` or a mapping label -> weight.
    weight: the head's weight in the summed loss.
    label_smoothing: epsilon for label smoothing (cross-entropy only).
    threshold: default decision threshold of multilabel labels.
    thresholds: per-label thresholds (multilabel), tuned on dev data.
    """

    name: str
    kind: str
    labels: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    loss: str = "cross_entropy"
    focal_gamma: float = 2.0
    class_weights: str | dict[str, float] = "none"
    weight: float = 1.0
    label_smoothing: float = 0.0
    threshold: float = 0.5
    thresholds: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_config(cls, name: str, cfg: Mapping[str, Any]) -> HeadSpec:
        """Validate one ``[components.senti_textcat.heads.<name>]`` block."""
        if not name or SEP in name:
            raise SentiConfigError(
                f"Invalid head name {name!r}: use a non-empty name without '{SEP}'."
            )
        known = set(cls.__dataclass_fields__) - {"name"}
        unknown = set(cfg) - known
        if unknown:
            raise SentiConfigError(
                f"Head '{name}' has unknown setting(s) {sorted(unknown)}. "
                f"Allowed settings: {sorted(known)}."
            )
        kind = cfg.get("kind")
        if kind not in HEAD_KINDS:
            raise SentiConfigError(
                f"Head '{name}' has unknown kind {kind!r}. Set kind to one of "
                f"{', '.join(HEAD_KINDS)} in [components.senti_textcat.heads.{name}]."
            )
        loss = cfg.get("loss", "cross_entropy")
        if loss not in LOSSES:
            raise SentiConfigError(
                f"Head '{name}' has unknown loss {loss!r}; use one of {', '.join(LOSSES)}."
            )
        class_weights = cfg.get("class_weights", "none")
        if isinstance(class_weights, str) and class_weights not in ("none", "balanced"):
            raise SentiConfigError(
                f"Head '{name}': class_weights must be 'none', 'balanced' or a mapping "
                f"label -> weight, not {class_weights!r}."
            )
        spec = cls(
            name=name,
            kind=kind,
            labels=[str(x) for x in cfg.get("labels", []) or []],
            groups=[str(x) for x in cfg.get("groups", []) or []],
            loss=loss,
            focal_gamma=float(cfg.get("focal_gamma", 2.0)),
            class_weights=dict(class_weights) if isinstance(class_weights, Mapping)
            else class_weights,
            weight=float(cfg.get("weight", 1.0)),
            label_smoothing=float(cfg.get("label_smoothing", 0.0)),
            threshold=float(cfg.get("threshold", 0.5)),
            thresholds={str(k): float(v) for k, v in (cfg.get("thresholds") or {}).items()},
        )
        if spec.kind != "grouped" and spec.groups:
            raise SentiConfigError(
                f"Head '{name}' sets groups, but only grouped heads have groups."
            )
        if not 0.0 <= spec.label_smoothing < 1.0:
            raise SentiConfigError(f"Head '{name}': label_smoothing must be in [0, 1).")
        if ABSENT in spec.labels and spec.kind == "grouped":
            spec.labels = [lab for lab in spec.labels if lab != ABSENT]
        return spec

    def to_config(self) -> dict[str, Any]:
        """The JSON-serialisable settings (labels and thresholds included)."""
        return {
            "kind": self.kind,
            "labels": list(self.labels),
            "groups": list(self.groups),
            "loss": self.loss,
            "focal_gamma": self.focal_gamma,
            "class_weights": self.class_weights,
            "weight": self.weight,
            "label_smoothing": self.label_smoothing,
            "threshold": self.threshold,
            "thresholds": dict(self.thresholds),
        }

    # --- layout -------------------------------------------------------------------
    @property
    def polarities(self) -> list[str]:
        """Grouped heads: the classes of each group's softmax, ``absent`` first."""
        return [ABSENT, *self.labels]

    @property
    def n_outputs(self) -> int:
        if self.kind == "grouped":
            return len(self.groups) * len(self.polarities)
        return len(self.labels)

    def keys(self) -> list[str]:
        """The ``doc.cats`` keys of this head in output order."""
        if self.kind == "grouped":
            return [
                f"{self.name}{SEP}{g}{SEP}{p}" for g in self.groups for p in self.polarities
            ]
        return [f"{self.name}{SEP}{lab}" for lab in self.labels]

    def label_threshold(self, label: str) -> float:
        return self.thresholds.get(label, self.threshold)

    # --- reading doc.cats ---------------------------------------------------------
    def is_annotated(self, cats: Mapping[str, float]) -> bool:
        prefix = self.name + SEP
        return any(key.startswith(prefix) for key in cats)

    def gold_row(self, cats: Mapping[str, float]) -> list[float]:
        """Gold values in output order (grouped: a group with no key is ``absent``)."""
        if self.kind != "grouped":
            return [float(cats.get(key, 0.0)) for key in self.keys()]
        row: list[float] = []
        for g in self.groups:
            keys = [f"{self.name}{SEP}{g}{SEP}{p}" for p in self.polarities]
            values = [float(cats.get(key, 0.0)) for key in keys]
            if sum(values[1:]) == 0.0:
                values[0] = 1.0
            row.extend(values)
        return row

    def split_key(self, key: str) -> tuple[str, str] | str:
        """Label (or (group, polarity) for grouped heads) of one of this head's keys."""
        rest = key[len(self.name) + 1 :]
        if self.kind != "grouped":
            return rest
        if SEP not in rest:
            raise SentiConfigError(
                f"Label {key!r} of grouped head '{self.name}' has no group: grouped labels "
                f"look like '{self.name}{SEP}<group>{SEP}<polarity>', e.g. "
                f"'{self.name}{SEP}food{SEP}negative'."
            )
        group, polarity = rest.split(SEP, 1)
        return group, polarity

    # --- decoding probabilities ---------------------------------------------------
    def decode(self, probs: Iterable[float]) -> dict[str, Any]:
        """Typed views of one doc's probabilities for this head (see extensions.py)."""
        values = [float(p) for p in probs]
        if self.kind == "exclusive":
            scores = dict(zip(self.labels, values))
            best = max(scores, key=scores.get) if scores else None
            return {"label": best, "scores": scores}
        if self.kind == "multilabel":
            scores = dict(zip(self.labels, values))
            # float32 like the scorer, so a probability equal to its threshold agrees
            chosen = [
                lab for lab, p in scores.items()
                if np.float32(p) >= np.float32(self.label_threshold(lab))
            ]
            return {"labels": chosen, "scores": scores}
        n_pol = len(self.polarities)
        group_scores: dict[str, dict[str, float]] = {}
        present: dict[str, str] = {}
        for i, g in enumerate(self.groups):
            chunk = dict(zip(self.polarities, values[i * n_pol : (i + 1) * n_pol]))
            group_scores[g] = chunk
            best = max(chunk, key=chunk.get)
            if best != ABSENT:
                present[g] = best
        return {"aspects": present, "scores": group_scores}


def heads_from_config(heads: Mapping[str, Mapping[str, Any]]) -> list[HeadSpec]:
    """Validate the ``heads`` block of ``senti_textcat``; order is the config's."""
    if not heads:
        raise SentiConfigError(
            "senti_textcat needs at least one head, e.g. "
            "[components.senti_textcat.heads.sentiment] with kind = \"exclusive\"."
        )
    return [HeadSpec.from_config(name, cfg) for name, cfg in heads.items()]


def find_head(heads: Iterable[HeadSpec], key: str) -> HeadSpec | None:
    """The head a namespaced ``doc.cats`` key belongs to, or None."""
    prefix = key.split(SEP, 1)[0]
    for head in heads:
        if head.name == prefix:
            return head
    return None
