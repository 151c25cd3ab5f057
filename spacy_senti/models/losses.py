"""Losses on logits with their gradients, written against ``xp`` (NumPy or CuPy).

* ``softmax_loss``: cross-entropy (optionally focal) over mutually exclusive classes, with
  per-class weights and label smoothing; used by exclusive heads and, per group, by grouped
  heads.
* ``sigmoid_loss``: binary cross-entropy (optionally focal) per label with positive-class
  weights; used by multilabel heads.

Both accept soft targets. Gradients are exact derivatives of the returned loss (checked by
finite differences in the tests), averaged the way PyTorch does: by the summed example
weights for softmax, by the number of elements for sigmoid.
"""

from __future__ import annotations

from typing import Any

EPS = 1e-7


def softmax(xp: Any, logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = xp.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def sigmoid(xp: Any, logits):
    return 1.0 / (1.0 + xp.exp(-logits))


def softmax_loss(
    xp: Any,
    logits,
    targets,
    *,
    class_weights=None,
    gamma: float = 0.0,
    label_smoothing: float = 0.0,
):
    """Mean (focal) cross-entropy of rows of ``logits`` against target distributions.

    logits, targets: (n, K). class_weights: (K,) or None; an example's weight is the
    target-weighted sum of class weights. gamma: focal-loss gamma (0 = cross-entropy).
    Returns (loss, d_logits).
    """
    n, k = logits.shape
    if n == 0:
        return 0.0, xp.zeros_like(logits)
    totals = targets.sum(axis=1, keepdims=True)
    targets = targets / xp.maximum(totals, EPS)
    if label_smoothing:
        targets = targets * (1.0 - label_smoothing) + label_smoothing / k
    probs = xp.clip(softmax(xp, logits), EPS, 1.0 - EPS)
    log_probs = xp.log(probs)
    if gamma:
        focal = (1.0 - probs) ** gamma
        losses = -(targets * focal * log_probs).sum(axis=1)
        g = targets * (focal - gamma * probs * (1.0 - probs) ** (gamma - 1.0) * log_probs)
        d_logits = probs * g.sum(axis=1, keepdims=True) - g
    else:
        losses = -(targets * log_probs).sum(axis=1)
        d_logits = probs - targets
    if class_weights is None:
        weights = xp.ones((n,), dtype=logits.dtype)
    else:
        weights = targets @ class_weights
    norm = float(weights.sum())
    loss = float((weights * losses).sum()) / norm
    return loss, d_logits * (weights / norm)[:, None]


def sigmoid_loss(
    xp: Any,
    logits,
    targets,
    *,
    pos_weights=None,
    gamma: float = 0.0,
    label_smoothing: float = 0.0,
):
    """Mean (focal) binary cross-entropy per element, PyTorch's ``pos_weight`` convention.

    logits, targets: (n, L). pos_weights: (L,) weight of the positive term, or None.
    Returns (loss, d_logits).
    """
    if logits.size == 0:
        return 0.0, xp.zeros_like(logits)
    if label_smoothing:
        targets = targets * (1.0 - label_smoothing) + label_smoothing / 2.0
    probs = xp.clip(sigmoid(xp, logits), EPS, 1.0 - EPS)
    log_p, log_q = xp.log(probs), xp.log(1.0 - probs)
    w_pos = 1.0 if pos_weights is None else pos_weights[None, :]
    if gamma:
        pos_loss = -((1.0 - probs) ** gamma) * log_p
        neg_loss = -(probs**gamma) * log_q
        d_pos = gamma * probs * (1.0 - probs) ** gamma * log_p - (1.0 - probs) ** (gamma + 1.0)
        d_neg = -gamma * probs**gamma * (1.0 - probs) * log_q + probs ** (gamma + 1.0)
    else:
        pos_loss, neg_loss = -log_p, -log_q
        d_pos, d_neg = probs - 1.0, probs
    elements = logits.size
    loss = float((w_pos * targets * pos_loss + (1.0 - targets) * neg_loss).sum()) / elements
    d_logits = (w_pos * targets * d_pos + (1.0 - targets) * d_neg) / elements
    return loss, d_logits
