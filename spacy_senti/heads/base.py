"""The head base classes and the ``doc.cats`` key scheme shared by every part of spacy-senti.

Gold and predicted labels live in ``doc.cats`` under namespaced keys:

* exclusive head ``sentiment``: ``"sentiment/positive"``
* multilabel head ``emotion``: ``"emotion/joy"``
* grouped head ``aspect``: ``"aspect/food/negative"``; each group also has the pseudo
  polarity ``"absent"`` (``"aspect/food/absent"``).

A head counts as *annotated* on a doc when at least one key with its prefix is present;
missing keys of an annotated head are read as 0.0. Heads that a doc does not annotate are
masked out of the loss and of the scores.

Every kind is a subclass of :class:`Head` registered in ``HEAD_KINDS`` (``heads/__init__.py``);
the rest of spacy-senti asks the head (methods and class-level capabilities) instead of
testing its kind. Arrays: ``gold`` / ``pred`` are (n_docs, n_outputs) values in output
order; ``logits`` / ``targets`` are the same shape, with ``xp`` NumPy or CuPy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigError
from ..models.losses import softmax, softmax_loss

LOSSES = ("cross_entropy", "focal")
ABSENT = "absent"
SEP = "/"
# Decision thresholds are rounded: srsly's JSON reader (the component's cfg) parses floats
# imprecisely (0.3 -> 0.30000000000000004), which would change thresholds on save/load.
THRESHOLD_DIGITS = 9
SETTINGS = ("kind", "labels", "groups", "loss", "focal_gamma", "class_weights", "weight",
            "label_smoothing", "threshold", "thresholds")


def head_class(kind: Any, name: str = "") -> type[Head]:
    """The class registered for ``kind`` in ``HEAD_KINDS``; ConfigError if there is none."""
    from . import HEAD_KINDS

    try:
        return HEAD_KINDS[kind]
    except (KeyError, TypeError):
        raise ConfigError(
            f"Head '{name}' has unknown kind {kind!r}. Set kind to one of "
            f"{', '.join(HEAD_KINDS)} in [components.senti_textcat.heads.{name}]."
        ) from None


def check_name(name: Any) -> None:
    if not name or not isinstance(name, str) or SEP in name:
        raise ConfigError(f"Invalid head name {name!r}: use a non-empty name without '{SEP}'.")


class Head:
    """One output head of ``senti_textcat``; each kind is a subclass.

    ``Head(name, kind, ...)`` (also spelled ``HeadSpec``) builds the class registered for
    ``kind``; a kind class is built without ``kind``: ``MultilabelHead("emotion")``.

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

    kind: ClassVar[str] = ""
    #: every doc has exactly one label (a softmax over the labels)
    single_label: ClassVar[bool] = False
    #: labels are ``group/polarity`` pairs
    has_groups: ClassVar[bool] = False
    #: per-label decision thresholds (tuned by ``spacy-senti tune-thresholds``)
    has_thresholds: ClassVar[bool] = False
    #: keys of ``decode()``'s dict stored in the two ``doc._`` attributes
    extension_fields: ClassVar[tuple[str, str]]
    #: value types of the two ``doc._`` attributes: "label", "labels" or "mapping"
    value_types: ClassVar[tuple[str, str]]
    #: what one wrong decision is about in error lists ("" = the doc)
    item_name: ClassVar[str] = ""
    #: what the outcome of a ``calibration_pairs`` pair means
    calibration_outcome: ClassVar[str] = "accuracy"

    def __new__(cls, *args: Any, **kwargs: Any) -> Head:
        klass = cls
        if cls is Head:
            kind = kwargs["kind"] if "kind" in kwargs else (args[1] if len(args) > 1 else None)
            klass = head_class(kind, kwargs.get("name", args[0] if args else ""))
        return object.__new__(klass)

    def __init__(
        self,
        name: str,
        kind: str | None = None,
        labels: Iterable[str] = (),
        groups: Iterable[str] = (),
        loss: str = "cross_entropy",
        focal_gamma: float = 2.0,
        class_weights: str | Mapping[str, float] = "none",
        weight: float = 1.0,
        label_smoothing: float = 0.0,
        threshold: float = 0.5,
        thresholds: Mapping[str, float] | None = None,
    ) -> None:
        check_name(name)
        if kind is not None and not isinstance(self, head_class(kind, name)):
            raise ConfigError(f"Head '{name}' is a {self.kind} head, not {kind!r}.")
        if loss not in LOSSES:
            raise ConfigError(
                f"Head '{name}' has unknown loss {loss!r}; use one of {', '.join(LOSSES)}."
            )
        if isinstance(class_weights, str) and class_weights not in ("none", "balanced"):
            raise ConfigError(
                f"Head '{name}': class_weights must be 'none', 'balanced' or a mapping "
                f"label -> weight, not {class_weights!r}."
            )
        self.name = name
        self.labels = [str(x) for x in labels or []]
        self.groups = [str(x) for x in groups or []]
        if self.groups and not self.has_groups:
            raise ConfigError(f"Head '{name}' sets groups, but only grouped heads have groups.")
        self.loss = loss
        self.focal_gamma = float(focal_gamma)
        self.class_weights: str | dict[str, float] = (
            dict(class_weights) if isinstance(class_weights, Mapping) else class_weights
        )
        self.weight = float(weight)
        self.label_smoothing = float(label_smoothing)
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"Head '{name}': label_smoothing must be in [0, 1).")
        self.threshold = round(float(threshold), THRESHOLD_DIGITS)
        self.thresholds = {str(k): round(float(v), THRESHOLD_DIGITS)
                           for k, v in (thresholds or {}).items()}

    @classmethod
    def from_config(cls, name: str, cfg: Mapping[str, Any]) -> Head:
        """Validate one ``[components.senti_textcat.heads.<name>]`` block."""
        check_name(name)
        unknown = set(cfg) - set(SETTINGS)
        if unknown:
            raise ConfigError(
                f"Head '{name}' has unknown setting(s) {sorted(unknown)}. "
                f"Allowed settings: {sorted(SETTINGS)}."
            )
        kind = cfg.get("kind")
        klass = head_class(kind, name) if cls is Head else cls
        settings = {k: v for k, v in cfg.items() if k != "kind" and v is not None}
        return klass(name, kind, **settings)

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

    def __repr__(self) -> str:
        groups = f", groups={self.groups!r}" if self.groups else ""
        return f"{type(self).__name__}(name={self.name!r}, labels={self.labels!r}{groups})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Head):
            return NotImplemented
        return (type(self), self.name, self.to_config()) == (
            type(other), other.name, other.to_config())

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it replaces

    # --- layout -------------------------------------------------------------------
    @property
    def n_outputs(self) -> int:
        return len(self.labels)

    def keys(self) -> list[str]:
        """The ``doc.cats`` keys of this head in output order."""
        return [f"{self.name}{SEP}{lab}" for lab in self.labels]

    @property
    def label_names(self) -> list[str]:
        """What a doc can be labelled with: the labels (grouped: ``group/polarity``)."""
        return list(self.labels)

    def label_threshold(self, label: str) -> float:
        return self.thresholds.get(label, self.threshold)

    # --- doc.cats -----------------------------------------------------------------
    def is_annotated(self, cats: Mapping[str, float]) -> bool:
        prefix = self.name + SEP
        return any(key.startswith(prefix) for key in cats)

    def has_known_gold(self, cats: Mapping[str, float]) -> bool:
        """True when ``cats`` annotate this head with labels the head knows: no positive key
        of the head's namespace outside :meth:`keys`, and for single-label heads one positive
        label. Scoring keeps only these docs; anything else would invent a gold label."""
        if not self.is_annotated(cats):
            return False
        known = set(self.keys())
        prefix = self.name + SEP
        if any(k.startswith(prefix) and k not in known and v > 0 for k, v in cats.items()):
            return False
        return not self.single_label or any(cats.get(k, 0.0) > 0 for k in known)

    def gold_row(self, cats: Mapping[str, float]) -> list[float]:
        """Gold values in output order; missing keys of an annotated head are 0.0."""
        return [float(cats.get(key, 0.0)) for key in self.keys()]

    def gold_cats(self, labels: Iterable[str]) -> dict[str, float]:
        """The full key set with 1.0 for ``labels`` (entries of ``label_names``), else 0.0."""
        present = set(labels)
        return {f"{self.name}{SEP}{lab}": float(lab in present) for lab in self.labels}

    def split_key(self, key: str) -> Any:
        """The label of one of this head's keys (grouped: ``(group, polarity)``)."""
        return key[len(self.name) + 1 :]

    def add_key(self, key: str, labels_fixed: bool = False, groups_fixed: bool = False) -> bool:
        """Add the label of ``key``; True if it is new. A new value of a set listed in the
        config (``labels_fixed`` / ``groups_fixed``) is an error."""
        return self._add_value(key, self.split_key(key), self.labels, labels_fixed)

    def _add_value(self, key: str, value: str, known: list[str], fixed: bool) -> bool:
        if not value:
            raise ConfigError(f"Empty label in key {key!r} of head '{self.name}'.")
        if value in known:
            return False
        if fixed:
            raise ConfigError(self.unknown_label_message(key))
        known.append(value)
        return True

    def check_ready(self) -> None:
        """Raise ConfigError unless the head has what it needs to be trained."""
        if not self.labels:
            raise ConfigError(
                f"Head '{self.name}' has no labels: the training data has no "
                f"'{self.name}{SEP}...' keys in doc.cats. Add annotated examples or list the "
                f"labels in [components.senti_textcat.heads.{self.name}] labels."
            )

    def unknown_label_message(self, key: str) -> str:
        return (
            f"Label {key!r} in the data is not among the labels configured for head "
            f"'{self.name}' ({self._configured()}). Add it to "
            f"[components.senti_textcat.heads.{self.name}] labels, or map it in "
            "`spacy-senti convert --label-map`."
        )

    def _configured(self) -> list[str]:
        return self.keys()

    def set_thresholds(self, thresholds: Mapping[str, float]) -> None:
        """Store per-label decision thresholds (only heads that have thresholds)."""
        raise ConfigError(f"Head '{self.name}' is {self.kind}: only multilabel heads have "
                          "per-label thresholds.")

    # --- model outputs --------------------------------------------------------------
    def activate(self, xp: Any, logits):
        """Probabilities from this head's logits (n, n_outputs)."""
        raise NotImplementedError

    def compute_loss(self, xp: Any, logits, targets, class_weights=None) -> tuple[float, Any]:
        """The head's configured loss (focal / label smoothing / class weights) and its
        gradient on ``logits``."""
        gamma = self.focal_gamma if self.loss == "focal" else 0.0
        return self._loss(xp, logits, targets, class_weights, gamma, self.label_smoothing)

    def soft_target_loss(self, xp: Any, logits, targets) -> tuple[float, Any]:
        """Plain cross-entropy against soft targets (distillation) and its gradient."""
        return self._loss(xp, logits, targets, None, 0.0, 0.0)

    def _loss(self, xp: Any, logits, targets, weights, gamma: float, smoothing: float):
        raise NotImplementedError

    def compute_class_weights(self, gold: Sequence[Sequence[float]]) -> list[float]:
        """Class weights (softmax heads) or positive-class weights (multilabel) for the
        ``class_weights`` setting, from the training gold rows."""
        raise NotImplementedError

    def prior_logits(self, gold: Sequence[Sequence[float]]) -> np.ndarray:
        """Bias values that make an untrained head predict the training label frequencies."""
        raise NotImplementedError

    def _explicit_weights(self, names: Sequence[str]) -> list[float]:
        assert isinstance(self.class_weights, dict)
        unknown = set(self.class_weights) - set(names)
        if unknown:
            raise ConfigError(
                f"class_weights of head '{self.name}' name unknown labels {sorted(unknown)}; "
                f"labels are {list(names)}."
            )
        return [float(self.class_weights.get(name, 1.0)) for name in names]

    # --- typed views -------------------------------------------------------------------
    def decode(self, probs: Iterable[float]) -> dict[str, Any]:
        """Typed views of one doc's probabilities (the values of the ``doc._`` attributes)."""
        raise NotImplementedError

    @property
    def extension_names(self) -> tuple[str, str]:
        """(main, secondary) ``doc._`` attribute names."""
        raise NotImplementedError

    def set_extensions(self, doc: Any, decoded: Mapping[str, Any]) -> None:
        """Write ``decode()``'s views to the head's ``doc._`` attributes."""
        for attr, item in zip(self.extension_names, self.extension_fields, strict=True):
            doc._.set(attr, decoded[item])

    def predicted_labels(self, probs: Iterable[float]) -> list[str]:
        """The entries of ``label_names`` one doc is given."""
        raise NotImplementedError

    # --- decisions and scores -----------------------------------------------------------
    def distributions(self, probs: np.ndarray) -> np.ndarray:
        """(n, m, k) probability distributions of the head's m decisions per doc."""
        raise NotImplementedError

    def decide(self, pred: np.ndarray) -> np.ndarray:
        """0/1 decisions (n, len(label_names)) of predicted probabilities."""
        raise NotImplementedError

    def truth(self, gold: np.ndarray) -> np.ndarray:
        """0/1 gold labels (n, len(label_names))."""
        return self.decide(gold)

    def label_probs(self, pred: np.ndarray) -> np.ndarray:
        """The probability of each entry of ``label_names`` (n, len(label_names))."""
        return pred

    def support(self, gold: np.ndarray) -> dict[str, int]:
        """Gold positives per entry of ``label_names``."""
        counts = self.truth(gold).sum(axis=0).astype(int).tolist()
        return dict(zip(self.label_names, counts, strict=True))

    def score(self, gold: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
        """Metrics (``acc``, ``macro_p/r/f``, ``micro_p/r/f``, ``f_per_type``, ...) of
        non-empty gold and predicted rows."""
        raise NotImplementedError

    def calibration_pairs(self, gold: np.ndarray, pred: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray]:
        """``(probability, outcome)`` arrays (see ``evaluation/calibration.py``)."""
        raise NotImplementedError

    def confusion(self, gold: np.ndarray, pred: np.ndarray) -> tuple[list[str], np.ndarray]:
        """Row/column names and the confusion (or per-label outcome) matrix."""
        raise NotImplementedError

    def errors(self, gold: np.ndarray, pred: np.ndarray
               ) -> list[tuple[int, str, str, str, float]]:
        """Wrong decisions as (doc index, item, gold, predicted, confidence in the wrong
        answer), in doc order."""
        raise NotImplementedError


class SoftmaxHead(Head):
    """A head made of blocks of one softmax each: ``n_blocks`` blocks of ``classes``.

    The first ``n_null_classes`` classes of a block are no label (grouped: ``absent``).
    """

    n_null_classes: ClassVar[int] = 0

    @property
    def classes(self) -> list[str]:
        """The classes of one block's softmax."""
        return list(self.labels)

    @property
    def width(self) -> int:
        return len(self.classes)

    @property
    def n_blocks(self) -> int:
        return 1

    @property
    def block_names(self) -> list[str]:
        """The item each block decides (error lists)."""
        return [""]

    def _blocks(self, values):
        return values.reshape(len(values), self.n_blocks, self.width)

    def activate(self, xp: Any, logits):
        return softmax(xp, self._blocks(logits)).reshape(len(logits), -1)

    def _loss(self, xp: Any, logits, targets, weights, gamma: float, smoothing: float):
        width = self.width
        loss, d_logits = softmax_loss(
            xp, logits.reshape(-1, width), targets.reshape(-1, width),
            class_weights=weights, gamma=gamma, label_smoothing=smoothing,
        )
        return loss, d_logits.reshape(len(logits), -1)

    def compute_class_weights(self, gold: Sequence[Sequence[float]]) -> list[float]:
        if isinstance(self.class_weights, dict):
            return self._explicit_weights(self.classes)
        matrix = np.asarray(gold, dtype="f").reshape(-1, self.width)
        counts = matrix.sum(axis=0)
        return (float(len(matrix)) / (self.width * np.maximum(counts, 1.0))).tolist()

    def prior_logits(self, gold: Sequence[Sequence[float]]) -> np.ndarray:
        matrix = np.asarray(gold, dtype="f8").reshape(-1, self.width)
        prior = (matrix.sum(axis=0) + 0.5) / (matrix.sum() + 0.5 * self.width)
        logits = np.log(prior) - np.log(prior).mean()
        return np.tile(logits, self.n_blocks)

    def distributions(self, probs: np.ndarray) -> np.ndarray:
        return self._blocks(np.asarray(probs))

    def winners(self, values: np.ndarray) -> np.ndarray:
        """Index of the winning class per block: shape (n, n_blocks)."""
        return self._blocks(values).argmax(axis=2)

    def decide(self, pred: np.ndarray) -> np.ndarray:
        eye = np.eye(self.width, dtype="i")[:, self.n_null_classes:]
        return eye[self.winners(pred)].reshape(len(pred), -1)

    def label_probs(self, pred: np.ndarray) -> np.ndarray:
        return self._blocks(pred)[:, :, self.n_null_classes:].reshape(len(pred), -1)

    def calibration_pairs(self, gold: np.ndarray, pred: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray]:
        """Per (doc, block): the probability of the chosen class and whether it is right."""
        chosen = self.winners(pred)
        probs = np.take_along_axis(self._blocks(pred), chosen[:, :, None], axis=2)[:, :, 0]
        correct = chosen == self.winners(gold)
        return probs.ravel(), correct.astype("f8").ravel()

    def confusion(self, gold: np.ndarray, pred: np.ndarray) -> tuple[list[str], np.ndarray]:
        """classes x classes, pooled over the blocks."""
        from sklearn.metrics import confusion_matrix

        truth, chosen = self.winners(gold).ravel(), self.winners(pred).ravel()
        return self.classes, confusion_matrix(truth, chosen, labels=list(range(self.width)))

    def errors(self, gold: np.ndarray, pred: np.ndarray
               ) -> list[tuple[int, str, str, str, float]]:
        """Blocks whose top class is wrong; confidence = its probability."""
        values = self._blocks(pred)
        chosen, truth = self.winners(pred), self.winners(gold)
        classes, items = self.classes, self.block_names
        return [
            (int(i), items[b], classes[truth[i, b]], classes[chosen[i, b]],
             float(values[i, b, chosen[i, b]]))
            for i, b in zip(*np.nonzero(chosen != truth), strict=True)
        ]
