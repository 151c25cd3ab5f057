"""Scorer ``spacy_senti.scorer.v1``: per-head metrics for ``spacy train`` / ``spacy evaluate``.

Keys (``H`` = head name; prefix ``senti_``), computed by each head's ``score``:

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

spaCy's textcat keys, so ``python -m spacy evaluate`` prints a TEXTCAT line and per-label
tables (labels are ``"H/label"``, grouped ``"H/group/polarity"``):

* ``cats_score`` = ``senti_macro_f``, described by ``cats_score_desc``;
* ``cats_macro_p/r/f``: means over the heads of their macro P/R/F;
* ``cats_micro_p/r/f``: from the true/false positives and false negatives of every label of
  every head (each over the docs annotating that head);
* ``cats_f_per_type``: the heads' per-label P/R/F;
* ``cats_auc_per_type``: ROC AUC of each label's probability against its gold decision
  (None when the gold data holds only one class of it); ``cats_macro_auc``: their mean over
  the labels that have one.

Only examples whose reference annotates a head count for that head. The maths is
scikit-learn's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from spacy.training import Example
from spacy.util import registry

from ..heads import SEP, Head

PREFIX = "senti_"
CATS_SCORE_DESC = "macro F (senti heads)"


def head_arrays(examples: Iterable[Example], head: Head) -> tuple[np.ndarray, np.ndarray]:
    """Gold and predicted values, shape (n, head.n_outputs), for examples whose gold labels
    this head knows (``head.has_known_gold``): a doc annotated only with labels the model
    lacks is left out, not scored against an invented label.

    Predictions missing from ``doc.cats`` (e.g. empty docs) count as 0.0.
    """
    gold_rows, pred_rows = [], []
    for eg in examples:
        if not head.has_known_gold(eg.reference.cats):
            continue
        gold_rows.append(head.gold_row(eg.reference.cats))
        pred_rows.append([float(eg.predicted.cats.get(k, 0.0)) for k in head.keys()])
    width = head.n_outputs
    gold = np.asarray(gold_rows, dtype="f").reshape(-1, width)
    pred = np.asarray(pred_rows, dtype="f").reshape(-1, width)
    return gold, pred


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def _auc_per_label(head: Head, gold: np.ndarray, pred: np.ndarray) -> dict[str, float | None]:
    from sklearn.metrics import roc_auc_score

    truth, probs = head.truth(gold), head.label_probs(pred)
    return {
        f"{head.name}{SEP}{name}": float(roc_auc_score(truth[:, j], probs[:, j]))
        if 0 < truth[:, j].sum() < len(truth) else None
        for j, name in enumerate(head.label_names)
    }


def cats_scores(heads: Sequence[Head], arrays: dict[str, tuple[np.ndarray, np.ndarray]],
                scores: dict[str, Any]) -> dict[str, Any]:
    """spaCy's ``cats_*`` keys from the heads' arrays and their ``senti_*`` scores."""
    counts = np.zeros(3, dtype=int)  # tp, fp, fn
    macro: list[tuple[float, float, float]] = []
    per_type: dict[str, dict[str, float]] = {}
    auc: dict[str, float | None] = {}
    for head in heads:
        gold, pred = arrays[head.name]
        if not len(gold):
            continue
        truth, decided = head.truth(gold).astype(bool), head.decide(pred).astype(bool)
        counts += [(truth & decided).sum(), (~truth & decided).sum(), (truth & ~decided).sum()]
        prefix = f"{PREFIX}{head.name}_"
        macro.append(tuple(scores[f"{prefix}macro_{x}"] for x in "prf"))  # type: ignore[arg-type]
        for label, prf in scores[f"{prefix}f_per_type"].items():
            per_type[f"{head.name}{SEP}{label}"] = dict(prf)
        auc.update(_auc_per_label(head, gold, pred))
    out: dict[str, Any] = {"cats_score": scores[PREFIX + "macro_f"],
                           "cats_score_desc": CATS_SCORE_DESC}
    micro = _prf(*counts.tolist()) if macro else (None, None, None)
    means = np.mean(macro, axis=0).tolist() if macro else [None, None, None]
    for i, x in enumerate("prf"):
        out[f"cats_micro_{x}"] = micro[i]
        out[f"cats_macro_{x}"] = means[i]
    defined = [v for v in auc.values() if v is not None]
    out["cats_macro_auc"] = float(np.mean(defined)) if defined else None
    out["cats_f_per_type"] = per_type
    out["cats_auc_per_type"] = auc
    return out


def score_heads(examples: Iterable[Example], heads: Sequence[Head]) -> dict[str, Any]:
    """All metrics of all heads, the means used as training objective and spaCy's ``cats_*``."""
    examples = list(examples)
    scores: dict[str, Any] = {}
    summary: dict[str, list[float]] = {"macro_f": [], "micro_f": [], "acc": []}
    arrays = {head.name: head_arrays(examples, head) for head in heads}
    for head in heads:
        gold, pred = arrays[head.name]
        prefix = PREFIX + head.name
        if len(gold) == 0:
            for key in ("acc", "macro_f", "micro_f"):
                scores[f"{prefix}_{key}"] = None
            continue
        scores.update({f"{prefix}_{key}": value for key, value in head.score(gold, pred).items()})
        for key in summary:
            summary[key].append(scores[f"{prefix}_{key}"])
    for key, values in summary.items():
        scores[PREFIX + key] = float(np.mean(values)) if values else None
    scores.update(cats_scores(heads, arrays, scores))
    return scores


@registry.scorers("spacy_senti.scorer.v1")
def make_senti_scorer():
    """Registered scorer factory; the component passes its heads."""
    return score_heads
