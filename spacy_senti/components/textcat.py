"""``senti_textcat``: several classification heads over one shared encoder pass."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.vocab import Vocab
from thinc.api import Config, Model, Optimizer, set_dropout_rate
from thinc.types import Floats2d

from ..errors import ConfigError
from ..extensions import register_head_extensions
from ..heads import SEP, Head, find_head, heads_from_config
from ..models.classifier import OUTPUT_LAYER

DEFAULT_MODEL_CONFIG = """
[model]
@architectures = "spacy_senti.MultiHeadClassifier.v1"
pooling = "mean"
hidden_width = 0
dropout = 0.1
nO = null

[model.tok2vec]
@architectures = "spacy_senti.WordpieceListener.v1"
grad_factor = 1.0
upstream = "*"
"""
DEFAULT_MODEL = Config().from_str(DEFAULT_MODEL_CONFIG)["model"]
DEFAULT_HEADS = {"sentiment": {"kind": "exclusive"}}


@Language.factory(
    "senti_textcat",
    assigns=["doc.cats"],
    default_config={
        "model": DEFAULT_MODEL,
        "heads": {},
        "scorer": {"@scorers": "spacy_senti.scorer.v1"},
    },
    default_score_weights={"senti_macro_f": 1.0, "senti_micro_f": None, "senti_acc": None},
)
def make_senti_textcat(
    nlp: Language,
    name: str,
    model: Model[list[Doc], Floats2d],
    heads: dict[str, dict[str, Any]],
    scorer: Callable | None,
) -> SentiTextCategorizer:
    """Create a multi-head sentiment/emotion/aspect classifier.

    model: a ``spacy_senti.MultiHeadClassifier.v1`` (encoder listener + pooling + heads).
    heads: ``{name: {kind, labels?, groups?, loss?, focal_gamma?, class_weights?, weight?,
        label_smoothing?, threshold?}}``; empty means one exclusive head ``sentiment``.
    scorer: the scoring function, ``spacy_senti.scorer.v1`` by default.
    """
    return SentiTextCategorizer(nlp.vocab, model, name, heads=heads, scorer=scorer)


class SentiTextCategorizer(TrainablePipe):
    """Exclusive, multilabel and grouped heads trained jointly; missing heads are masked."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "senti_textcat",
        *,
        heads: dict[str, dict[str, Any]] | None = None,
        scorer: Callable | None = None,
    ) -> None:
        self.vocab = vocab
        self.model = model
        self.name = name
        self.scorer = scorer
        self.heads: list[Head] = heads_from_config(heads or DEFAULT_HEADS)
        self.cfg: dict[str, Any] = {"heads": {}, "class_weight_values": {}}
        self._sync_cfg()
        for head in self.heads:
            register_head_extensions(head)

    # --- state -----------------------------------------------------------------------
    def _sync_cfg(self) -> None:
        self.cfg["heads"] = {h.name: h.to_config() for h in self.heads}

    def _load_cfg(self) -> None:
        self.heads = heads_from_config(self.cfg["heads"])
        for head in self.heads:
            register_head_extensions(head)

    @property
    def labels(self) -> tuple[str, ...]:
        """Every ``doc.cats`` key this component predicts, in output order."""
        return tuple(key for head in self.heads for key in head.keys())

    @property
    def label_data(self) -> dict[str, dict[str, Any]]:
        return {h.name: {"labels": h.labels, "groups": h.groups} for h in self.heads}

    @property
    def n_outputs(self) -> int:
        return sum(head.n_outputs for head in self.heads)

    def head_slices(self) -> dict[str, slice]:
        """Columns of each head in the model's output."""
        slices, start = {}, 0
        for head in self.heads:
            slices[head.name] = slice(start, start + head.n_outputs)
            start += head.n_outputs
        return slices

    def get_head(self, name: str) -> Head:
        for head in self.heads:
            if head.name == name:
                return head
        raise ConfigError(f"{self.name} has no head {name!r}; its heads: "
                          f"{[h.name for h in self.heads]}.")

    def set_thresholds(self, head_name: str, thresholds: dict[str, float]) -> None:
        """Store per-label decision thresholds of a multilabel head."""
        self.get_head(head_name).set_thresholds(thresholds)
        self._sync_cfg()

    def add_label(self, label: str) -> int:
        """Add a ``head/label`` (or ``head/group/polarity``) key before training."""
        head = find_head(self.heads, label)
        if head is None:
            raise ConfigError(_unknown_head_message(label, self.heads))
        if self.model.get_ref(OUTPUT_LAYER).has_dim("nO"):
            raise ConfigError("Labels cannot be added after the model is initialised.")
        added = head.add_key(label)
        self._sync_cfg()
        return int(added)

    # --- prediction --------------------------------------------------------------------
    def predict(self, docs: Iterable[Doc]):
        """Per-head probabilities, shape (n_docs, n_outputs); rows of empty docs are 0."""
        docs = list(docs)
        probs = self.model.ops.alloc2f(len(docs), self.n_outputs)
        keep = [i for i, doc in enumerate(docs) if len(doc)]
        if keep:
            logits = self.model.predict([docs[i] for i in keep])
            probs[self.model.ops.xp.asarray(keep)] = self._activate(logits)
        return probs

    def _activate(self, logits):
        xp = self.model.ops.xp
        out = xp.empty_like(logits)
        for head, sl in zip(self.heads, self.head_slices().values()):
            out[:, sl] = head.activate(xp, logits[:, sl])
        return out

    def set_annotations(self, docs: Iterable[Doc], probs) -> None:
        """Write probabilities to ``doc.cats`` and the typed ``doc._`` views."""
        # one float32 -> Python float conversion for the whole batch (the same values as
        # per-item float()), then list slices per head
        rows = self.model.ops.to_numpy(probs).tolist()
        slices = self.head_slices()
        layout = [(head, slices[head.name], head.keys()) for head in self.heads]
        for doc, row in zip(docs, rows):
            if not len(doc):
                continue
            for head, sl, keys in layout:
                head_values = row[sl]
                doc.cats.update(zip(keys, head_values))
                head.set_extensions(doc, head.decode(head_values))

    # --- training ----------------------------------------------------------------------
    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optimizer | None = None,
        losses: dict[str, float] | None = None,
    ) -> dict[str, float]:
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, "SentiTextCategorizer.update")
        _check_nonempty(examples)
        if not examples:
            return losses
        set_dropout_rate(self.model, drop)
        logits, backprop = self.model.begin_update([eg.predicted for eg in examples])
        loss, d_logits = self.get_loss(examples, logits)
        backprop(d_logits)
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses

    def get_loss(self, examples: Iterable[Example], logits) -> tuple[float, Floats2d]:
        """Sum of per-head weighted losses; heads a doc does not annotate are masked out."""
        examples = list(examples)
        ops = self.model.ops
        xp = ops.xp
        d_logits = ops.alloc2f(*logits.shape)
        total = 0.0
        for head, sl in zip(self.heads, self.head_slices().values()):
            rows, gold = self._gold(head, examples)
            if not rows:
                continue
            index = xp.asarray(rows)
            block = logits[index, sl]
            targets = ops.asarray2f(np.asarray(gold, dtype="f"))
            weights = self.cfg["class_weight_values"].get(head.name)
            weights = ops.asarray1f(np.asarray(weights, dtype="f")) if weights else None
            loss, d_block = head.compute_loss(xp, block, targets, weights)
            d_logits[index, sl] = d_block * head.weight
            total += loss * head.weight
        return total, d_logits

    def _gold(self, head: Head, examples: list[Example]) -> tuple[list[int], list[list[float]]]:
        allowed = set(head.keys())
        rows, gold = [], []
        for i, eg in enumerate(examples):
            cats = eg.reference.cats
            if not head.is_annotated(cats):
                continue
            for key in cats:
                if key.startswith(head.name + SEP) and key not in allowed:
                    raise ConfigError(head.unknown_label_message(key))
            rows.append(i)
            gold.append(head.gold_row(cats))
        return rows, gold

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Language | None = None,
        labels: dict[str, dict[str, list[str]]] | None = None,
    ) -> None:
        """Infer labels (unless configured), class weights and the output width."""
        validate_get_examples(get_examples, "SentiTextCategorizer.initialize")
        if labels:
            for name, data in labels.items():
                head = self.get_head(name)
                head.labels = list(data.get("labels", head.labels))
                head.groups = list(data.get("groups", head.groups))
        fixed = {h.name: (bool(h.labels), bool(h.groups)) for h in self.heads}
        examples = list(get_examples())
        for eg in examples:
            for key in eg.reference.cats:
                if SEP not in key:
                    continue  # another component's label
                head = find_head(self.heads, key)
                if head is None:
                    raise ConfigError(_unknown_head_message(key, self.heads))
                head.add_key(key, *fixed[head.name])
        for head in self.heads:
            head.check_ready()
            labels_fixed, groups_fixed = fixed[head.name]
            head.labels = head.labels if labels_fixed else sorted(head.labels)
            head.groups = head.groups if groups_fixed else sorted(head.groups)
        _check_nonempty(examples)
        gold = {head.name: self._gold(head, examples) for head in self.heads}
        self.cfg["class_weight_values"] = {
            head.name: head.compute_class_weights(gold[head.name][1])
            for head in self.heads
            if head.class_weights != "none"
        }
        self._sync_cfg()
        output_layer = self.model.get_ref(OUTPUT_LAYER)
        output_layer.set_dim("nO", self.n_outputs)
        doc_sample = [eg.reference for eg in examples[:10]]
        self.model.initialize(X=doc_sample)
        # Start every head at the label priors of the training data: rare multilabel labels
        # then begin near their base rate instead of 0.5, which fine-tuning learning rates
        # (~5e-5) would take thousands of steps to reach.
        bias = np.concatenate([h.prior_logits(gold[h.name][1]) for h in self.heads])
        output_layer.set_param("b", self.model.ops.asarray1f(bias.astype("f")))

    # --- scoring and serialisation ----------------------------------------------------------
    def score(self, examples: Iterable[Example], **kwargs) -> dict[str, Any]:
        validate_examples(examples, "SentiTextCategorizer.score")
        return self.scorer(examples, heads=self.heads)

    def to_bytes(self, *, exclude=tuple()):
        self._sync_cfg()
        return super().to_bytes(exclude=exclude)

    def to_disk(self, path, *, exclude=tuple()):
        self._sync_cfg()
        return super().to_disk(path, exclude=exclude)

    def from_bytes(self, bytes_data, *, exclude=tuple()):
        super().from_bytes(bytes_data, exclude=exclude)
        self._load_cfg()
        return self

    def from_disk(self, path, *, exclude=tuple()):
        super().from_disk(path, exclude=exclude)
        self._load_cfg()
        return self


# --- helpers ------------------------------------------------------------------------------
def _check_nonempty(examples: list[Example]) -> None:
    for i, eg in enumerate(examples):
        if not len(eg.reference) or not eg.reference.text.strip():
            raise ConfigError(
                f"Training example {i} has no text (an empty doc). Remove empty rows from the "
                "data, e.g. re-run `spacy-senti convert` which reports and skips them."
            )


def _unknown_head_message(key: str, heads: list[Head]) -> str:
    names = [h.name for h in heads]
    return (
        f"doc.cats key {key!r} names no head of senti_textcat (heads: {names}). Keys look like "
        f"'<head>{SEP}<label>'; add a [components.senti_textcat.heads.{key.split(SEP)[0]}] "
        "block or fix the key in the data."
    )

