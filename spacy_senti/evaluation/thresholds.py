"""Per-label decision thresholds of multilabel heads, tuned on dev data.

For every label of a multilabel head the threshold with the best F-score (F1 by default) on
the dev set is chosen from a grid plus the label's current threshold (so the dev score never
drops); ties go to the threshold closest to 0.5. Labels without a positive dev example keep
their threshold. The thresholds are stored with ``senti_textcat.set_thresholds`` and saved
with the pipeline.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example

from ..errors import InputError
from ..heads import Head
from ..util import find_textcat
from .report import check_gold, predict_examples
from .scorer import head_arrays

DEFAULT_GRID = "0.05:0.95:0.01"
TIE_TOLERANCE = 1e-9


def parse_grid(spec: str) -> np.ndarray:
    """``"start:stop:step"`` (stop included) or a comma-separated list, values in (0, 1)."""
    text = spec.strip()
    try:
        if ":" in text:
            start, stop, step = (float(x) for x in text.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            values = np.arange(start, stop + step / 2, step)
        else:
            values = np.asarray([float(x) for x in text.split(",") if x.strip()])
    except ValueError:
        raise InputError(
            f"Invalid threshold grid {spec!r}: use 'start:stop:step' (e.g. {DEFAULT_GRID}) "
            "or a comma-separated list such as '0.3,0.5,0.7'."
        ) from None
    values = np.unique(np.round(values, 6))
    if not len(values) or values.min() <= 0.0 or values.max() > 1.0:
        raise InputError(f"Threshold grid {spec!r} must hold values in (0, 1].")
    return values


def parse_metric(metric: str) -> float:
    """The beta of an F-score name: ``f1`` -> 1.0, ``f0.5`` -> 0.5, ``f2`` -> 2.0."""
    match = re.fullmatch(r"f(\d+(?:\.\d+)?)", metric.strip().lower())
    if not match or float(match.group(1)) <= 0:
        raise InputError(f"Unknown metric {metric!r}: use an F-score such as f1, f0.5 or f2.")
    return float(match.group(1))


def f_scores(y_true: np.ndarray, probs: np.ndarray, thresholds: np.ndarray,
             beta: float = 1.0) -> np.ndarray:
    """F-beta of ``probs >= t`` against binary ``y_true`` for every ``t`` (0 when undefined).

    Compared in float32, like ``MultilabelHead.decide``.
    """
    y_true = np.asarray(y_true).astype(bool).ravel()
    probs = np.asarray(probs, dtype="f4").ravel()
    decided = probs[None, :] >= np.asarray(thresholds, dtype="f4")[:, None]
    tp = (decided & y_true).sum(axis=1)
    fp = (decided & ~y_true).sum(axis=1)
    fn = (~decided & y_true).sum(axis=1)
    b2 = beta * beta
    denom = (1 + b2) * tp + b2 * fn + fp
    return np.divide((1 + b2) * tp, denom, out=np.zeros(len(tp)), where=denom > 0)


def best_threshold(y_true: np.ndarray, probs: np.ndarray, grid: Sequence[float],
                   beta: float = 1.0) -> tuple[float, float]:
    """(threshold, score) maximising F-beta over ``grid``; ties: closest to 0.5, then lower."""
    grid = np.asarray(grid, dtype="f8")
    scores = f_scores(y_true, probs, grid, beta)
    best = scores.max()
    tied = grid[scores >= best - TIE_TOLERANCE]
    order = np.lexsort((tied, np.abs(tied - 0.5)))
    return float(tied[order[0]]), float(best)


@dataclass
class LabelTuning:
    """One label's result: old/new threshold and the dev score at each."""

    label: str
    old: float
    new: float
    before: float
    after: float
    n_positive: int
    predicted_before: int = 0
    predicted_after: int = 0

    @property
    def skipped(self) -> bool:
        return self.n_positive == 0


@dataclass
class HeadTuning:
    """The tuning of one multilabel head."""

    head: str
    metric: str
    n: int
    labels: list[LabelTuning] = field(default_factory=list)

    @property
    def thresholds(self) -> dict[str, float]:
        """New thresholds of the labels that were tuned."""
        return {t.label: t.new for t in self.labels if not t.skipped}

    @property
    def skipped(self) -> list[str]:
        """Labels without positive dev examples (threshold kept)."""
        return [t.label for t in self.labels if t.skipped]

    @property
    def macro_before(self) -> float:
        """Macro score at the old thresholds (labels in neither gold nor predictions left out,
        as in the scorer)."""
        return _macro([(t.before, t.n_positive + t.predicted_before) for t in self.labels])

    @property
    def macro_after(self) -> float:
        return _macro([(t.after, t.n_positive + t.predicted_after) for t in self.labels])

    def as_dict(self) -> dict[str, Any]:
        return {
            "head": self.head, "metric": self.metric, "n": self.n,
            "thresholds": self.thresholds, "skipped": self.skipped,
            "macro_before": self.macro_before, "macro_after": self.macro_after,
            "labels": [vars(t) for t in self.labels],
        }


def _macro(scores_and_counts: list[tuple[float, int]]) -> float:
    active = [score for score, count in scores_and_counts if count > 0]
    if not active:
        active = [score for score, _ in scores_and_counts]
    return float(np.mean(active)) if active else 0.0


def _n_predicted(probs: np.ndarray, threshold: float) -> int:
    return int((np.asarray(probs, dtype="f4") >= np.float32(threshold)).sum())


def tune_head(head: Head, gold: np.ndarray, probs: np.ndarray, grid: Sequence[float],
              metric: str = "f1") -> HeadTuning:
    """Best thresholds of a multilabel head from gold (n, labels) and probabilities (n, labels).

    The label's current threshold is a candidate too, so no label's dev score decreases.
    """
    if not head.has_thresholds:
        raise ValueError(f"Head '{head.name}' is {head.kind}: only multilabel heads are tuned.")
    beta = parse_metric(metric)
    truth = np.asarray(gold) >= 0.5
    result = HeadTuning(head=head.name, metric=metric, n=len(truth))
    for j, label in enumerate(head.labels):
        old = head.label_threshold(label)
        before = float(f_scores(truth[:, j], probs[:, j], np.asarray([old]), beta)[0])
        n_pos = int(truth[:, j].sum())
        new, after = old, before
        if n_pos:
            candidates = np.union1d(np.asarray(grid, dtype="f8"), [old])
            new, after = best_threshold(truth[:, j], probs[:, j], candidates, beta)
        result.labels.append(LabelTuning(label, old, new, before, after, n_pos,
                                         _n_predicted(probs[:, j], old),
                                         _n_predicted(probs[:, j], new)))
    return result


def _as_examples(nlp: Language, data: Iterable[Example | Doc], batch_size: int,
                 progress: bool) -> list[Example]:
    items = list(data)
    docs = [x.reference if isinstance(x, Example) else x for x in items]
    return predict_examples(nlp, docs, batch_size=batch_size, progress=progress)


def tune_thresholds(
    nlp: Language,
    examples_or_docs: Iterable[Example | Doc],
    component: str = "senti_textcat",
    *,
    grid: Sequence[float] | str = DEFAULT_GRID,
    metric: str = "f1",
    apply: bool = True,
    batch_size: int = 64,
    progress: bool = False,
) -> dict[str, HeadTuning]:
    """Tune every multilabel head of ``component`` on gold docs (or Examples' references).

    The docs are re-predicted with ``nlp``; with ``apply`` the thresholds are stored on the
    component (save the pipeline with ``nlp.to_disk`` to keep them). Returns
    ``{head name: HeadTuning}``; heads without gold annotations in the data are left out.
    """
    pipe = find_textcat(nlp, component)
    values = parse_grid(grid) if isinstance(grid, str) else np.asarray(grid, dtype="f8")
    parse_metric(metric)
    multilabel = [h for h in pipe.heads if h.has_thresholds]
    if not multilabel:
        return {}
    examples = _as_examples(nlp, examples_or_docs, batch_size, progress)
    check_gold([eg.reference for eg in examples], multilabel, "the dev data")
    results: dict[str, HeadTuning] = {}
    for head in multilabel:
        gold, probs = head_arrays(examples, head)
        if not len(gold):
            continue
        results[head.name] = tune_head(head, gold, probs, values, metric)
        if apply and results[head.name].thresholds:
            pipe.set_thresholds(head.name, results[head.name].thresholds)
    return results
