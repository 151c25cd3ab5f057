"""Calibration of predicted probabilities: reliability bins and expected calibration error.

Every head is reduced to pairs ``(probability, outcome)`` (``Head.calibration_pairs``):

* exclusive: per doc, the probability of the predicted class and whether it is right;
* grouped: per (doc, group), the same over the group's classes (``absent`` included);
* multilabel: per (doc, label), the label's probability and whether the label is gold.

The expected calibration error (ECE) is ``sum_b n_b / n * |mean(prob_b) - mean(outcome_b)|``
over equal-width bins of the probability.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..heads import Head

DEFAULT_BINS = 10


@dataclass
class ReliabilityBins:
    """Per bin: the edges, mean probability, observed rate and count (empty bins: NaN, 0)."""

    edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    counts: np.ndarray

    @property
    def ece(self) -> float:
        """Expected calibration error of the binned pairs (0.0 when there are none)."""
        total = self.counts.sum()
        if total == 0:
            return 0.0
        used = self.counts > 0
        gaps = np.abs(self.confidence[used] - self.accuracy[used])
        return float((gaps * self.counts[used]).sum() / total)


def reliability_bins(
    probs: np.ndarray, outcomes: np.ndarray, n_bins: int = DEFAULT_BINS
) -> ReliabilityBins:
    """Bin ``probs`` in ``n_bins`` equal-width bins of [0, 1]; 1.0 falls in the last bin."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, not {n_bins}.")
    probs = np.asarray(probs, dtype="f8").ravel()
    outcomes = np.asarray(outcomes, dtype="f8").ravel()
    if probs.shape != outcomes.shape:
        raise ValueError(f"{len(probs)} probabilities but {len(outcomes)} outcomes.")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.digitize(probs, edges[1:-1], right=False), 0, n_bins - 1)
    counts = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(index, weights=probs, minlength=n_bins) / counts
        accuracy = np.bincount(index, weights=outcomes, minlength=n_bins) / counts
    return ReliabilityBins(edges, confidence, accuracy, counts)


def expected_calibration_error(
    probs: np.ndarray, outcomes: np.ndarray, n_bins: int = DEFAULT_BINS
) -> float:
    """ECE of probabilities against 0/1 outcomes (see the module docstring)."""
    return reliability_bins(probs, outcomes, n_bins).ece


def calibration_pairs(head: Head, gold: np.ndarray, pred: np.ndarray) -> tuple[
    np.ndarray, np.ndarray
]:
    """``(probability, outcome)`` arrays of a head from ``head_arrays`` output."""
    if len(gold) == 0:
        return np.zeros(0), np.zeros(0)
    return head.calibration_pairs(gold, pred)
